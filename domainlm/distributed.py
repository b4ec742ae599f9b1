"""Ranks and world size as DeepSpeed sees them, so several CPU processes train as one data-parallel job.

Why this exists. Launched by ``deepspeed --num_gpus=2`` (or ``torchrun --nproc_per_node 2``) with
``--deepspeed`` on a machine without a GPU, accelerate's ``PartialState`` lets DeepSpeed start the
process group (2 ranks) but finds no backend of its own (``_prepare_backend`` picks one only for a
GPU, or for ``cpu=True``), and then records "no backend, no distributed training":
``num_processes = 1`` and ``process_index = 0`` on every rank. The Trainer then fills DeepSpeed's
``"train_batch_size": "auto"`` with ``1 x micro x accum`` while DeepSpeed multiplies by the real world
size of 2, and stops on ``train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step *
world_size (8 != 8*1*2)``. Filling that one number would hide worse: every rank would also believe it
is rank 0 (all write the output folder) and read the whole dataset (no sharding, half the steps
wasted). ``align_world_size`` corrects the shared state from ``torch.distributed`` and fills the
DeepSpeed batch values again, before anything uses them. With a GPU, or one rank, it changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)


def align_world_size(training_args: TrainingArguments) -> bool:
    """Make ``training_args`` (and the accelerate state the Trainer will reuse) see every rank.

    Returns True when something was corrected. Call it right after the arguments are parsed, before
    ``main_process_first``, logging set-up or the Trainer use the rank; call it again after any
    ``dataclasses.replace(training_args)``, which builds the state afresh.
    """
    import torch.distributed as dist

    state = getattr(training_args, "distributed_state", None)
    if state is None or not training_args.deepspeed or not dist.is_available() or not dist.is_initialized():
        return False
    world, rank = dist.get_world_size(), dist.get_rank()
    if state.num_processes == world and state.process_index == rank:
        return False
    # PartialState keeps one dict shared by all its instances: the Trainer's Accelerator reads these.
    state.num_processes = world
    state.process_index = rank
    state.local_process_index = int(os.environ.get("LOCAL_RANK", rank))
    state.backend = state.backend or dist.get_backend()
    refill_deepspeed_config(training_args)
    logger.info(
        "rank %d of %d (DeepSpeed without a GPU): global batch %d = %d per rank x %d accumulation x %d ranks",
        rank,
        world,
        training_args.hf_deepspeed_config.get_value("train_batch_size"),
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        world,
    )
    return True


def refill_deepspeed_config(training_args: TrainingArguments) -> None:
    """Fill the DeepSpeed config's ``"auto"`` values again, from the file, with the current world size.

    ``TrainingArguments.__post_init__`` filled them once, with the wrong world size, and replaced the
    ``"auto"`` strings by numbers; reading the original config again is the only way back.
    """
    from accelerate.utils import DeepSpeedPlugin
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    training_args.hf_deepspeed_config = HfTrainerDeepSpeedConfig(training_args.deepspeed)
    training_args.hf_deepspeed_config.trainer_config_process(training_args)
    training_args.deepspeed_plugin = DeepSpeedPlugin(hf_ds_config=training_args.hf_deepspeed_config)


LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")

# What ``single_process_env`` set, for ``main`` to log once logging is set up (parsing comes first).
single_process_note: str | None = None


def free_port() -> int:
    """A TCP port that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def single_process_env() -> bool:
    """``--deepspeed`` without a launcher: the environment of a one-process launch, as transformers' docs do it
    in a notebook. Returns True when it set something.

    Why this exists. Without ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, DeepSpeed looks for the ranks
    through MPI and stops on ``No module named 'mpi4py'``. When none of the three is set, this sets
    ``RANK=0 LOCAL_RANK=0 WORLD_SIZE=1``, and ``MASTER_ADDR=127.0.0.1`` and a free ``MASTER_PORT`` unless
    they are set. Call it before ``TrainingArguments`` are built: they start DeepSpeed's process group.
    """
    global single_process_note
    if any(name in os.environ for name in LAUNCHER_VARS):
        return False
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    single_process_note = (
        "--deepspeed without the deepspeed launcher: one process (RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 "
        f"MASTER_ADDR={os.environ['MASTER_ADDR']} MASTER_PORT={os.environ['MASTER_PORT']})"
    )
    return True


@contextlib.contextmanager
def explain_port_in_use() -> Any:
    """Around what starts the process group: a ``MASTER_PORT`` another process listens on (another run,
    usually on the launcher's default 29500) becomes one line instead of torch's ``DistNetworkError``."""
    try:
        yield
    except Exception as err:
        from torch.distributed import DistNetworkError

        if not isinstance(err, DistNetworkError) or "EADDRINUSE" not in str(err):
            raise
        from domainlm.errors import UserError

        port, free = os.environ.get("MASTER_PORT", "29500"), free_port()
        fix = (
            f"set MASTER_PORT to a free port (e.g. MASTER_PORT={free}, free now)"
            if single_process_note
            else f"pass a free port to deepspeed with --master_port N (e.g. --master_port {free}, free now)"
        )
        raise UserError(f"port {port} (MASTER_PORT) is in use, probably by another run; {fix}") from None


def _process_group_module() -> Any:
    """``torch.distributed`` when this process has started a process group, else None (torch not imported for it)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def several_processes() -> Any:
    """``torch.distributed`` when this process is one of several in a process group, else None."""
    dist = _process_group_module()
    return dist if dist is not None and dist.get_world_size() > 1 else None


def release_process_group() -> None:
    """Take torch.distributed's process group down, if this process has one, at the end of a successful run.

    Why this exists. Gloo's worker threads live as long as their process group object. Left running
    at the interpreter's shutdown, they can abort the process ("terminate called without an active
    exception", status -6) after the model was saved, and the ``deepspeed`` launcher then reports the
    whole run as failed: seen now and then with 2 ranks on CPU under ZeRO-3. Destroying the group
    stops them only when nothing else refers to it, and DeepSpeed does: ZeRO-3 keeps the model on a
    module-level list and in an ``lru_cache`` for good, and every ZeRO-3 parameter refers to its group.
    So when Gloo's threads still run after the group was destroyed, the process leaves right here
    with status 0, logs and output flushed, without the interpreter's shutdown. Everything the run
    writes is complete by then (outputs are written atomically and closed). Before that, this rank's
    shared-memory buffer is removed (``remove_shm_buffer``).

    Does not import torch when the script never did.
    """
    dist = _process_group_module()
    if dist is None:
        return
    remove_shm_buffer()
    dist.destroy_process_group()
    left = gloo_threads()
    if left:
        logger.info("%d Gloo worker threads outlive the process group; leaving without interpreter shutdown", left)
        exit_now(0)


def shm_buffer(rank: int) -> Path:
    """The shared-memory all-reduce buffer DeepSpeed creates for ``rank`` when every rank runs on this machine.

    DeepSpeed's CPU communication op names it ``deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>``
    (about 70 MB each) and never removes it: each run on CPU would leave one per rank in ``/dev/shm``,
    memory that stays taken until the machine restarts.
    """
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    return Path("/dev/shm") / f"deepspeed_allreduce_buffer_{os.getuid()}_{addr}_{port}_{rank}"


def unlink_shm_buffer_once_mapped() -> None:
    """Remove the name of this rank's ``shm_buffer`` as soon as every rank has mapped it, at the start of a run.

    DeepSpeed's CPU op maps every rank's buffer before its initialisation returns (``shm_initialize``
    opens each other rank's by name, waiting until it exists). So once every rank is past it, which a
    barrier shows, the names are no longer needed: the memory stays mapped while the processes run, and
    is freed when the last of them ends, however it ends. A run killed with ``kill -9``, or whose ranks
    the launcher kills on Ctrl-C, then leaves nothing in ``/dev/shm``. Every rank calls this (the barrier
    is collective); without a CPU process group under DeepSpeed it does nothing.
    """
    dist = _process_group_module()
    if dist is None or "deepspeed" not in sys.modules or dist.get_backend() == "nccl":  # GPUs: no such buffer
        return
    dist.barrier()
    path = shm_buffer(dist.get_rank())
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        logger.info("%s is mapped by every rank: its name is removed now, so that no ending leaves it behind", path)


def remove_shm_buffer() -> None:
    """Unlink this rank's ``shm_buffer`` when a DeepSpeed run made one. Every rank mapped the buffers of
    the others while DeepSpeed started, so the name can go while the processes still run; the memory is
    freed when the last of them ends."""
    dist = _process_group_module()
    if dist is None or "deepspeed" not in sys.modules:
        return
    with contextlib.suppress(FileNotFoundError):
        shm_buffer(dist.get_rank()).unlink()


def gloo_threads() -> int:
    """How many of this process's threads are Gloo's (named ``pt_gloo_*`` or ``gloo_*``); 0 without /proc."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return 0
    count = 0
    for task in tasks.iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        count += name.startswith(("pt_gloo", "gloo_"))
    return count


def exit_now(status: int) -> None:
    """End the process with ``status`` without the interpreter's shutdown, after flushing logs and output."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream
            stream.flush()
    os._exit(status)
