"""DeepSpeed's compiled CPU ops: build them once up front, and refuse to wait on a build lock left behind.

Why this exists. DeepSpeed compiles its CPU ops (``deepspeed_shm_comm`` for every run on CPU,
``cpu_adam`` for its CPU optimizer) with ``torch.utils.cpp_extension`` the first time a process needs
them, and takes a lock file in the op's build folder each time a process loads one. Others wait,
without a limit and without a word, for as long as that file exists. A process killed while it holds
the lock (Ctrl-C during the first build, the ``deepspeed`` launcher stopping the other ranks after one
failed, an out-of-memory kill) leaves the file behind, and every later DeepSpeed run on the machine
hangs at start-up. A lock is held for seconds when the op is already built and for a few minutes when
it is compiled, so one older than ``STALE_AFTER_S`` is taken for a leftover.

``python -m domainlm.compiled_ops`` compiles the ops in one process, before several runs start at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from domainlm.errors import UserError

STALE_AFTER_S = 900.0


def extensions_root() -> Path:
    """Where ``torch.utils.cpp_extension`` builds ops: ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``."""
    configured = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "torch_extensions"


def stale_build_locks(root: Path | None = None, now: float | None = None) -> list[tuple[Path, float]]:
    """The build locks under ``root`` older than ``STALE_AFTER_S``, with their age in seconds, oldest first.

    Looks one and two folders down: ``root/<op>/lock`` when ``$TORCH_EXTENSIONS_DIR`` is set, and
    ``root/py311_cpu/<op>/lock`` in the default layout.
    """
    root = extensions_root() if root is None else root
    now = time.time() if now is None else now
    found = []
    for lock in [*root.glob("*/lock"), *root.glob("*/*/lock")]:
        try:
            age = now - lock.stat().st_mtime
        except OSError:  # released meanwhile
            continue
        if age > STALE_AFTER_S:
            found.append((lock, age))
    return sorted(found, key=lambda item: -item[1])


def check_build_locks(root: Path | None = None) -> None:
    """Raise a one-line ``UserError`` naming the oldest stale build lock, if there is one."""
    stale = stale_build_locks(root)
    if stale:
        lock, age = stale[0]
        raise UserError(
            f"{lock} is {age / 60:.0f} minutes old: a build of the {lock.parent.name} op was interrupted, and "
            "DeepSpeed would wait for it forever; if no other run is compiling it, delete that file and run again"
        )


CPU_OPS = ("ShareMemCommBuilder", "CPUAdamBuilder")


def build_cpu_ops() -> list[str]:
    """Compile (or load, when built already) DeepSpeed's CPU ops; returns the names of those built here."""
    check_build_locks()
    from deepspeed.accelerator import get_accelerator

    built = []
    for name in CPU_OPS:
        builder = get_accelerator().create_op_builder(name)
        if builder is not None and builder.is_compatible():
            builder.load(verbose=False)
            built.append(builder.NAME)
    return built


if __name__ == "__main__":
    print("DeepSpeed CPU ops ready:", ", ".join(build_cpu_ops()))
