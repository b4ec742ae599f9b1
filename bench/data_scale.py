#!/usr/bin/env python
"""How data preparation grows with the corpus: wall time and peak memory of each stage at several sizes.

    python bench/data_scale.py                                     # 10 and 50 MB of text
    python bench/data_scale.py --sizes_mb 10 50 200 --json_out work/bench/scale.json

The corpus: the paragraphs of ../shared/data/shakespeare/train.txt (else the postings of
data/jobs_sample.csv), repeated up to each size, one word of every copy swapped for another at random
so that no two paragraphs are equal (text2csv drops duplicates). A byte-level BPE of --vocab_size tokens
is trained once, on the first megabyte. Each stage runs in a process of its own, so its peak resident
set is its own:

- ``text2csv --split paragraph``;
- ``text2csv --split tokens --max_tokens 511 --tokenizer ...`` (cuts at sentence, line or word ends);
- ``pack``: training's ``--sequence_mode packed`` data path without the model: the paragraphs
  tokenised as records (``tokenize_records``), then packed into rows of --block_size (``pack_records``).

"growth" is the peak resident set over the one the process had with the stage's libraries imported: growth
that is linear in the corpus keeps seconds and growth per MB of text flat from one size to the next.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/data_scale.py` from anywhere finds domainlm and bench

STAGES = ("text2csv paragraph", "text2csv tokens", "pack")
SHAKESPEARE = ROOT.parent / "shared" / "data" / "shakespeare" / "train.txt"


@dataclass
class ScaleArguments:
    sizes_mb: list[float] = field(default_factory=lambda: [10.0, 50.0], metadata={"help": "Corpus sizes, MB."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the BPE tokenizer."})
    max_tokens: int = field(default=511, metadata={"help": "text2csv --split tokens --max_tokens."})
    block_size: int = field(default=256, metadata={"help": "Rows of the packed stage, tokens."})
    json_out: str | None = field(default=None, metadata={"help": "Write every figure to this JSON file."})

    def __post_init__(self) -> None:
        from domainlm.errors import UserError
        from domainlm.tokenizer import check_bpe_arguments

        if not self.sizes_mb or min(self.sizes_mb) <= 0:
            raise UserError("--sizes_mb: give one or more sizes above 0")
        if self.max_tokens < 1 or self.block_size < 1:
            raise UserError("--max_tokens and --block_size must be at least 1")
        check_bpe_arguments(self.vocab_size)


def seed_paragraphs() -> list[str]:
    """The paragraphs the corpus is made of: the guide's sonnets when present, else the bundled postings."""
    if SHAKESPEARE.is_file():
        text = SHAKESPEARE.read_text(encoding="utf-8").replace("\r\n", "\n")
        return [p.strip() for p in text.split("\n\n") if len(p.split()) > 3]
    from domainlm.tables import read_table

    return [str(r["text"]).strip() for r in read_table(ROOT / "data" / "jobs_sample.csv")]


def write_corpus(path: Path, size_mb: float, paragraphs: list[str], seed: int = 0) -> int:
    """Paragraphs repeated up to ``size_mb`` MB, one word of each copy swapped; returns the paragraphs written."""
    rng = random.Random(seed)
    vocabulary = sorted({w for p in paragraphs for w in p.split()})
    limit, written, n = int(size_mb * 1e6), 0, 0
    with path.open("w", encoding="utf-8") as f:
        while written < limit:
            words = paragraphs[n % len(paragraphs)].split(" ")
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
            chunk = " ".join(words) + "\n\n"
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
            n += 1
    return n


def child(stage: str, corpus: str, work: str, args: dict[str, Any]) -> dict[str, Any]:
    """One stage, in this (fresh) process: its counts, seconds, peak resident set and that peak's growth
    over the resident set once the stage's libraries are imported."""
    import resource

    from transformers import AutoTokenizer

    from domainlm.data import load_text_dataset, pack_records, tokenize_records
    from domainlm.text2csv import Text2CsvArgs, text2csv

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    if stage == "pack":  # its input: the paragraphs as rows, written before the clock starts
        text2csv(Text2CsvArgs(inputs=[corpus], output_dir=f"{work}/rows", split="paragraph", validation_fraction=0))
    base, started = peak_mib(), time.perf_counter()
    if stage.startswith("text2csv"):
        split = stage.split()[1]
        extra = {"max_tokens": args["max_tokens"], "tokenizer": f"{work}/tokenizer"} if split == "tokens" else {}
        stats = text2csv(Text2CsvArgs(inputs=[corpus], output_dir=f"{work}/out-{split}", split=split, **extra))
        counts: dict[str, Any] = {"examples": sum(s["examples"] for s in stats["splits"].values())}
    else:
        rows = load_text_dataset(f"{work}/rows/train.csv", cache_dir=f"{work}/cache")
        tokenizer = AutoTokenizer.from_pretrained(f"{work}/tokenizer")
        records = tokenize_records(rows, tokenizer, args["block_size"], load_from_cache_file=False)
        packed = pack_records(records, args["block_size"])
        counts = {"records": len(records), "packed_rows": len(packed)}
    peak = peak_mib()
    return {**counts, "seconds": time.perf_counter() - started, "peak_rss_mib": peak, "growth_mib": peak - base}


def run(args: ScaleArguments, log: Any = print) -> dict[str, Any]:
    from bench.measure import load_average, machine, resolve_device
    from domainlm.errors import UserError
    from domainlm.tokenizer import train_bpe_tokenizer

    paragraphs = seed_paragraphs()
    load_before, started = load_average(), time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        write_corpus(work / "first.txt", 1.0, paragraphs)
        first = (work / "first.txt").read_text(encoding="utf-8").split("\n\n")
        train_bpe_tokenizer(first, args.vocab_size).save_pretrained(work / "tokenizer")
        for size in args.sizes_mb:
            corpus = work / f"corpus-{size:g}.txt"
            n = write_corpus(corpus, size, paragraphs)
            for stage in STAGES:
                cmd = [sys.executable, __file__, "--_child", json.dumps([stage, str(corpus), tmp, asdict(args)])]
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
                    raise UserError(f"{stage} at {size:g} MB: {last}")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                r.update(mb=size, paragraphs=n, s_per_mb=r["seconds"] / size, growth_mib_per_mb=r["growth_mib"] / size)
                results[f"{stage} @ {size:g} MB"] = r
                log(f"{stage} @ {size:g} MB: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB")
    return {
        "benchmark": "data_scale",
        "arguments": asdict(args),
        "source": str(SHAKESPEARE if SHAKESPEARE.is_file() else ROOT / "data" / "jobs_sample.csv"),
        "machine": machine(resolve_device("cpu")),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "date": time.strftime("%Y-%m-%d"),
        "stages": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def render(out: dict[str, Any]) -> str:
    from bench.report import fmt_int, load_line, markdown_table

    rows = [
        [
            name,
            fmt_int(r["paragraphs"]),
            f"{r['seconds']:.1f}",
            fmt_int(r["peak_rss_mib"]),
            fmt_int(r["growth_mib"]),
            f"{r['s_per_mb']:.2f}",
            f"{r['growth_mib_per_mb']:.1f}",
        ]
        for name, r in out["stages"].items()
    ]
    header = ["stage @ size", "paragraphs", "s", "peak RSS MiB", "growth MiB", "s per MB", "growth MiB per MB"]
    table = markdown_table(header, rows)
    return "\n".join(
        [
            table,
            "",
            f"source: {out['source']}",
            load_line(out),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.report import run_benchmark

    return run_benchmark(ScaleArguments, run, render, argv, __doc__)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_child":
        from bench.report import quiet_libraries

        with quiet_libraries():
            print(json.dumps(child(*json.loads(sys.argv[2]))), flush=True)
        sys.exit(0)
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
