"""Errors meant for the user: one line that names the file, row or flag and says what to do."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input or a bad flag. The message is printed alone, without a traceback."""


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run a script's ``main`` and turn a ``UserError`` into ``error: ...`` and exit status 2.

    After a successful ``main``, the process group of a multi-process run is taken down
    (``domainlm.distributed.release_process_group``), so that the process exits with status 0; where
    Gloo's threads outlive it, the process ends there, with status 0.
    """
    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        from domainlm.distributed import remove_shm_buffer

        remove_shm_buffer()  # the launcher stops the other ranks, so the buffer is not needed any more
        return 2
    from domainlm.distributed import release_process_group

    release_process_group()
    return 0
