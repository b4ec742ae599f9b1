"""``--push_to_hub``: the finished output folder uploaded to the model hub, once.

The Trainer's own push makes the repository when the Trainer is built and uploads ``output_dir`` at
every save, while run_clm.py writes its model atomically and its model card last: an upload could
catch a folder half-written, and one that fails mid-run stops the training with a traceback. Here the
repository is made (which checks the token too) before any work, so that a wrong token or no hub
costs seconds, not a training; the Trainer is told not to push; and once the model, its model card and
results are written, the folder goes up in one commit, checkpoints left out. A failed upload leaves the
saved folder as it is and says how to upload it by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from domainlm.errors import UserError, first_line
from domainlm.hub import hub_offline, hub_unreachable

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

# Never uploaded: checkpoints (tens of GB for GPT2-XL), and hidden or underscored work files (``.saving``).
IGNORE_PATTERNS = ["checkpoint-*", "_*", ".*"]


@dataclass
class PushTarget:
    repo_id: str  # as the hub names it: ``user/name``
    token: str | None
    revision: str | None
    uploads: bool  # this process uploads (the first of all ranks)


def upload_command(repo_id: str, folder: str | Path, revision: str | None = None) -> str:
    branch = f" --revision {revision}" if revision else ""
    return f"hf upload {repo_id} {folder}{branch} --exclude 'checkpoint-*'"


def prepare_push(training_args: TrainingArguments, token: str | None = None) -> PushTarget | None:
    """Before any work: the hub repository of ``--push_to_hub`` exists and can be written to, or a
    ``UserError`` says why not. The Trainer's own pushing is switched off (``push_to_hub`` set False).

    ``token`` is used when ``--hub_token`` is not given (run_clm.py's ``--token``); without either,
    ``huggingface_hub`` takes ``HF_TOKEN`` or the saved login.
    """
    # The Trainer pickles its arguments into training_args.bin, in every checkpoint and in the model folder that
    # is uploaded: --hub_token must not be among them. The Trainer neither makes the repository nor uploads.
    token, training_args.hub_token = training_args.hub_token or token, None
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    out = training_args.output_dir
    if not training_args.do_train:
        raise UserError(
            f"--push_to_hub uploads the model a run trains: add --do_train, or upload {out} with `hf upload`"
        )
    name = training_args.hub_model_id or Path(out).resolve().name
    revision = training_args.hub_revision
    by_hand = f"leave --push_to_hub out and upload the folder later ({upload_command(name, out, revision)})"
    if hub_offline():
        raise UserError(f"--push_to_hub: HF_HUB_OFFLINE is set, so {name} cannot be uploaded; unset it, or {by_hand}")
    if training_args.hub_strategy not in ("every_save", "end"):
        logger.warning(
            "--push_to_hub uploads the finished model once, without checkpoints: --hub_strategy %s is not applied",
            training_args.hub_strategy,
        )
    uploads = training_args.process_index == 0  # the other machines of a run need not reach the hub
    repo_id = name
    if uploads:
        from huggingface_hub import constants, create_repo

        why = hub_unreachable(constants.ENDPOINT)
        if why is not None:
            raise UserError(f"--push_to_hub: the model hub cannot be reached ({why}); {by_hand}")

        try:
            repo_id = create_repo(
                name, token=token, private=training_args.hub_private_repo, exist_ok=True, repo_type="model"
            ).repo_id
        except Exception as err:  # 401 (no or bad token), 403 (another's namespace), a bad name, the network
            raise UserError(
                f"--push_to_hub: the hub repository {name} cannot be made or reached ({type(err).__name__}: "
                f"{first_line(err)}); log in with `hf auth login` (or pass --hub_token), or give --hub_model_id "
                "a repository you can write to"
            ) from None
        if training_args.hub_revision:
            from huggingface_hub import create_branch

            try:
                create_branch(repo_id, branch=training_args.hub_revision, token=token, exist_ok=True)
            except Exception as err:
                raise UserError(
                    f"--hub_revision {training_args.hub_revision}: the branch cannot be made in {repo_id} "
                    f"({type(err).__name__}: {first_line(err)})"
                ) from None
        logger.info("--push_to_hub: %s is uploaded to the hub repository %s once it is saved", out, repo_id)
    return PushTarget(repo_id, token, revision, uploads)


def push_folder(target: PushTarget, folder: str | Path) -> str | None:
    """Upload the saved ``folder`` in one commit (checkpoints left out); the commit's address, or None on
    a process that does not upload. A failed upload is a ``UserError`` that says how to redo it."""
    if not target.uploads:
        return None
    from huggingface_hub import upload_folder

    try:
        commit = upload_folder(
            repo_id=target.repo_id,
            folder_path=str(folder),
            token=target.token,
            revision=target.revision,
            commit_message="Trained with domainlm's run_clm.py",
            ignore_patterns=IGNORE_PATTERNS,
        )
    except Exception as err:  # the network, the token, a quota: the model is saved all the same
        raise UserError(
            f"--push_to_hub: the model is saved in {folder}, but uploading it to {target.repo_id} failed "
            f"({type(err).__name__}: {first_line(err)}); upload it with "
            f"{upload_command(target.repo_id, folder, target.revision)}"
        ) from None
    url = getattr(commit, "commit_url", None) or f"{target.repo_id}"
    logger.info("--push_to_hub: uploaded %s to %s", folder, url)
    return url
