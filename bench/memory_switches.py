#!/usr/bin/env python
"""What each memory switch buys on a GPT-2-sized model: activation memory and step time, with and without.

    python bench/memory_switches.py                       # gpt2 (124M), 1 x 256 tokens, CPU, 3 steps each
    python bench/memory_switches.py --json_out work/bench/switches.json
    python bench/memory_switches.py --model gpt2-medium --batch_size 8 --seq_len 1024 --device cuda

Switches, applied through transformers' own APIs (the same ones run_clm's flags use):

- checkpointing: ``model.activation_checkpointing_enable()`` (``gradient_checkpointing_enable`` before
  5.x): each block's activations are recomputed in the backward instead of kept;
- fused_gelu: ``activation_function="gelu_pytorch_tanh"`` instead of GPT-2's ``gelu_new`` (the same tanh
  formula in one kernel instead of several, each keeping its own intermediate);
- padded_vocab: ``resize_token_embeddings(50,259, pad_to_multiple_of=64)`` -> 50,304 rows (GPT-2's
  vocabulary plus <|pad|> and <|SEP|>, rounded up for aligned matrix products);
- all: the three together.

Every configuration keeps the named size's shape: a ``--seq_len`` over its position table (1,024 for the
GPT-2 sizes) is refused rather than widening the table, which would measure another model; widen it on
purpose with ``--config_overrides n_positions=N``.

Each configuration is its own model, randomly initialised with the same seed, all resident at once so
the timed steps run round-robin (rotating order) and machine noise falls on all alike. Batches are
random token ids of a fixed shape (the cost of a step does not depend on which tokens), every
position carrying loss. The optimizer is plain SGD, which keeps no state, so five models fit side by
side; AdamW would add the same time and memory to every configuration.

Activation memory is what the forward leaves for the backward: the resident set (CPU) or allocated
tensors (CUDA) after the forward minus before it, freed heap returned to the system before each
reading. ``saved`` counts the bytes autograd saves for the backward (saved-tensor hooks, parameters
excluded); under checkpointing it sees only what is saved outside the checkpointed blocks, not the
block inputs the checkpoint keeps. ``step +MiB`` is the highest point of the whole step (activations,
gradients, logits) over the start.

Step times on a shared machine are noisy: the table gives the median and the minimum of the timed
steps, and compares configurations by their minimum (the least disturbed step of each).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/memory_switches.py` from anywhere finds domainlm and bench

CONFIGS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "checkpointing": ("checkpointing",),
    "fused_gelu": ("fused_gelu",),
    "padded_vocab": ("padded_vocab",),
    "all": ("checkpointing", "fused_gelu", "padded_vocab"),
}


@dataclass
class SwitchArguments:
    model: str = field(default="gpt2", metadata={"help": "A named size (see bench/models.py); gpt2 is 124M."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config values over the named size, e.g. n_layer=2,n_embd=32,n_head=2."}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "Embedding rows before padding; default GPT-2's 50,257 + 2 added tokens."}
    )
    batch_size: int = field(default=1, metadata={"help": "Rows per step."})
    seq_len: int = field(
        default=256,
        metadata={
            "help": "Tokens per row: 1 x 256 positions per step keeps a 124M step near 10 s on 2 loaded cores. At "
            "most the model's positions (GPT-2 sizes 1,024, GPT-Neo 2,048); --config_overrides n_positions=N widens."
        },
    )
    steps: int = field(default=3, metadata={"help": "Timed steps per configuration."})
    configs: list[str] = field(
        default_factory=lambda: list(CONFIGS), metadata={"help": f"Configurations: {' '.join(CONFIGS)}."}
    )
    device: str = field(default="auto", metadata={"help": "auto (cuda when available), cpu, cuda, ..."})
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata={"help": "auto: bf16 autocast on CUDA, fp32 on CPU."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the models and the token ids."})
    json_out: str | None = field(default=None, metadata={"help": "Write every figure to this JSON file."})

    def __post_init__(self) -> None:
        from bench.models import GPT2_VOCAB
        from domainlm.errors import UserError

        unknown = sorted(set(self.configs) - set(CONFIGS))
        if unknown:
            raise UserError(f"--configs {unknown}: choose from {', '.join(CONFIGS)}")
        if min(self.batch_size, self.seq_len, self.steps) < 1:
            raise UserError("--batch_size, --seq_len and --steps must be at least 1")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise UserError(f"--vocab_size {self.vocab_size}: must be at least 1")
        model_config_of(self, self.vocab_size or GPT2_VOCAB)  # --model, --config_overrides, --seq_len, now


def model_config_of(args: SwitchArguments, vocab: int, activation_function: str | None = None) -> Any:
    """The named size's config, its position table kept: a ``--seq_len`` over it is refused, not widened,
    so that ``--model gpt2`` measures GPT-2's own shape (``--config_overrides n_positions=N`` widens it)."""
    from bench.models import model_config

    return model_config(
        args.model,
        vocab,
        args.seq_len,
        args.config_overrides,
        activation_function,
        widen=False,
        length_flag="--seq_len",
    )


def build(args: SwitchArguments, switches: tuple[str, ...], vocab: int, device: Any) -> Any:
    from bench.models import build_model, enable_checkpointing, pad_embedding_rows

    act = "gelu_pytorch_tanh" if "fused_gelu" in switches else None
    config = model_config_of(args, vocab, activation_function=act)
    config.vocab_size = vocab  # exactly the rows asked for, before any padding
    model = build_model(config, seed=args.seed)
    if "padded_vocab" in switches:
        pad_embedding_rows(model, vocab, 64)
    if "checkpointing" in switches:
        enable_checkpointing(model)
    return model.to(device).train()


class SavedBytes:
    """Bytes autograd saves for the backward during a forward, each storage once, parameters excluded."""

    def __init__(self, model: Any) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}

    def pack(self, t: Any) -> Any:
        s = t.untyped_storage()
        if s.data_ptr() not in self.params:
            self.storages[s.data_ptr()] = s.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def memory_in_use(device: Any) -> int:
    from bench.measure import rss_bytes, trim_heap

    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    trim_heap()
    return rss_bytes()


def step(model: Any, optimizer: Any, batch: Any, device: Any, bf16: bool, on_forward: Callable[[], None] | None = None):
    import torch

    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=batch, labels=batch).loss
    if on_forward is not None:
        on_forward()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def measure_memory(model: Any, optimizer: Any, batch: Any, device: Any, bf16: bool) -> dict[str, float]:
    """One untimed step: activations after the forward, bytes saved for the backward, the step's peak."""
    import torch

    from bench.measure import MIB, PeakMemory

    saved = SavedBytes(model)
    readings = {}
    with PeakMemory(device) as peak:
        before = memory_in_use(device)

        def after_forward() -> None:
            readings["after_forward"] = memory_in_use(device)

        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            step(model, optimizer, batch, device, bf16, after_forward)
    return {
        "activations_mib": round((readings["after_forward"] - before) / MIB, 1),
        "saved_for_backward_mib": round(saved.total / MIB, 1),
        "step_peak_increase_mib": round(peak.sample.increase / MIB, 1),
        "step_peak_mib": round(peak.sample.peak / MIB, 1),
        "method": peak.sample.method,
    }


def run(args: SwitchArguments, log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    from bench.measure import StepTimer, load_average, machine, resolve_device
    from bench.models import GPT2_VOCAB, count_parameters

    device = resolve_device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    vocab = args.vocab_size or GPT2_VOCAB
    load_before = load_average()
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    batch = torch.randint(0, vocab, (args.batch_size, args.seq_len), generator=generator).to(device)
    models, optimizers, info = {}, {}, {}
    for name in args.configs:
        models[name] = build(args, CONFIGS[name], vocab, device)
        optimizers[name] = torch.optim.SGD(models[name].parameters(), lr=1e-4)
        info[name] = {
            "parameters": count_parameters(models[name]),
            "embedding_rows": int(models[name].get_input_embeddings().weight.shape[0]),
            "activation_function": models[name].config.activation_function,
        }
    log(f"{len(models)} models built ({args.model}, {info[args.configs[0]]['parameters'] / 1e6:.0f}M parameters)")
    # One step first, so that one-time allocations (thread pools, kernel caches) are in no configuration's figures.
    step(models[args.configs[0]], optimizers[args.configs[0]], batch, device, bf16)
    memory = {}
    for name in args.configs:  # also each model's warm-up
        memory[name] = measure_memory(models[name], optimizers[name], batch, device, bf16)
        log(f"{name}: {memory[name]['activations_mib']:.0f} MiB of activations")
    times: dict[str, list[float]] = {name: [] for name in args.configs}
    names = list(args.configs)
    for r in range(args.steps):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            with StepTimer(device) as timer:
                step(models[name], optimizers[name], batch, device, bf16)
            times[name].append(timer.seconds)
        log(f"round {r + 1}/{args.steps}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names))
    base = names[0]
    results = {}
    for name in names:
        median = statistics.median(times[name])
        results[name] = {
            "switches": list(CONFIGS[name]),
            **info[name],
            "step_s_median": round(median, 3),
            "step_s_min": round(min(times[name]), 3),
            "step_s": [round(t, 3) for t in times[name]],
            **{k: v for k, v in memory[name].items() if k != "method"},
        }
    for name in names:
        r, b = results[name], results[base]
        r["step_time_vs_" + base] = round(r["step_s_min"] / b["step_s_min"], 3)  # least disturbed steps
        r["activations_vs_" + base] = (
            round(r["activations_mib"] / b["activations_mib"], 3) if b["activations_mib"] else None
        )
    return {
        "benchmark": "memory_switches",
        "arguments": asdict(args),
        "machine": machine(device),
        "precision": "bf16 autocast" if bf16 else "fp32",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "date": time.strftime("%Y-%m-%d"),
        "memory_method": memory[base]["method"],
        "configs": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def render(out: dict[str, Any]) -> str:
    from bench.report import fmt_int, fmt_ratio, load_line, markdown_table

    names = list(out["configs"])
    base = names[0]
    rows = [
        [
            name,
            f"{r['step_s_median']:.2f}",
            f"{r['step_s_min']:.2f}",
            fmt_ratio(r[f"step_time_vs_{base}"]),
            fmt_int(r["activations_mib"]),
            fmt_ratio(r[f"activations_vs_{base}"]),
            fmt_int(r["saved_for_backward_mib"]),
            fmt_int(r["step_peak_increase_mib"]),
            fmt_int(r["embedding_rows"]),
        ]
        for name, r in out["configs"].items()
    ]
    header = ["config", "step s (median)", "step s (min)", f"min time vs {base}", "activations MiB", f"vs {base}", "saved MiB",
              "step +MiB", "embedding rows"]  # fmt: skip
    return "\n".join(
        [
            markdown_table(header, rows),
            "",
            f"memory: {out['memory_method']}",
            load_line(out),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.report import run_benchmark

    return run_benchmark(SwitchArguments, run, render, argv, __doc__)


if __name__ == "__main__":
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
