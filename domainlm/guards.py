"""Checks that keep a long run from losing work: resuming, disk space, divergence.

- **Resume.** Only a complete checkpoint is resumed (the Trainer writes ``trainer_state.json`` last, so a
  run killed while saving leaves a folder without it, which is skipped). A checkpoint written under
  another DeepSpeed ZeRO stage or number of processes is refused in one line, before DeepSpeed fails
  with a bare ``AssertionError``. Each checkpoint records how it was written in ``domainlm_checkpoint.json``.
- **Disk.** Before the first step, the checkpoints this run will hold at once are estimated from the
  parameter count, the optimizer state and the ZeRO stage, and compared with the free space.
- **Divergence.** A NaN or infinite training loss stops the run before the update it would cause, a
  checkpoint is never written from weights that are not finite, and a long run of skipped (overflowing)
  fp16 steps stops the run too. The last good checkpoint stays where it is.
- **Ctrl-C.** It stops the run even when Python drops its ``KeyboardInterrupt`` (``CtrlC``). SIGTERM
  stops it the same way: it is how the DeepSpeed launcher passes Ctrl-C on, and how schedulers stop jobs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from domainlm.errors import UserError

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

CHECKPOINT_INFO = "domainlm_checkpoint.json"
DIVERGED = "diverged.json"  # in a checkpoint whose weights gave a non-finite loss (see DivergenceGuard)
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last into a checkpoint
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_ZERO_OPTIM = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_\d+_optim_states\.pt$")
_ZERO3_MODEL = re.compile(r"^zero_pp_rank_\d+_mp_rank_\d+_model_states\.pt$")


# --- resume ------------------------------------------------------------------------------------------


def checkpoint_dirs(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` folders in ``output_dir``, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """True when the Trainer finished writing the folder: its last file, trainer_state.json, parses."""
    try:
        json.loads((Path(path) / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def is_diverged(path: str | os.PathLike) -> bool:
    return (Path(path) / DIVERGED).is_file()


def is_resumable(path: str | os.PathLike) -> bool:
    return is_complete_checkpoint(path) and not is_diverged(path)


def last_complete_checkpoint(output_dir: str | os.PathLike, warn: bool = True) -> Path | None:
    """The highest-step checkpoint that was written to the end and did not diverge; the others are
    skipped, with a warning (``warn``)."""
    for path in reversed(checkpoint_dirs(output_dir)):
        if is_resumable(path):
            return path
        if not warn:
            continue
        if not is_complete_checkpoint(path):
            logger.warning(
                "%s is incomplete (no readable %s; the run stopped while saving): skipped", path, TRAINER_STATE
            )
        else:
            logger.warning("%s holds weights that gave a non-finite loss (%s): skipped", path, DIVERGED)
    return None


SHARED_FOLDER_HINT = (
    "machines that do not share --output_dir's filesystem need --save_on_each_node (each machine then "
    "keeps its own checkpoints) or an --output_dir they all see; --overwrite_output_dir starts afresh"
)


def agree_across_ranks(seen: str, subject: str) -> None:
    """Refuse, on every process, a resume that the processes see differently: ``seen`` is what this one
    finds (the checkpoint it would continue from, say). All processes must call this together.

    With one process, or on one machine (one filesystem), it never refuses. Across machines whose
    ``--output_dir`` is a local folder each, the Trainer writes a checkpoint's state on the first machine
    alone, so the others would start afresh (or fail deep inside DeepSpeed) while the first continues.
    """
    import socket

    from domainlm.distributed import several_processes

    dist = several_processes()
    if dist is None:
        return
    views: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(views, (socket.gethostname(), seen))
    if len({view for _, view in views}) == 1:
        return
    by_view: dict[str, dict[str, list[int]]] = {}
    for rank, (host, view) in enumerate(views):
        by_view.setdefault(view, {}).setdefault(host, []).append(rank)
    parts = [
        f"{view} on " + ", ".join(f"{host} ({_ranks(ranks)})" for host, ranks in hosts.items())
        for view, hosts in by_view.items()
    ]
    raise UserError(f"the processes do not agree on {subject}: {'; '.join(parts)}; {SHARED_FOLDER_HINT}")


def _ranks(ranks: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``ranks 0-2, 5``."""
    spans: list[list[int]] = []
    for r in ranks:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"rank{'s' if len(ranks) > 1 else ''} {text}"


# What a run rewrites in output_dir while it trains: the optimizer's groups, samples (a resumed run continues
# them; a new run removes an earlier run's at its start: ``domainlm.train.remove_earlier_run_files``).
RUN_FILES = ("optimizer_groups.json", "samples.jsonl")
# What a run leaves in output_dir before its first checkpoint: TensorBoard logs (one folder per run, an
# earlier run's kept beside) and the files above. With checkpoints a resume cannot use, losing them loses nothing.
BEFORE_FIRST_CHECKPOINT = ("runs", *RUN_FILES)


def files_at_stake(output_dir: str | os.PathLike) -> list[str]:
    """Names in ``output_dir`` that a new run would overwrite or mix with: everything but what a run writes
    before its first checkpoint and checkpoint-* folders that are incomplete or diverged (never resumed)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.name not in BEFORE_FIRST_CHECKPOINT
        and not (p.is_dir() and _CHECKPOINT_DIR.match(p.name) and not is_resumable(p))
    )


def check_nothing_to_lose(output_dir: str | os.PathLike) -> None:
    """Refuse to start a new run in a folder that holds other files (a finished model, say), as 4.x run_clm did."""
    names = files_at_stake(output_dir)
    if not names:
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise UserError(
        f"--output_dir {output_dir} is not empty ({shown}) and holds no checkpoint to continue from; add "
        "--overwrite_output_dir to replace it, or give another --output_dir"
    )


@dataclass(frozen=True)
class Layout:
    """How a checkpoint's optimizer state is laid out: it can only be resumed the same way."""

    deepspeed: bool
    zero_stage: int | None = None  # None: DeepSpeed ZeRO stage 1 or 2 (same files), or not DeepSpeed
    world_size: int | None = None  # None: unknown

    def describe(self) -> str:
        if not self.deepspeed:
            where = "without DeepSpeed"
        elif self.zero_stage is None:
            where = "under DeepSpeed ZeRO stage 1 or 2"
        else:
            where = f"under DeepSpeed ZeRO stage {self.zero_stage}"
        if self.world_size is None:
            return where
        return f"{where} on {self.world_size} process{'es' if self.world_size != 1 else ''}"


def current_layout(args: TrainingArguments) -> Layout:
    """The layout this run's checkpoints get."""
    if not args.deepspeed:
        return Layout(deepspeed=False, world_size=args.world_size)
    return Layout(deepspeed=True, zero_stage=zero_stage(args), world_size=args.world_size)


def zero_stage(args: TrainingArguments) -> int | None:
    """The ZeRO stage of ``--deepspeed`` (0 without ZeRO), or None without DeepSpeed."""
    if not args.deepspeed:
        return None
    hf_config = getattr(args, "hf_deepspeed_config", None)
    config = hf_config.config if hf_config is not None else args.deepspeed
    if isinstance(config, (str, os.PathLike)):
        config = json.loads(Path(config).read_text(encoding="utf-8"))
    return int(config.get("zero_optimization", {}).get("stage", 0))


def write_checkpoint_info(checkpoint: str | os.PathLike, args: TrainingArguments) -> None:
    """Record in the checkpoint how it was written (read back by ``saved_layout``)."""
    from domainlm.tables import write_json

    write_json(Path(checkpoint) / CHECKPOINT_INFO, asdict(current_layout(args)))


def saved_layout(checkpoint: str | os.PathLike) -> Layout | None:
    """How ``checkpoint`` was written: from domainlm_checkpoint.json, else from the files DeepSpeed or
    the Trainer left. None when it holds no optimizer state (``--save_only_model``)."""
    path = Path(checkpoint)
    try:
        info = json.loads((path / CHECKPOINT_INFO).read_text(encoding="utf-8"))
        return Layout(bool(info["deepspeed"]), info.get("zero_stage"), info.get("world_size"))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tag_file = path / "latest"
    tags = [path / tag_file.read_text().strip()] if tag_file.is_file() else sorted(path.glob("global_step*"))
    tag = next((t for t in tags if t.is_dir()), None)
    if tag is not None:
        names = [p.name for p in tag.iterdir()]
        ranks = {int(m.group(1)) for n in names if (m := _ZERO_OPTIM.match(n))}
        if any(_ZERO3_MODEL.match(n) for n in names):
            return Layout(True, 3, len(ranks) or None)
        if ranks:
            return Layout(True, None, len(ranks))
        return Layout(True, 0, None)
    if (path / "optimizer.pt").is_file() or (path / "optimizer.bin").is_file():
        return Layout(False)
    return None


def _compatible(saved: Layout, now: Layout) -> bool:
    if saved.deepspeed != now.deepspeed:
        return False
    if not saved.deepspeed:
        return True  # the Trainer's optimizer.pt is whole: any number of processes can load it
    # stage None: ZeRO-1 and ZeRO-2 write the same files
    stage_ok = now.zero_stage in (1, 2) if saved.zero_stage is None else saved.zero_stage == now.zero_stage
    return stage_ok and saved.world_size in (None, now.world_size)


def check_resume(checkpoint: str | os.PathLike, now: Layout) -> None:
    """Refuse, in one line, a checkpoint that a run laid out as ``now`` cannot continue from."""
    if not is_complete_checkpoint(checkpoint):
        raise UserError(
            f"cannot resume from {checkpoint}: it has no readable {TRAINER_STATE} (a run stopped while saving "
            "it, or it is not a Trainer checkpoint); pick an earlier checkpoint-* folder"
        )
    if is_diverged(checkpoint):
        logger.warning("%s holds weights that gave a non-finite loss (%s): resuming anyway", checkpoint, DIVERGED)
    has_weights = (Path(checkpoint) / "model.safetensors").is_file()
    restart = (
        f"pass --model_name_or_path {checkpoint} --overwrite_output_dir to start a new run from its weights"
        if has_weights
        else "pass --overwrite_output_dir to start afresh"
    )
    saved = saved_layout(checkpoint)
    if saved is None:
        raise UserError(
            f"cannot resume from {checkpoint}: it holds no optimizer state (saved with --save_only_model?); {restart}"
        )
    if not _compatible(saved, now):
        raise UserError(
            f"cannot resume from {checkpoint}: it was saved {saved.describe()} and this run trains "
            f"{now.describe()}; resume with the --deepspeed config and number of processes it was saved with, "
            f"or {restart}"
        )


# --- disk --------------------------------------------------------------------------------------------

# Tokenizer, configs, RNG and trainer state, DeepSpeed's scripts: under 4 MB for GPT-2's tokenizer.
CHECKPOINT_EXTRA_BYTES = 8 * 2**20


@dataclass(frozen=True)
class CheckpointSize:
    """Bytes one checkpoint takes, by part (see ``estimate_checkpoint``)."""

    weights: int  # model.safetensors (and DeepSpeed's module states for ZeRO 0-2)
    optimizer: int  # Adam moments (+ fp32 master weights under DeepSpeed)
    extra: int = CHECKPOINT_EXTRA_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.extra


def estimate_checkpoint(
    n_params: int,
    n_trainable: int,
    stage: int | None,
    half_precision: bool = False,
    save_only_model: bool = False,
    zero3_saves_weights: bool = True,
) -> CheckpointSize:
    """Size of one checkpoint of a model with ``n_params`` parameters (tied ones once).

    Without DeepSpeed (``stage`` None): fp32 weights (4 bytes) and torch AdamW's two fp32 moments (8 bytes
    per trainable parameter). Under DeepSpeed the module is in fp16/bf16 (2 bytes) when training in half
    precision, and the optimizer state is fp32 master weights plus two moments (12 bytes per trainable
    parameter) split over the processes. ZeRO 0-2 also write the module's weights into
    ``mp_rank_00_model_states.pt``; ZeRO-3 writes model.safetensors only with
    ``stage3_gather_16bit_weights_on_model_save``. GPT2-XL (1.56e9 parameters) under ZeRO-2 in fp16:
    3.1 GB + 3.1 GB + 18.7 GB = 25 GB.
    """
    if stage is None:
        return CheckpointSize(4 * n_params, 0 if save_only_model else 8 * n_trainable)
    weight = (2 if half_precision else 4) * n_params
    weights = weight if (stage < 3 or zero3_saves_weights) else 0
    if stage < 3 and not save_only_model:
        weights += weight
    return CheckpointSize(weights, 0 if save_only_model else 12 * n_trainable)


def count_saves(args: TrainingArguments, state: TrainerState) -> int:
    """How many checkpoints this run writes from ``state.global_step`` to ``state.max_steps``."""
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy

    remaining = max(0, state.max_steps - state.global_step)
    if remaining == 0 or args.save_strategy == SaveStrategy.NO:
        return 0
    if args.save_strategy == SaveStrategy.EPOCH:
        done = math.floor(state.epoch or 0)
        return max(1, math.ceil(state.num_train_epochs) - done)
    if args.save_strategy == SaveStrategy.BEST:  # at most one per evaluation
        if args.eval_strategy == IntervalStrategy.EPOCH:
            return max(1, math.ceil(state.num_train_epochs))
        every = int(state.eval_steps or 1)
    else:
        every = int(state.save_steps or 1)
    # every multiple of `every`, and the last step (the Trainer always saves there)
    start, end = state.global_step, state.max_steps
    return end // every - start // every + (1 if end % every else 0)


def checkpoints_at_once(args: TrainingArguments, saves: int, existing: int) -> int:
    """New checkpoints on disk at the busiest moment. The Trainer deletes old ones (``--save_total_limit``)
    only after writing a new one, so ``limit + 1`` exist for a moment; ``existing`` already use disk space."""
    limit = args.save_total_limit
    if not saves or not limit:
        return saves
    if args.load_best_model_at_end:
        limit = max(limit, 2)
    return min(saves, max(1, limit + 1 - existing))


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def parameter_counts(model: Any) -> tuple[int, int]:
    """(all, trainable) parameters, tied ones once; ZeRO-3's partitioned parameters at their full size."""
    total = trainable = 0
    for p in model.parameters():  # yields a tied parameter once
        n = int(getattr(p, "ds_numel", p.numel()))
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


@dataclass(frozen=True)
class DiskPlan:
    checkpoint: CheckpointSize
    checkpoints: int  # at the busiest moment
    final_model: int  # the weights written to output_dir at the end
    needed: int
    free: int

    def describe(self, output_dir: str | os.PathLike) -> str:
        c = self.checkpoint
        head = f"{output_dir} needs about {format_bytes(self.needed)} and its filesystem has {format_bytes(self.free)} free"
        final = f"the final model ({format_bytes(self.final_model)})"
        if not self.checkpoints:
            return f"{head}: no checkpoints, {final}"
        return (
            f"{head}: {self.checkpoints} checkpoint{'s' if self.checkpoints != 1 else ''} at once of "
            f"{format_bytes(c.total)} each (weights {format_bytes(c.weights)}, optimizer state "
            f"{format_bytes(c.optimizer)}, up to {format_bytes(c.extra)} of tokenizer and run state) and {final}"
        )


def plan_disk(args: TrainingArguments, state: TrainerState, model: Any) -> DiskPlan:
    n_params, n_trainable = parameter_counts(model)
    stage = zero_stage(args)
    zero3_gathers = True
    if stage == 3:
        config = args.hf_deepspeed_config.config
        zero3_gathers = bool(config["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save", False))
    half = bool(stage is not None and (args.fp16 or args.bf16))
    size = estimate_checkpoint(n_params, n_trainable, stage, half, args.save_only_model, zero3_gathers)
    existing = len(checkpoint_dirs(args.output_dir))
    at_once = checkpoints_at_once(args, count_saves(args, state), existing)
    final = (2 if half else 4) * n_params
    needed = at_once * size.total + final
    return DiskPlan(size, at_once, final, needed, free_bytes(args.output_dir))


class DiskGuard(TrainerCallback):
    """Refuses to start a run whose checkpoints cannot fit on the disk (checked once, before step one)."""

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        model = kwargs.get("model")
        if model is None:
            return
        plan = plan_disk(args, state, model)
        if plan.needed > plan.free:
            raise UserError(
                f"not enough disk space: {plan.describe(args.output_dir)}; free some space, lower "
                "--save_total_limit, raise --save_steps, or pass --check_disk_space false if the estimate is wrong"
            )
        logger.info("disk: %s", plan.describe(args.output_dir))


class CheckpointInfo(TrainerCallback):
    """Writes domainlm_checkpoint.json into each checkpoint, so a resume can be checked before it starts."""

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if args.should_save:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                write_checkpoint_info(path, args)
                (path / DIVERGED).unlink(missing_ok=True)  # left by a run that diverged after the same step


class CPUAdamResume(TrainerCallback):
    """Let DeepSpeed's CPU Adam continue a resumed run as the run never stopped would have.

    ``ds_config.json`` and ``ds_config_zero3.json`` offload Adam to the CPU (``DeepSpeedCPUAdam``). Its
    C++ side keeps beta1^t and beta2^t for the bias correction and multiplies them by the betas step by
    step; a new optimizer asked for step t > 1, as after a resume, takes them as powers instead, which
    differ in the last bit (0.999 cubed in float32, say). A run killed and resumed under DeepSpeed then
    ended about 1e-7 away from the run never stopped instead of on the same weights. Before the first
    step, this replays steps 1..t on one spare element at a learning rate of 0, so the powers are
    multiplied up as in the run never stopped. Other optimizers are left alone.
    """

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        adam = _deepspeed_cpu_adam(kwargs.get("optimizer"))
        if adam is None or state.global_step == 0:
            return
        steps = {int(s["step"]) for s in adam.state.values() if "step" in s}
        if len(steps) != 1:  # none yet, or groups at different steps: no single history to replay
            return
        import torch

        group = adam.param_groups[0]
        beta1, beta2 = group["betas"]
        spare = [torch.zeros(1) for _ in range(4)]  # parameter, gradient, first and second moment
        (last,) = steps
        for step in range(1, last + 1):
            adam.ds_opt_adam.adam_update(adam.opt_id, step, 0.0, beta1, beta2, group["eps"], 0.0, True, *spare)
        logger.info("DeepSpeed's CPU Adam: bias correction brought to step %d as an unbroken run has it", last)


def _deepspeed_cpu_adam(optimizer: Any) -> Any:
    """The ``DeepSpeedCPUAdam`` inside DeepSpeed's optimizer wrappers, or None."""
    for _ in range(4):
        if optimizer is None:
            return None
        if hasattr(optimizer, "ds_opt_adam") and hasattr(optimizer, "opt_id"):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


# --- divergence ----------------------------------------------------------------------------------------


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite, or the optimizer kept skipping steps."""


def _any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any process (all processes must call this together)."""
    import torch

    from domainlm.distributed import several_processes

    dist = several_processes()
    if dist is None:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def weights_finite(model: Any) -> bool:
    import torch

    for p in model.parameters():
        data = getattr(p, "ds_tensor", None)  # ZeRO-3: this process's partition
        data = p.data if data is None else data
        if data.numel() and not bool(torch.isfinite(data).all()):
            return False
    return True


class DivergenceGuard(TrainerCallback):
    """Stops training when the loss is NaN or infinite, when weights about to be saved are not finite, or
    after ``max_skipped_steps`` optimizer steps in a row were skipped for overflowing gradients (fp16).

    ``check_loss`` is called by ``DomainTrainer.compute_loss`` on every training micro-batch, before the
    backward pass, so a bad loss never reaches the weights. A checkpoint holding the very weights that
    gave a non-finite loss (saved at the step before) is marked with ``diverged.json`` and is not
    resumed by default; the message names the last good one.
    """

    def __init__(self, max_skipped_steps: int = 50):
        self.max_skipped_steps = max_skipped_steps
        self.skipped_in_a_row = 0
        self.saved: list[tuple[int, Path]] = []  # (step, folder) of the checkpoints this run can go back to
        self.should_save = True

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.skipped_in_a_row = 0
        self.should_save = args.should_save
        # a resumed run can go back to the checkpoints it started from; a new run to none of the old ones
        self.saved = [
            (step, path)
            for path in checkpoint_dirs(args.output_dir)
            if (step := int(path.name.split("-")[1])) <= state.global_step
            and is_complete_checkpoint(path)
            and not is_diverged(path)
        ]

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.saved.append((state.global_step, Path(args.output_dir) / f"checkpoint-{state.global_step}"))

    def _stop(self, step: int, why: str, bad_weights_step: int | None) -> None:
        """Raise; checkpoints of step ``bad_weights_step`` or later hold the weights that went wrong."""
        bad = [p for s, p in self.saved if bad_weights_step is not None and s >= bad_weights_step]
        good = [p for s, p in self.saved if p not in bad]
        if self.should_save:
            for path in bad:
                from domainlm.tables import write_json

                write_json(path / DIVERGED, {"step": step, "reason": why})
        where = (
            f"the last good checkpoint is {good[-1]} (resume from it with a lower --learning_rate)"
            if good
            else "no good checkpoint was saved before it"
        )
        if bad:
            where += f"; {', '.join(p.name for p in bad)} holds the weights that diverged and is not resumed by default"
        raise TrainingDiverged(
            f"training diverged at step {step}: {why}; stopped without saving the model, {where}. Lower "
            "--learning_rate, keep --max_grad_norm or warm up longer"
        )

    def check_loss(self, loss: Any, state: TrainerState) -> None:
        import torch

        value = loss[0] if isinstance(loss, tuple) else loss
        if _any_rank(not bool(torch.isfinite(value.detach()).all())):
            why = f"the training loss is {float(value.detach().float().mean())}"
            self._stop(state.global_step + 1, why, bad_weights_step=state.global_step)

    def _check_before_save(self, state: TrainerState, control: TrainerControl, model: Any) -> None:
        if control.should_save and model is not None and _any_rank(not weights_finite(model)):
            self._stop(state.global_step, "the weights are no longer finite", bad_weights_step=state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        optimizer = kwargs.get("optimizer")
        if getattr(optimizer, "step_was_skipped", False):
            self.skipped_in_a_row += 1
            if self.max_skipped_steps and self.skipped_in_a_row >= self.max_skipped_steps:
                why = f"{self.skipped_in_a_row} optimizer steps in a row were skipped because the gradients overflowed"
                self._stop(state.global_step, why, bad_weights_step=None)
        else:
            self.skipped_in_a_row = 0
        self._check_before_save(state, control, kwargs.get("model"))

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._check_before_save(state, control, kwargs.get("model"))


class CtrlC(TrainerCallback):
    """Ctrl-C stops training even where Python drops the ``KeyboardInterrupt`` it raised.

    Python raises it wherever the main thread is when SIGINT arrives. Inside a ``__del__`` (a progress
    bar or a file that the garbage collector closes while a checkpoint is written) it only prints
    "Exception ignored in ..." and goes on, and so would training, to the end. While ``watching``, the
    SIGINT handler also remembers the signal, and the next step, save, log or evaluation raises it again.
    SIGTERM gets the same handler: the DeepSpeed launcher answers Ctrl-C by sending it to each rank, and
    a batch scheduler stops a job with it. The run then ends with the same line as after Ctrl-C (how to go
    on) instead of vanishing without a word.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending = False

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Install the handler (main thread only; elsewhere signals are not delivered) and put back the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.pending = False
        previous = {signum: signal.signal(signum, self._on_sigint) for signum in self.SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.pending = True
        raise KeyboardInterrupt

    def _raise_if_pending(self, *args: Any, **kwargs: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt

    on_step_end = on_substep_end = on_save = on_log = on_evaluate = _raise_if_pending


ctrl_c = CtrlC()  # one per process, as SIGINT is
