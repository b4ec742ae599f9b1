"""Loading by model-hub name (``gpt2-xl``) without a minute of retries when the hub cannot be reached.

Asked for a file it cannot reach, ``huggingface_hub`` retries five times with back-off, for each file
a loader asks for (about 25 s each); a tokenizer asks twice. A run on a machine without the hub (a
cluster behind a firewall, a laptop on a train) then waits close to a minute, printing forty warnings,
before it fails. Here the hub is asked once, with one short request; when it does not answer, the
name is loaded from the local cache (what ``huggingface_hub`` would have ended up doing), or a
one-line error says what to pass instead. ``HF_HUB_OFFLINE=1`` skips the request: the cache only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from domainlm.errors import UserError, first_line

logger = logging.getLogger(__name__)

T = TypeVar("T")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: only the local cache is read."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@functools.cache
def hub_unreachable(endpoint: str) -> str | None:
    """None when ``endpoint`` answers one request (any HTTP status will do); else why it did not, in one line."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as err:  # no name resolution, refused, timed out, a proxy or TLS failure: the transport's
        return f"{endpoint}: {first_line(err, 120)}"
    return None


def load_by_name(load: Callable[[bool], T], name: str, flag: str, what: str, hint: str, hub: str = "model hub") -> T:
    """``load(local_files_only)`` for a hub name, with a one-line UserError when it cannot be had.

    The hub unreachable: the local cache, with a warning, or an error saying neither had it. ``hint``
    ends the error: what to pass instead (``pass a local folder that holds it``). ``hub`` names the hub in
    messages (``hub`` for a dataset).
    """
    if not hub_offline():
        from huggingface_hub import constants

        why = hub_unreachable(constants.ENDPOINT)
        if why is not None:
            try:
                loaded = load(True)
            except (OSError, ValueError):
                raise UserError(
                    f"{flag} {name}: not a local folder, the {hub} cannot be reached ({why}), and the {what} is "
                    f"not in the local cache; {hint}"
                ) from None
            logger.warning("the %s cannot be reached (%s): %s's %s comes from the local cache", hub, why, name, what)
            return loaded
    try:
        return load(False)
    except (OSError, ValueError) as err:
        raise UserError(
            f"{flag} {name}: not a local folder, and the {what} could not be loaded from the {hub} "
            f"({first_line(err)}); {hint}"
        ) from None
