#!/usr/bin/env python
"""How fast postings become training rows and tokens: prepare_jobs and tokenisation, rows per second.

    python bench/data_throughput.py                       # the real postings (../shared/data/jobs), 3 rounds
    python bench/data_throughput.py --repeats 5 --json_out work/bench/data.json
    python bench/data_throughput.py --data data/jobs_sample.csv --with_embeddings   # + KeyBERT keywords

Stages, each timed --repeats times, round-robin so machine noise falls on all alike (median shown):

- prepare_jobs from the pickle and from the CSV (keywords given; word lengths; what launch.sh runs),
  with a token-length filter (--tokenizer DIR --max_tokens 1024: every posting tokenised twice),
  and with --reextract (TF-IDF MMR keywords for every posting);
- load_text_dataset: the training loader reading train.csv (cold cache each time);
- train_bpe_tokenizer on the rows (a one-time cost per corpus);
- tokenize_records (training's tokenisation, through datasets.map) and the bare tokenizer call;
- pack_records and concat_and_chunk on the tokenised rows.

Rows per second count input rows (postings read, or rows tokenised). The tokenizer is the byte-level
BPE that launch.sh would train (8,000 tokens). TOKENIZERS_PARALLELISM is left as the caller set it
(launch.sh and the tests set it to false; the JSON records it).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/data_throughput.py` from anywhere finds domainlm and bench


@dataclass
class DataArguments:
    data: str | None = field(
        default=None,
        metadata={
            "help": "Raw postings (.pkl or .csv); default ../shared/data/jobs/linkedin_936.pkl when present "
            "(its .csv twin is timed too), else data/jobs_sample.csv."
        },
    )
    repeats: int = field(default=3, metadata={"help": "Timed rounds over all stages."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the BPE tokenizer."})
    block_size: int = field(default=1024, metadata={"help": "Token limit for the length filter and the sequences."})
    with_embeddings: bool = field(
        default=False,
        metadata={
            "help": "Also time prepare_jobs --reextract with sentence-transformers (KeyBERT MMR; needs "
            "requirements-keywords.txt; minutes on CPU)."
        },
    )
    json_out: str | None = field(default=None, metadata={"help": "Write every figure to this JSON file."})

    def __post_init__(self) -> None:
        from bench.corpus import check_source
        from domainlm.errors import UserError
        from domainlm.tokenizer import check_bpe_arguments

        if self.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if self.block_size < 1:
            raise UserError(f"--block_size {self.block_size}: must be at least 1")
        check_bpe_arguments(self.vocab_size)
        check_source(self.data)


@dataclass
class Stage:
    name: str
    run: Callable[[], dict[str, int]]  # returns {"rows": n, "tokens": n (optional)}
    seconds: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def twin_csv(source: Path) -> Path | None:
    """The CSV with the same rows as a pickle (``linkedin_936.pkl`` -> ``linkedin_936.csv``), if any."""
    csv = source.with_suffix(".csv")
    return csv if source.suffix.lower() in (".pkl", ".pickle") and csv.is_file() else None


def build_stages(args: DataArguments, source: Path, tmp: Path) -> list[Stage]:
    """Prepare once (untimed) for the artefacts later stages need, then the stages themselves."""
    from bench.corpus import load_rows, prepare_rows
    from bench.report import DROP_HINT
    from domainlm.data import concat_and_chunk, load_text_dataset, pack_records, tokenize_records
    from domainlm.jobs import PrepareArguments, prepare_jobs
    from domainlm.tokenizer import train_bpe_tokenizer

    prepared = tmp / "prepared"
    prepare_rows(source, prepared, log=lambda _: None)
    rows = load_rows(prepared / "train.csv", cache_dir=str(tmp / "cache"))
    texts = list(rows["text"])
    tokenizer = train_bpe_tokenizer(texts, vocab_size=args.vocab_size, model_max_length=args.block_size)
    tokenizer.save_pretrained(tmp / "tokenizer")
    records = tokenize_records(
        rows, tokenizer, args.block_size, keep_text=True, load_from_cache_file=False, drop_hint=DROP_HINT
    )
    counter = itertools.count()  # a fresh output folder per run

    def prepare(input_path: Path, **kwargs: Any) -> Callable[[], dict[str, int]]:
        def go() -> dict[str, int]:
            out = tmp / f"out-{next(counter)}"
            a = PrepareArguments(input=str(input_path), output_dir=str(out), validation_fraction=0.1, **kwargs)
            stats = prepare_jobs(a, log=lambda _: None)
            return {"rows": stats["read"], "kept": stats["kept"]}

        return go

    def load() -> dict[str, int]:
        ds = load_text_dataset(str(prepared / "train.csv"), cache_dir=str(tmp / f"cache-{next(counter)}"))
        return {"rows": len(ds)}

    def train_tokenizer() -> dict[str, int]:
        train_bpe_tokenizer(texts, vocab_size=args.vocab_size, model_max_length=args.block_size)
        return {"rows": len(texts)}

    def tokenize() -> dict[str, int]:
        ds = tokenize_records(rows, tokenizer, args.block_size, load_from_cache_file=False, drop_hint=DROP_HINT)
        return {"rows": len(rows), "tokens": sum(len(x) for x in ds["input_ids"])}

    def bare_tokenizer() -> dict[str, int]:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return {"rows": len(texts), "tokens": sum(len(x) for x in ids)}

    def pack() -> dict[str, int]:
        packed = pack_records(records.select_columns(["input_ids", "labels"]), args.block_size)
        return {"rows": len(records), "packed_rows": len(packed)}

    def concat() -> dict[str, int]:
        blocks = concat_and_chunk(
            records.select_columns(["text"]), tokenizer, args.block_size, load_from_cache_file=False
        )
        return {"rows": len(records), "blocks": len(blocks)}

    base = {"keyword_backend": "tfidf", "length_unit": "words"}
    stages = [Stage(f"prepare_jobs {source.suffix[1:]}", prepare(source, **base))]
    csv = twin_csv(source)
    if csv is not None:
        stages.append(Stage("prepare_jobs csv", prepare(csv, **base)))
    stages += [
        Stage(
            f"prepare_jobs {source.suffix[1:]} --tokenizer --max_tokens {args.block_size}",
            prepare(source, keyword_backend="tfidf", tokenizer=str(tmp / "tokenizer"), max_tokens=args.block_size),
        ),
        Stage(f"prepare_jobs {source.suffix[1:]} --reextract (tfidf)", prepare(source, **base, reextract=True)),
        Stage("load_text_dataset train.csv (cold cache)", load),
        Stage("train_bpe_tokenizer", train_tokenizer),
        Stage("tokenize_records (datasets.map)", tokenize),
        Stage("tokenizer(texts) alone", bare_tokenizer),
        Stage("pack_records", pack),
        Stage("concat_and_chunk", concat),
    ]
    if args.with_embeddings:
        embed = {"keyword_backend": "sentence-transformers", "length_unit": "words", "reextract": True}
        stages.append(
            Stage(f"prepare_jobs {source.suffix[1:]} --reextract (sentence-transformers)", prepare(source, **embed))
        )
    return stages


def run(args: DataArguments, log: Callable[[str], None] = print) -> dict[str, Any]:
    from bench.corpus import default_source
    from bench.measure import load_average, machine, resolve_device

    source = Path(args.data) if args.data else default_source()
    load_before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        stages = build_stages(args, source, Path(tmp))
        for r in range(args.repeats):
            k = r % len(stages)
            for stage in stages[k:] + stages[:k]:  # rotate who goes first
                t0 = time.perf_counter()
                stage.counts = stage.run()
                stage.seconds.append(time.perf_counter() - t0)
            log(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{s.name} {s.seconds[-1]:.2f}s" for s in stages))
    results = {}
    for s in stages:
        median = statistics.median(s.seconds)
        entry: dict[str, Any] = {
            **s.counts,
            "seconds_median": round(median, 3),
            "seconds_min": round(min(s.seconds), 3),
            "seconds": [round(x, 3) for x in s.seconds],
            "rows_per_s": round(s.counts["rows"] / median, 1),
        }
        if "tokens" in s.counts:
            entry["tokens_per_s"] = round(s.counts["tokens"] / median, 1)
        results[s.name] = entry
    return {
        "benchmark": "data_throughput",
        "arguments": asdict(args),
        "source": str(source),
        "machine": machine(resolve_device("cpu")),
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
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
            fmt_int(r["rows"]),
            f"{r['seconds_median']:.2f}",
            f"{r['seconds_min']:.2f}",
            fmt_int(r["rows_per_s"]),
            fmt_int(r["tokens_per_s"]) if "tokens_per_s" in r else "",
        ]
        for name, r in out["stages"].items()
    ]
    table = markdown_table(["stage", "rows", "s (median)", "s (min)", "rows/s", "tokens/s"], rows)
    return "\n".join(
        [
            table,
            "",
            f"source: {out['source']}; TOKENIZERS_PARALLELISM={out['tokenizers_parallelism']}",
            load_line(out),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.report import run_benchmark

    return run_benchmark(DataArguments, run, render, argv, __doc__)


if __name__ == "__main__":
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
