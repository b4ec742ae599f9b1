"""What is trained, and how fast each part learns.

The model is seen as a stack of layer groups, bottom to top: ``embeddings`` (token and position
embeddings), ``block.0`` ... ``block.{L-1}``, ``head`` (final norm and output head). GPT-2 and GPT-Neo
tie the output head to the token embeddings: that one matrix counts as the head, so it trains
whenever the head does and learns at the head's rate.

- ``--unfreeze_last_n N``: only the last N blocks and the head train; the rest gets
  ``requires_grad=False`` (no gradients, no optimizer state: less memory and compute).
- ``--unfreeze_schedule "0:2,100:4,200:all"``: gradual unfreezing. At step 0 the last 2 blocks (and
  the head) train, from step 100 the last 4, from step 200 everything (``--unfreeze_unit epochs``
  counts epochs instead). Locked groups stay in the optimizer with a learning rate of 0, which
  leaves their weights exactly unchanged and works under every DeepSpeed stage.
- ``--layerwise_lr_decay D``: discriminative learning rates. The head learns at the base rate,
  block L-1 at D times it, block L-2 at D², ..., the position embeddings at D^(L+1).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domainlm.errors import UserError

logger = logging.getLogger(__name__)

_BLOCK = re.compile(r"(?:^|\.)h\.(\d+)\.")
_EMBEDDINGS = ("wte.", "wpe.", "embed_tokens.", "embed_positions.")


def group_of(name: str, n_layers: int) -> int:
    """Depth of a parameter by name: 0 = embeddings, 1..L = blocks, L+1 = head (final norm, lm_head)."""
    m = _BLOCK.search(name)
    if m:
        return int(m.group(1)) + 1
    if any(e in name for e in _EMBEDDINGS):
        return 0
    return n_layers + 1


def depths(model: Any) -> dict[str, int]:
    """Depth of each named parameter; a token embedding tied to the output head counts as the head."""
    n_layers = n_layers_of(model)
    head = model.get_output_embeddings()
    head_weight = head.weight if head is not None else None
    return {
        name: n_layers + 1 if p is head_weight else group_of(name, n_layers) for name, p in model.named_parameters()
    }


def group_name(depth: int, n_layers: int) -> str:
    if depth == 0:
        return "embeddings"
    return "head" if depth == n_layers + 1 else f"block.{depth - 1}"


def n_layers_of(model: Any) -> int:
    config = model.config
    for key in ("n_layer", "num_layers", "num_hidden_layers"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise UserError(f"cannot tell the number of layers of a {type(model).__name__}")


def unlocked_depth(n_last: int | str, n_layers: int) -> int:
    """Lowest depth that trains when the last ``n_last`` blocks (and the head) train."""
    if n_last == "all":
        return 0
    return max(1, n_layers + 1 - int(n_last))


def freeze_all_but_last(model: Any, n_last: int) -> dict[str, int]:
    """``requires_grad=False`` below the last ``n_last`` blocks; returns trainable/frozen counts."""
    n_layers = n_layers_of(model)
    if not 0 <= n_last <= n_layers:
        raise UserError(f"--unfreeze_last_n {n_last}: the model has {n_layers} blocks")
    lowest = unlocked_depth(n_last, n_layers)
    depth = depths(model)
    counts = {"trainable": 0, "frozen": 0}
    for name, p in model.named_parameters():
        train = depth[name] >= lowest
        p.requires_grad_(train)
        counts["trainable" if train else "frozen"] += getattr(p, "ds_numel", p.numel())  # ZeRO-3: full size
    logger.info(
        "training the last %d blocks and the head: %d parameters train, %d are frozen",
        n_last,
        counts["trainable"],
        counts["frozen"],
    )
    return counts


@dataclass
class UnfreezeSchedule:
    """``"0:2,100:4,200:all"`` -> from step (or epoch) 0 the last 2 blocks train, from 100 the last 4, ..."""

    stages: list[tuple[int, int | str]]
    unit: str = "steps"

    @classmethod
    def parse(cls, text: str, unit: str = "steps") -> UnfreezeSchedule:
        stages: list[tuple[int, int | str]] = []
        try:
            for part in text.split(","):
                at, n = part.split(":")
                stages.append((int(at), "all" if n.strip() == "all" else int(n)))
        except ValueError:
            raise UserError(
                f'--unfreeze_schedule {text!r}: expected "STEP:N,STEP:N,...", e.g. "0:2,100:4,200:all"'
            ) from None
        steps = [at for at, _ in stages]
        bad = next((f"{at}:{n}" for at, n in stages if at < 0 or (n != "all" and n < 0)), None)
        if bad or len(set(steps)) < len(steps):
            why = f"{bad} counts below 0" if bad else "a step is given twice"
            raise UserError(f'--unfreeze_schedule {text!r}: {why}; expected "STEP:N,..." such as "0:2,100:4,200:all"')
        stages.sort()
        for (at, n), (later, m) in itertools.pairwise(stages):
            if n == "all" or (m != "all" and m <= n):  # blocks never freeze again: that stage would do nothing
                raise UserError(
                    f"--unfreeze_schedule {text!r}: {later}:{m} unfreezes no more blocks than {at}:{n} before it; "
                    'each stage adds blocks, e.g. "0:2,100:4,200:all"'
                )
        if stages[0][0] != 0:
            stages.insert(0, (0, 0))
        if unit not in ("steps", "epochs"):
            raise UserError(f"--unfreeze_unit {unit}: use steps or epochs")
        return cls(stages, unit)

    def check_blocks(self, n_layers: int) -> None:
        """As ``--unfreeze_last_n``: no stage may unfreeze more blocks than the model has."""
        for at, n in self.stages:
            if n != "all" and n > n_layers:
                raise UserError(
                    f"--unfreeze_schedule: {at}:{n} unfreezes {n} blocks and the model has {n_layers}; "
                    f"write {at}:all for every block"
                )

    def unlocked_at(self, depth: int, n_layers: int) -> int | None:
        """The step (or epoch, per ``unit``) from which the layer group at ``depth`` trains; None: never."""
        return next((at for at, n in self.stages if depth >= unlocked_depth(n, n_layers)), None)

    def n_last(self, step: int, epoch: float) -> int | str:
        now = step if self.unit == "steps" else math.floor(epoch + 1e-9)
        current: int | str = self.stages[0][1]
        for at, n in self.stages:
            if now >= at:
                current = n
        return current


def parameter_groups(
    model: Any,
    lr: float,
    weight_decay: float,
    decay_names: set[str],
    layerwise_lr_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer groups per layer group (and with/without weight decay), trainable parameters only.

    Each group carries ``layer`` (its name), ``depth`` and ``lr_scale``, so a schedule can gate it.
    """
    n_layers = n_layers_of(model)
    depth = depths(model)
    buckets: dict[tuple[int, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        buckets.setdefault((depth[name], name in decay_names), []).append(p)
    groups = []
    for (depth, decay), params in sorted(buckets.items()):
        scale = layerwise_lr_decay ** (n_layers + 1 - depth) if layerwise_lr_decay else 1.0
        groups.append(
            {
                "params": params,
                "lr": lr * scale,
                "weight_decay": weight_decay if decay else 0.0,
                "layer": group_name(depth, n_layers),
                "depth": depth,
                "lr_scale": scale,
            }
        )
    return groups


def gated_lambdas(
    base: Callable[[int], float],
    groups: list[dict[str, Any]],
    schedule: UnfreezeSchedule,
    n_layers: int,
    epoch: Callable[[], float],
) -> list[Callable[[int], float]]:
    """One learning-rate multiplier per group: the base schedule, times 0 while the group is locked."""

    def make(depth: int) -> Callable[[int], float]:
        def factor(step: int) -> float:
            lowest = unlocked_depth(schedule.n_last(step, epoch()), n_layers)
            return base(step) if depth >= lowest else 0.0

        return factor

    return [make(g["depth"]) for g in groups]
