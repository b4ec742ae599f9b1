"""Saving folders (model, tokenizer, metrics) so that a crash never leaves a half-written file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import Trainer

# Moved last: a folder without config.json is not mistaken for a complete model.
_LAST = ("config.json",)


def move_files_into(src_dir: Path, output_dir: Path) -> list[str]:
    """Rename every file under ``src_dir`` to the same place under ``output_dir``; config.json last.

    Each file gets the permissions of a file the user creates (0644 under umask 022): the weights that
    transformers writes are 0600, which a colleague or a serving container under another user could
    not read.
    """
    from domainlm.tables import file_mode

    mode = file_mode()
    files = sorted((p for p in src_dir.rglob("*") if p.is_file()), key=lambda p: (p.name in _LAST, str(p)))
    for src in files:
        dst = output_dir / src.relative_to(src_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, mode)
        os.replace(src, dst)
    return [str(p.relative_to(src_dir)) for p in files]


def save_trained_model(trainer: Trainer, output_dir: str | os.PathLike) -> list[str]:
    """``trainer.save_model`` (full weights, ZeRO-3 included; tokenizer; generation config), atomically.

    Every rank must call this: under ZeRO-3 gathering the weights is collective. Rank 0 writes.
    """
    output_dir = Path(output_dir)
    tmp = output_dir / ".saving"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    names: list[str] = []
    if main:
        names = move_files_into(tmp, output_dir)
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return names
