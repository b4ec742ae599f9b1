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
import json
import logging
import os
import re
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
    global world_size_note
    world_size_note = (  # logged by ``main`` once logging is set up (this runs while the arguments are parsed)
        f"rank {rank} of {world} (DeepSpeed without a GPU): global batch "
        f"{training_args.hf_deepspeed_config.get_value('train_batch_size')} = "
        f"{training_args.per_device_train_batch_size} per rank x {training_args.gradient_accumulation_steps} "
        f"accumulation x {world} ranks"
    )
    return True


world_size_note: str | None = None


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


# transformers' record of a DeepSpeed config value that is not "auto" and differs from the Trainer's:
# "- ds train_batch_size=16 vs hf train_batch_size (calculated)=4"
_MISMATCH = re.compile(r"^- ds (?P<key>\S+)=(?P<ds>.*) vs hf (?P<hf>.+?)=(?P<now>[^=]*)$")
# what sets the Trainer's side of each, on the command line
_SOURCES = {
    "per_device_train_batch_size": "--per_device_train_batch_size is {now}",
    "gradient_accumulation_steps": "--gradient_accumulation_steps is {now}",
    "train_batch_size (calculated)": "--per_device_train_batch_size x --gradient_accumulation_steps x {world} gives {now}",
    "max_grad_norm": "--max_grad_norm is {now}",
    "learning_rate": "--learning_rate is {now}",
    "adam_beta1+adam_beta2": "--adam_beta1, --adam_beta2 are {now}",
    "adam_epsilon": "--adam_epsilon is {now}",
    "weight_decay": "--weight_decay is {now}",
    "fp16|fp16_full_eval": "--fp16 is {now}",
    "bf16|bf16_full_eval": "--bf16 is {now}",
    "num_training_steps (calculated)": "this run takes {now} {steps} (--max_steps, --num_train_epochs)",
    "warmup_steps": "this run warms up for {now} {steps} (--warmup_steps)",
}
_TRAINING_ONLY = ("optimizer.", "scheduler.")  # unused by DeepSpeed's inference (--do_eval alone)


def _json_word(value: str) -> str:
    return {"True": "true", "False": "false", "None": "null"}.get(value, value)


def config_name(training_args: TrainingArguments) -> str:
    """The ``--deepspeed`` config as the user named it (a dict given in a .json options file has no name)."""
    config = training_args.deepspeed
    return str(config) if isinstance(config, (str, os.PathLike)) else "the --deepspeed config"


def mismatch_message(training_args: TrainingArguments, mismatches: list[str]) -> str:
    """One line for transformers' list of DeepSpeed config values that contradict the command line."""
    import torch

    name, world = config_name(training_args), training_args.world_size
    parts = []
    for entry in mismatches:
        m = _MISMATCH.match(entry.strip())
        if m is None:  # another transformers' wording: quoted as it is
            parts.append(entry.strip().lstrip("- "))
            continue
        key, ds, now = m["key"], _json_word(m["ds"]), _json_word(m["now"])
        processes = f"{world} process" + ("es" if world != 1 else "")
        steps = "step" if now == "1" else "steps"
        source = _SOURCES.get(m["hf"], m["hf"] + " is {now}").format(now=now, world=processes, steps=steps)
        if key == "fp16.enabled" and ds == "true" and not torch.cuda.is_available():
            source += " (fp16 needs a CUDA GPU and none was found: this run trains in fp32)"
        parts.append(f"{key} is {ds} but {source}")
    return (
        f'{name} contradicts the command line: {"; ".join(parts)}; set these to "auto" in {name} to take the '
        "command line's values, or pass flags that match"
    )


def check_deepspeed_config(training_args: TrainingArguments) -> None:
    """Before any work: the ``--deepspeed`` config's explicit values (a config from a guide with
    ``"train_batch_size": 16``, ``"lr": 3e-5``, ``"fp16": {"enabled": true}``) agree with the command line.

    transformers notes each contradiction when the arguments are parsed, but raises only when training
    starts, as a ``ValueError`` with a traceback, after the data and the model were loaded. Under
    ``--do_eval`` alone the optimizer and scheduler blocks are set aside (DeepSpeed evaluates without
    them), with their contradictions. Call after ``align_world_size``: the batch values count every rank.
    """
    config = getattr(training_args, "hf_deepspeed_config", None)
    if config is None:
        return
    config.mismatches.extend(schedule_mismatches(training_args))
    if not training_args.do_train:
        for block in ("optimizer", "scheduler"):
            config.config.pop(block, None)
        config.mismatches[:] = [
            m for m in config.mismatches if not m.startswith(tuple(f"- ds {k}" for k in _TRAINING_ONLY))
        ]
    if config.mismatches:
        from domainlm.errors import UserError

        raise UserError(mismatch_message(training_args, config.mismatches))
    if training_args.do_train:
        gather_zero3_weights_on_save(training_args, refuse_only=True)


def schedule_mismatches(training_args: TrainingArguments) -> list[str]:
    """With ``--max_steps``, the scheduler block's explicit step counts that transformers would find
    contradicting this run only when training starts, in its wording ("- ds KEY=VALUE vs hf NAME=VALUE")."""
    config = training_args.hf_deepspeed_config
    steps = training_args.max_steps
    if steps <= 0:  # counted from the data and --num_train_epochs: known when training starts
        return []
    found = []
    for key, value, name in (
        ("scheduler.params.total_num_steps", steps, "num_training_steps (calculated)"),
        ("scheduler.params.warmup_num_steps", max(1, training_args.get_warmup_steps(steps)), "warmup_steps"),
    ):  # as transformers' trainer_config_finalize fills them
        node, leaf = config.find_config_node(key)
        given = node.get(leaf) if node is not None else None
        if given is not None and given != "auto" and given != value:
            found.append(f"- ds {key}={given} vs hf {name}={value}")
    return found


GATHER = "stage3_gather_16bit_weights_on_model_save"


def gather_zero3_weights_on_save(training_args: TrainingArguments, refuse_only: bool = False) -> None:
    """ZeRO-3 saves the model's full weights only with ``"stage3_gather_16bit_weights_on_model_save": true``.

    Without the key (most ZeRO-3 configs from guides, DeepSpeed's default is false), the Trainer saves
    a DeepSpeed checkpoint instead: the run ends with status 0 and an output folder with config.json
    and a model card but no model.safetensors, which ``pipeline(...)`` cannot load (only
    ``zero_to_fp32.py`` recovers the weights). So a missing key is set to true here, before DeepSpeed
    starts, and said (``DomainTrainer.train``, once logging is set up); an explicit false is refused in one
    line (``refuse_only``: while the arguments are parsed, before any work).
    """
    zero = training_args.hf_deepspeed_config.config.get("zero_optimization", {})
    if not isinstance(zero, dict) or int(zero.get("stage", 0)) != 3:
        return
    if GATHER not in zero:
        if refuse_only:
            return
        zero[GATHER] = True
        logger.info(
            "%s has no %s under ZeRO-3: set to true, so that the model is saved with its full weights",
            config_name(training_args), GATHER,
        )  # fmt: skip
    elif zero[GATHER] is not True:
        from domainlm.errors import UserError

        name = config_name(training_args)
        raise UserError(
            f'{name}: "{GATHER}": {json.dumps(zero[GATHER])} under ZeRO-3 saves the model without its weights '
            f"(no model.safetensors: pipeline(...) cannot load the output folder); set it to true in {name}"
        )


@contextlib.contextmanager
def explain_config_mismatch(training_args: TrainingArguments) -> Any:
    """Around what starts the DeepSpeed engine: transformers' ``ValueError`` about config values that
    contradict the Trainer's (those known only then: the scheduler's ``total_num_steps`` and
    ``warmup_num_steps``) becomes one line. No step has been taken by then."""
    try:
        yield
    except ValueError as err:
        if "DeepSpeed config values that mismatch TrainingArguments" not in str(err):
            raise
        from domainlm.errors import UserError

        lines = [line for line in str(err).splitlines() if line.startswith("- ds ")]
        raise UserError(mismatch_message(training_args, lines)) from None


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
