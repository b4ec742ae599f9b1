#!/usr/bin/env python
"""Training throughput of five ways to build sequences from the same records, measured side by side.

    python bench/train_throughput.py                                  # tiny GPT-2, block 1024, real postings
    python bench/train_throughput.py --json_out work/bench/throughput.json
    python bench/train_throughput.py --model gpt2 --batch_size 4 --steps 4 --profile packed pad_max
    python bench/train_throughput.py --modes packed packed_mask concat --profile packed packed_mask  # attention A/B
    python bench/train_throughput.py --model EleutherAI/gpt-neo-1.3B --device cuda   # bf16 autocast on a GPU

Modes (see bench/modes.py): pad_max (every record padded to the block, the original project's way),
concat (upstream run_clm: concatenate and cut), dynamic (records padded per batch), grouped
(length-grouped batches), packed (records packed per row, none attending to another; with GPT-2 on
sdpa each record's attention runs on its own and a batch's rows run end to end without pad tails, as in
training: domainlm/packed_attention.py), and, on request, packed_mask (the same rows, padded per batch,
through transformers' block-diagonal mask). Every step
of every mode holds --batch_size rows of at most --block_size tokens (the same token budget); the
modes take steps in turn, round-robin with the order rotating each round, so machine noise falls on
all alike. One shared model and AdamW optimizer serve all modes: a step costs the same whatever the
weights, and memory stays that of one model.

How the figures are made. Each mode's whole epoch is built and counted exactly (positions, pads,
useful positions: those whose next-token label carries loss). The timed steps are a sample of the
epoch's batches spread over their sizes; per step, seconds per position; a mode's cost is the median
over its steps, so that a step slowed down by another process does not move it. Then, per mode:
total tokens/s = 1 / cost, useful tokens/s = the epoch's useful share / cost, epoch time = the
epoch's positions x cost. Hence every ratio splits into useful share x cost per position. The plain
totals over the timed steps are in the JSON too (``timed_steps``).

Prints a table per mode (useful and total tokens/s, padding, useful share, µs per position, median
step time, peak memory: RSS on CPU, allocated tensors on CUDA; epoch steps and time), then packed ÷
pad_max and packed ÷ concat against the goals (2.0x and 0.9x), e.g. (measured figures and commands
in docs/benchmarks.md):

    | mode | useful tok/s | total tok/s | padding | useful share | µs/position | ...
    packed / pad_max, useful tokens/s: 1.8x (goal 2.0x: MISSED) = useful share 1.6x x cost per position 1.1x; ...
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/train_throughput.py` from anywhere finds domainlm and bench

GOALS = {"packed_vs_pad_max": 2.0, "packed_vs_concat": 0.9}


@dataclass
class ThroughputArguments:
    model: str = field(
        default="tiny",
        metadata={
            "help": "tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl, gpt-neo-125m, gpt-neo-1.3b, gpt-neo-2.7b "
            "(hub spellings such as EleutherAI/gpt-neo-1.3B too); randomly initialised."
        },
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config values over the named size, e.g. n_layer=2,n_embd=32,n_head=2."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "sdpa, eager or flash_attention_2 (default: sdpa for GPT-2, eager for GPT-Neo). With packed "
            "rows GPT-2's sdpa becomes sdpa_packed, as in training: SDPA per record; the other modes' batches still "
            "take plain sdpa. On flash_attention_2 (GPU, bf16) packed batches take one varlen call, as in training."
        },
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "Raw postings for prepare_jobs; default ../shared/data/jobs/linkedin_936.pkl (or .csv) "
            "when present, else data/jobs_sample.csv."
        },
    )
    max_records: int | None = field(default=None, metadata={"help": "Use only the first N prepared rows."})
    tokenizer: str | None = field(
        default=None, metadata={"help": "A local tokenizer folder; default: a byte-level BPE trained on the rows."}
    )
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the BPE trained on the rows."})
    block_size: int = field(
        default=1024,
        metadata={
            "help": "Longest sequence; rows over it are dropped (counted). Over the model's position table (1,024 "
            "for GPT-2 sizes) the table is widened to it, and the output says so."
        },
    )
    batch_size: int = field(
        default=4,
        metadata={
            "help": "Rows per step, every mode: 4 x 1024 = 4,096 positions (a round of five tiny-model steps "
            "takes about a minute on 2 loaded CPU cores); raise it on a GPU."
        },
    )
    steps: int = field(default=6, metadata={"help": "Timed optimizer steps per mode."})
    warmup_steps: int = field(
        default=0,
        metadata={
            "help": "Extra untimed rounds. Each mode's memory step (on its largest batch) already runs "
            "untimed before the timed rounds, after one step that allocates the optimizer state."
        },
    )
    modes: list[str] = field(
        default_factory=lambda: ["pad_max", "concat", "dynamic", "grouped", "packed"],
        metadata={
            "help": "Modes to compare: pad_max concat dynamic grouped packed, and packed_mask (packed batches "
            "through the block-diagonal mask, the attention before domainlm/packed_attention.py)."
        },
    )
    device: str = field(default="auto", metadata={"help": "auto (cuda when available), cpu, cuda, cuda:1, ..."})
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata={"help": "auto: bf16 autocast on CUDA, fp32 on CPU."}
    )
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's, one per core)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (does not change the speed)."})
    seed: int = field(default=0, metadata={"help": "Seed of the model, the shuffles and the batch sample."})
    profile: list[str] = field(
        default_factory=list,
        metadata={"help": "Modes to profile for one step each with torch.profiler (top operators printed)."},
    )
    json_out: str | None = field(default=None, metadata={"help": "Write every figure to this JSON file."})

    def __post_init__(self) -> None:
        from bench.corpus import check_source
        from bench.models import model_config
        from bench.modes import MODES
        from domainlm.errors import UserError
        from domainlm.tokenizer import TOKENIZER_FILES, check_bpe_arguments, check_pretrained_name

        bad = sorted(set(self.modes) - set(MODES)) + sorted(set(self.profile) - set(self.modes))
        if bad:
            raise UserError(f"--modes/--profile {bad}: choose from {', '.join(MODES)} (profile: from --modes)")
        if min(self.block_size, self.batch_size, self.steps) < 1 or self.warmup_steps < 0:
            raise UserError("--block_size, --batch_size and --steps must be at least 1, --warmup_steps 0+")
        for flag in ("max_records", "threads"):
            if getattr(self, flag) is not None and getattr(self, flag) < 1:
                raise UserError(f"--{flag} {getattr(self, flag)}: must be at least 1")
        # the rest before any data is prepared: --data, --model and --config_overrides, the tokenizer's flags
        check_source(self.data)
        model_config(self.model, 1, self.block_size, self.config_overrides)
        if self.tokenizer:
            hint = "make one with create_tokenizer.py, or leave --tokenizer out to train a BPE on the rows"
            check_pretrained_name(self.tokenizer, "--tokenizer", "tokenizer", TOKENIZER_FILES, hint, local_only=True)
        else:
            check_bpe_arguments(self.vocab_size)


@contextlib.contextmanager
def plain_sdpa(model: Any) -> Any:
    """Transformers' own sdpa for the steps inside (``packed_mask``), then the model's attention again."""
    from domainlm.packed_attention import use_plain_sdpa

    name = model.config._attn_implementation
    use_plain_sdpa(model)
    try:
        yield
    finally:
        if model.config._attn_implementation != name:
            model.set_attn_implementation(name)


def model_inputs(model: Any, batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """The batch on ``device``; packed rows on ``flash_attention_2`` get the varlen arguments training's
    collator adds (``domainlm.data.flash_varlen_kwargs``), so that records stay apart."""
    import torch

    from domainlm.data import flash_varlen_kwargs

    if "position_ids" in batch and model.config._attn_implementation == "flash_attention_2":
        batch = {**batch, **flash_varlen_kwargs(batch["position_ids"])}
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_step(model: Any, optimizer: Any, batch: dict[str, Any], device: Any, bf16: bool) -> Any:
    """One optimizer step as the Trainer takes it: forward, backward, clip to 1.0, AdamW, zero grads."""
    import torch
    from torch.profiler import record_function  # labels the phases for --profile; negligible otherwise

    inputs = model_inputs(model, batch, device)
    with record_function("phase:forward"), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(**inputs).loss
    with record_function("phase:backward"):
        loss.backward()
    with record_function("phase:optimizer"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def isolation_check(model: Any, batches: list[dict[str, Any]], device: Any) -> dict[str, Any]:
    """Logits of the packed row holding the most records against each record run alone (eval mode; fp32,
    or bf16 autocast on ``flash_attention_2``, which has no fp32 kernel).

    No difference (up to float rounding: 1e-3 in fp32, 5e-2 in bf16) means no record attended to another.
    """
    import torch

    def spans(batch: dict[str, Any], i: int) -> list[tuple[int, int]]:
        starts = [*(batch["position_ids"][i] == 0).nonzero().flatten().tolist(), batch["input_ids"].shape[1]]
        # a segment whose labels are all ignored is the pad tail, not a record
        return [(a, b) for a, b in itertools.pairwise(starts) if (batch["labels"][i, a:b] != -100).any()]

    batch, row = max(((b, i) for b in batches for i in range(len(b["input_ids"]))), key=lambda t: len(spans(*t)))
    ids, pos = batch["input_ids"][row], batch["position_ids"][row]
    was_training = model.training
    model.eval()
    worst = 0.0
    half = model.config._attn_implementation == "flash_attention_2"
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=half):
        one_row = model_inputs(model, {"input_ids": ids[None], "position_ids": pos[None]}, device)
        packed = model(**one_row).logits[0].float()
        for a, b in spans(batch, row):
            alone = model(input_ids=ids[None, a:b].to(device)).logits[0].float()
            worst = max(worst, (packed[a:b] - alone).abs().max().item())
    model.train(was_training)
    tolerance = 5e-2 if half else 1e-3
    return {"records_in_row": len(spans(batch, row)), "max_abs_logit_diff": worst, "isolated": worst < tolerance}


def profile_step(model: Any, optimizer: Any, batch: dict[str, Any], device: Any, bf16: bool) -> dict[str, Any]:
    """torch.profiler over one step: time per phase, attention kernels, matrix products, and the top operators."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        train_step(model, optimizer, batch, device, bf16)
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.key_averages()

    def self_ms(e: Any) -> float:
        if not cuda:
            return e.self_cpu_time_total / 1000
        return getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) / 1000

    summary = {
        e.key.split(":", 1)[1] + "_ms": round(e.cpu_time_total / 1000, 1) for e in events if e.key.startswith("phase:")
    }
    ops = [e for e in events if not e.key.startswith("phase:")]
    total = sum(self_ms(e) for e in ops)
    attention = sum(self_ms(e) for e in ops if "attention" in e.key or "scaled_dot_product" in e.key)
    matmul = sum(self_ms(e) for e in ops if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
    summary.update(
        ops_self_ms=round(total, 1),
        attention_ms=round(attention, 1),
        matmul_ms=round(matmul, 1),
        attention_share=round(attention / total, 3) if total else None,
        matmul_share=round(matmul / total, 3) if total else None,
    )
    try:
        table = events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=15)
    except (AttributeError, KeyError, ValueError):  # older torch names the device column self_cuda_time_total
        table = events.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=15)
    summary["table"] = table
    return summary


def packed_rows(data: dict[str, Any], block_size: int) -> dict[str, Any]:
    """Rows the project's packing made and how full they are (``pack_records``: best-fit decreasing)."""
    if "packed" not in data:
        return {}
    rows = data["packed"].rows
    return {"rows": rows, "fill": round(data["packed"].totals().real / (rows * block_size), 4)}


def run(args: ThroughputArguments, log: Any = print) -> dict[str, Any]:
    import statistics

    import torch

    from bench.corpus import default_source, get_tokenizer, load_rows, prepare_rows
    from bench.measure import MIB, PeakMemory, StepTimer, load_average, machine, resolve_device
    from bench.models import build_model, count_parameters, default_attention, model_config, widened_positions
    from bench.modes import DESCRIPTIONS, MASK_PATH, MIXING, build_modes, packing_bounds
    from bench.report import DROP_HINT
    from domainlm.data import tokenize_records
    from domainlm.packed_attention import runs_per_record

    device = resolve_device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    source = Path(args.data) if args.data else default_source()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        prep = prepare_rows(source, tmp, log=lambda _: None)
        rows = load_rows(Path(tmp) / "train.csv", args.max_records, cache_dir=str(Path(tmp) / "cache"))
        tokenizer = get_tokenizer(rows["text"], args.tokenizer, args.vocab_size, args.block_size)
        records = tokenize_records(
            rows, tokenizer, args.block_size, keep_text=True, load_from_cache_file=False, drop_hint=DROP_HINT
        )
        lengths = [len(x) for x in records["input_ids"]]
        bounds = packing_bounds(lengths, args.block_size)
        config = model_config(args.model, len(tokenizer), args.block_size, args.config_overrides)
        attn = args.attn_implementation or default_attention(config)
        flatten = runs_per_record(config.model_type, attn)  # as training collates packed rows
        data = build_modes(records, tokenizer, args.block_size, args.batch_size, args.modes, args.seed, flatten)
    corpus = {
        "source": str(source),
        "postings_read": prep["read"],
        "rows_prepared": len(rows),
        "records_used": len(lengths),
        "dropped_over_block": len(rows) - len(lengths),
        "tokens_per_record": {"mean": round(statistics.mean(lengths), 1), "min": min(lengths), "max": max(lengths)},
        "mean_record_share_of_block": round(statistics.mean(lengths) / args.block_size, 3),
        "packing": {**bounds, **packed_rows(data, args.block_size)},
        "tokenizer": args.tokenizer or f"byte-level BPE trained on the rows, {len(tokenizer)} tokens",
        "preparation_s": round(time.perf_counter() - started, 1),
    }
    log(
        f"corpus: {corpus['records_used']} records from {source.name} ({corpus['dropped_over_block']} over "
        f"{args.block_size} tokens dropped), {corpus['tokens_per_record']['mean']:.0f} tokens per record on average"
    )

    model = build_model(config, args.attn_implementation, args.seed, packed_rows="packed" in args.modes).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, fused=device.type == "cuda")
    n_params = count_parameters(model)
    own_positions = widened_positions(args.model, config)
    widened = f", position table widened from {own_positions} to {args.block_size}" if own_positions else ""
    log(
        f"model: {args.model}, {n_params / 1e6:.1f}M parameters, {model.config._attn_implementation} attention, "
        f"{'bf16 autocast' if bf16 else 'fp32'} on {device}{widened}"
    )

    isolation = isolation_check(model, data["packed"].batches, device) if "packed" in data else None

    def step(m: str, batch: dict[str, Any], take: Any = train_step) -> Any:
        with plain_sdpa(model) if m in MASK_PATH else contextlib.nullcontext():
            return take(model, optimizer, batch, device, bf16)

    modes = list(args.modes)
    picks = {m: data[m].sample(args.steps) for m in modes}
    # One step allocates AdamW's state; then each mode's largest batch, measured for peak memory, is that
    # mode's warm-up (first use of its shapes), so no timed step pays for either.
    step(modes[0], data[modes[0]].batches[picks[modes[0]][0]])
    memory = {}
    for m in modes:
        with PeakMemory(device) as peak:
            step(m, data[m].batches[data[m].largest()])
        memory[m] = peak.sample
    for w in range(args.warmup_steps):
        for m in modes:
            step(m, data[m].batches[picks[m][w % len(picks[m])]])
    times: dict[str, list[float]] = {m: [] for m in modes}
    losses: dict[str, list[Any]] = {m: [] for m in modes}
    for r in range(args.steps):
        for m in modes[r % len(modes) :] + modes[: r % len(modes)]:  # rotate who goes first
            with StepTimer(device) as timer:
                losses[m].append(step(m, data[m].batches[picks[m][r]]))
            times[m].append(timer.seconds)
        log(f"round {r + 1}/{args.steps}: " + ", ".join(f"{m} {times[m][-1]:.2f}s" for m in modes))
    profiles = {}
    for m in args.profile:
        profiles[m] = step(m, data[m].batches[picks[m][len(picks[m]) // 2]], profile_step)

    results: dict[str, dict[str, Any]] = {}
    for m in modes:
        stats = [data[m].stats[i] for i in picks[m]]
        seconds = sum(times[m])
        useful, total, real = (sum(getattr(s, k) for s in stats) for k in ("useful", "total", "real"))
        epoch = data[m].totals()
        # Seconds per position: the median over the mode's steps, so that a step another process slowed
        # down does not move the figure; the epoch's exact token counts then give its rates and time.
        per_position = statistics.median(t / s.total for t, s in zip(times[m], stats, strict=True))
        results[m] = {
            "description": DESCRIPTIONS[m],
            "useful_tokens_per_s": round(epoch.useful / epoch.total / per_position, 1),
            "total_tokens_per_s": round(1 / per_position, 1),
            "padding_fraction": round(epoch.padding, 4),
            "useful_fraction": round(epoch.useful / epoch.total, 4),
            "us_per_position": round(1e6 * per_position, 2),
            "step_s_median": round(statistics.median(times[m]), 3),
            "step_s_min": round(min(times[m]), 3),
            "step_s": [round(t, 3) for t in times[m]],
            "rows_per_step": args.batch_size,
            "tokens_per_step_mean": round(epoch.total / len(data[m].batches), 1),
            "peak_memory_mib": round(memory[m].peak / MIB, 1),
            "step_memory_increase_mib": round(memory[m].increase / MIB, 1),
            "epoch": {
                "steps": len(data[m].batches),
                "useful_tokens": epoch.useful,
                "total_tokens": epoch.total,
                "estimated_s": round(epoch.total * per_position, 1),
            },
            "timed_steps": {  # the plain totals over the timed steps, for comparison
                "steps": len(times[m]),
                "useful_tokens_per_s": round(useful / seconds, 1),
                "total_tokens_per_s": round(total / seconds, 1),
                "padding_fraction": round(1 - real / total, 4),
            },
            "collate_ms_per_batch": round(1000 * data[m].collate_s / len(data[m].batches), 2),
            "records_attend_to_others": m in MIXING,
            "last_loss": round(float(torch.stack(losses[m]).float()[-1]), 4),
        }

    def ratio(a: str, b: str) -> float | None:
        if a in results and b in results:
            return round(results[a]["useful_tokens_per_s"] / results[b]["useful_tokens_per_s"], 3)
        return None

    def bound(a: str, b: str) -> float | None:  # the ratio if every position cost the same time
        if a in results and b in results:
            return round(results[a]["useful_fraction"] / results[b]["useful_fraction"], 3)
        return None

    def cost(a: str, b: str) -> float | None:  # how much cheaper a position of a is than one of b
        if a in results and b in results:
            return round(results[b]["us_per_position"] / results[a]["us_per_position"], 3)
        return None

    # The fewest rows any packing of these records could make: min_rows (see packing_bounds).
    # Each record's targets are its tokens but the first (never predicted, packed or alone).
    best_packed_fraction = (sum(lengths) - len(lengths)) / (bounds["min_rows"] * args.block_size)
    comparisons = {}
    for key, other in (("packed_vs_pad_max", "pad_max"), ("packed_vs_concat", "concat")):
        r = ratio("packed", other)
        fewest = None
        # At equal cost per position, with the fewest rows any packing could make, each padded to the block:
        # a reference, not a strict bound (a batch is padded to its longest row, which can be shorter; a
        # batch of one row is not padded at all, so there is no such figure).
        if other in results and args.batch_size > 1:
            fewest = round(best_packed_fraction * data[other].totals().total / data[other].totals().useful, 3)
        comparisons[key] = {
            "ratio": r,
            "equal_cost_per_position_ratio": bound("packed", other),
            "cost_per_position_ratio": cost("packed", other),
            "fewest_rows_ratio": fewest,
            "goal": GOALS[key],
            "met": None if r is None else r >= GOALS[key],
        }
    if "packed_mask" in results and "packed" in results:  # same batches: the attention alone differs
        comparisons["packed_vs_packed_mask"] = {
            "ratio": ratio("packed", "packed_mask"),
            "equal_cost_per_position_ratio": bound("packed", "packed_mask"),
            "cost_per_position_ratio": cost("packed", "packed_mask"),
            "fewest_rows_ratio": None,
            "goal": None,
            "met": None,
        }
    if isolation is not None and comparisons["packed_vs_concat"]["met"] is not None:
        comparisons["packed_vs_concat"]["met"] = comparisons["packed_vs_concat"]["met"] and isolation["isolated"]
    out = {
        "benchmark": "train_throughput",
        "arguments": asdict(args),
        "machine": machine(device),
        # OpenMP's wait policy decides what a parallel region costs on an oversubscribed machine (docs/benchmarks.md)
        "environment": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "date": time.strftime("%Y-%m-%d"),
        "model": {
            "name": args.model,
            "parameters": n_params,
            "attn_implementation": model.config._attn_implementation,
            "vocab_size": model.config.vocab_size,
            "positions_widened_from": own_positions,
            "precision": "bf16 autocast" if bf16 else "fp32",
        },
        "corpus": corpus,
        "memory_method": memory[modes[0]].method,
        "packed_isolation": isolation,
        "modes": results,
        "comparisons": comparisons,
        "profiles": profiles,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return out


def render(out: dict[str, Any]) -> str:
    from bench.report import fmt_int, fmt_ratio, load_line, markdown_table

    rows = []
    for m, r in out["modes"].items():
        rows.append(
            [
                m,
                fmt_int(r["useful_tokens_per_s"]),
                fmt_int(r["total_tokens_per_s"]),
                f"{100 * r['padding_fraction']:.1f}%",
                f"{100 * r['useful_fraction']:.1f}%",
                f"{r['us_per_position']:.0f}",
                f"{r['step_s_median']:.2f}",
                fmt_int(r["tokens_per_step_mean"]),
                fmt_int(r["peak_memory_mib"]),
                fmt_int(r["step_memory_increase_mib"]),
                f"{r['epoch']['steps']} / {r['epoch']['estimated_s']:,.0f}",
                "no" if r["records_attend_to_others"] else "yes",
            ]
        )
    mem = "peak GPU MiB" if out["machine"]["device"].startswith("cuda") else "peak RSS MiB"
    header = ["mode", "useful tok/s", "total tok/s", "padding", "useful share", "µs/position", "step s (median)",
              "positions/step", mem, "step +MiB", "epoch steps / est. s", "records isolated"]  # fmt: skip
    lines = [markdown_table(header, rows), ""]
    for key, c in out["comparisons"].items():
        if c["ratio"] is None:
            continue
        a, b = key.split("_vs_")
        if c["goal"] is None:
            lines.append(
                f"{a} / {b}, the same rows in the same steps: useful tokens/s {fmt_ratio(c['ratio'])} = useful share "
                f"{fmt_ratio(c['equal_cost_per_position_ratio'])} (rows end to end, no pad tails) x cost per "
                f"position {fmt_ratio(c['cost_per_position_ratio'])} (attention per record, not the masked square)"
            )
            continue
        status = "met" if c["met"] else "MISSED"
        lines.append(
            f"{a} / {b}, useful tokens/s: {fmt_ratio(c['ratio'])} (goal {c['goal']}x: {status}) = useful share "
            f"{fmt_ratio(c['equal_cost_per_position_ratio'])} x cost per position {fmt_ratio(c['cost_per_position_ratio'])}"
            f"; the fewest rows possible, padded to the block, would give {fmt_ratio(c['fewest_rows_ratio'])}"
        )
    iso = out["packed_isolation"]
    if iso:
        lines.append(
            f"packed isolation: {iso['records_in_row']} records of one row, max |logit difference| against each "
            f"alone {iso['max_abs_logit_diff']:.2e} ({'isolated' if iso['isolated'] else 'NOT isolated'})"
        )
    lines.append(f"memory: {out['memory_method']}")
    lines.append(f"{load_line(out)}; OMP_WAIT_POLICY {out['environment']['OMP_WAIT_POLICY'] or 'unset'}")
    packing = out["corpus"]["packing"]
    if "fill" in packing:
        lines.append(
            f"packing: {packing['rows']} rows {100 * packing['fill']:.1f}% full; at least {packing['min_rows']} rows "
            f"needed ({packing['records_over_half_block']} records over half a block), so at most "
            f"{100 * packing['max_fill']:.1f}% full"
        )
    for m, p in out["profiles"].items():
        phases = ", ".join(f"{k[:-3]} {p[k]:.0f} ms" for k in ("forward_ms", "backward_ms", "optimizer_ms") if k in p)
        lines += [
            "",
            f"profile of one {m} step: {phases}; attention kernels {p['attention_ms']:.0f} ms "
            f"({100 * (p['attention_share'] or 0):.0f}% of operator time), matrix products {p['matmul_ms']:.0f} ms "
            f"({100 * (p['matmul_share'] or 0):.0f}%)",
            p["table"],
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from bench.report import run_benchmark

    return run_benchmark(ThroughputArguments, run, render, argv, __doc__)


if __name__ == "__main__":
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
