#!/usr/bin/env python
"""How data preparation grows with the corpus: wall time and peak memory of each stage at several sizes.

    python bench/data_scale.py                                     # 10 and 50 MB of text
    python bench/data_scale.py --sizes_mb 10 50 200 --json_out work/bench/scale.json
    # prepare_jobs alone, this checkout against another (the code before a change), runs alternating:
    python bench/data_scale.py --stages "prepare_jobs pkl" --sizes_mb 50 200 --repeats 3 --baseline_code ../before

The corpus: the paragraphs of ../shared/data/shakespeare/train.txt (else the postings of
data/jobs_sample.csv), repeated up to each size, one word of every copy swapped for another at random
so that no two paragraphs are equal (text2csv drops duplicates). A byte-level BPE of --vocab_size tokens
is trained once, on the first megabyte. Each stage runs in a process of its own, so its peak resident
set is its own:

- ``text2csv --split paragraph``;
- ``text2csv --split tokens --max_tokens 511 --tokenizer ...`` (cuts at sentence, line or word ends);
- ``pack``: training's ``--sequence_mode packed`` data path without the model: the paragraphs
  tokenised as records (``tokenize_records``), then packed into rows of --block_size (``pack_records``);
- ``prepare_jobs pkl`` and ``prepare_jobs csv``: the user's command ``python prepare_jobs.py --input
  postings.pkl|csv --keyword_backend tfidf --max_tokens 1024 --tokenizer ...`` (or ``--length_unit
  words``), imports included. Its input: the real postings of ../shared/data/jobs/linkedin_936.pkl (else
  data/jobs_sample.csv) repeated until the pickle has the size, one word of each copy's text swapped
  (prepare_jobs drops duplicates), in the original project's pickle shape and as a CSV of the same rows.
  With --baseline_code, another checkout's prepare_jobs.py runs on the same input, the two alternating,
  and their outputs are compared (timings aside).

"growth" is the peak resident set over the one the process had with the stage's libraries imported: growth
that is linear in the corpus keeps seconds and growth per MB of text flat from one size to the next. For
prepare_jobs, "per MB" is per MB of its input file.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/data_scale.py` from anywhere finds domainlm and bench

TEXT_STAGES = ("text2csv paragraph", "text2csv tokens", "pack")
JOBS_STAGES = ("prepare_jobs pkl", "prepare_jobs csv")
STAGES = TEXT_STAGES + JOBS_STAGES
SHAKESPEARE = ROOT.parent / "shared" / "data" / "shakespeare" / "train.txt"
JOBS = ROOT.parent / "shared" / "data" / "jobs" / "linkedin_936.pkl"


@dataclass
class ScaleArguments:
    sizes_mb: list[float] = field(default_factory=lambda: [10.0, 50.0], metadata={"help": "Corpus sizes, MB."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary of the BPE tokenizer."})
    max_tokens: int = field(default=511, metadata={"help": "text2csv --split tokens --max_tokens."})
    block_size: int = field(default=256, metadata={"help": "Rows of the packed stage, tokens."})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES), metadata={"help": f"Stages to run, of: {', '.join(STAGES)}."}
    )
    jobs_length_unit: Literal["tokens", "words"] = field(
        default="tokens",
        metadata={"help": "prepare_jobs --max_tokens 1024 in tokens (--tokenizer: loads transformers) or words."},
    )
    baseline_code: str | None = field(
        default=None,
        metadata={
            "help": "Another checkout of the project: prepare_jobs runs its prepare_jobs.py too, on the same input, "
            "alternating with this checkout's, and the outputs are compared."
        },
    )
    repeats: int = field(default=1, metadata={"help": "Runs of prepare_jobs per size and checkout; the median shows."})
    json_out: str | None = field(default=None, metadata={"help": "Write every figure to this JSON file."})

    def __post_init__(self) -> None:
        from domainlm.errors import UserError
        from domainlm.tokenizer import check_bpe_arguments

        if not self.sizes_mb or min(self.sizes_mb) <= 0:
            raise UserError("--sizes_mb: give one or more sizes above 0")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise UserError(f"--stages {' '.join(unknown)}: choose from {', '.join(STAGES)}")
        if self.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if self.baseline_code is not None and not (Path(self.baseline_code) / "prepare_jobs.py").is_file():
            raise UserError(f"--baseline_code {self.baseline_code}: no prepare_jobs.py there; give a checkout")
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


def seed_postings() -> list[dict[str, Any]]:
    """The postings (title, keywords, text) the prepare_jobs input is made of: the real ones when present,
    else the bundled sample."""
    from domainlm.tables import read_table, rows_from_columns

    if JOBS.is_file():
        from domainlm.pickles import load_plain_pickle

        rows = rows_from_columns(load_plain_pickle(JOBS))
    else:
        rows = read_table(ROOT / "data" / "jobs_sample.csv")
    return [{"title": r["title"], "keywords": r["keywords"], "text": r["text"]} for r in rows]


def write_postings(folder: Path, size_mb: float, postings: list[dict[str, Any]], seed: int = 0) -> int:
    """``postings.pkl`` of about ``size_mb`` MB in the original project's shape (``{'title': {i: str},
    'keywords': {i: [str]}, 'text': {i: str}}``), and ``postings.csv`` of the same rows (keywords joined by
    commas): the postings repeated, one word of each copy's text swapped. Returns the postings written."""
    from domainlm.tables import write_csv

    rng = random.Random(seed)
    vocabulary = sorted({w for p in postings for w in p["text"].split()})
    columns: dict[str, dict[int, Any]] = {"title": {}, "keywords": {}, "text": {}}
    limit, size, n = int(size_mb * 1e6), 0, 0
    while size < limit:
        p = postings[n % len(postings)]
        words = p["text"].split(" ")
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
        keywords = p["keywords"] if isinstance(p["keywords"], list) else str(p["keywords"] or "").split(",")
        row = {"title": p["title"], "keywords": keywords, "text": " ".join(words)}
        for name, value in row.items():
            columns[name][n] = value
        size += sum(len(s.encode("utf-8")) + 3 for s in [row["title"], row["text"], *keywords])  # about its pickle
        n += 1
    with (folder / "postings.pkl").open("wb") as f:
        pickler = pickle.Pickler(f, protocol=4)
        pickler.fast = True  # no memo: each copy's title and keywords are written, and load, as objects of their own
        pickler.dump(columns)
    rows = ({name: columns[name][i] for name in columns} for i in range(n))
    csv_rows = ({**r, "keywords": ",".join(r["keywords"])} for r in rows)
    write_csv(folder / "postings.csv", csv_rows, ["title", "keywords", "text"])
    return n


# Spawns the command and reports it. A process started from the benchmark would begin with the
# benchmark's own peak as its peak (Linux keeps the largest resident set across fork and exec), so the
# command is started from this small one, whose peak stays below the command's.
_MEASURE = """
import json, os, sys, time
out = (os.POSIX_SPAWN_OPEN, 1, sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ, file_actions=[out, (os.POSIX_SPAWN_DUP2, 1, 2)])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage.ru_maxrss / 1024]))
"""


def run_measured(cmd: list[str], log_path: Path) -> tuple[int, float, float]:
    """Run ``cmd`` (a program and its arguments), its output to ``log_path``; its exit code, wall seconds
    and peak resident set in MiB, its own (``os.wait4``: no other process counts; KiB on Linux)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    measure = [sys.executable, "-c", _MEASURE, str(log_path), *cmd]
    proc = subprocess.run(measure, capture_output=True, text=True, env=env, check=True)
    code, seconds, peak = json.loads(proc.stdout)
    return code, seconds, peak


def _untimed(stats: dict[str, Any]) -> dict[str, Any]:
    """prepare_stats.json without what differs between two runs on the same input: timings, --output_dir."""
    out = json.loads(json.dumps(stats))
    out.pop("seconds", None)
    out.get("keywords", {}).pop("seconds", None)
    out.get("arguments", {}).pop("output_dir", None)
    return out


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        return [d for k in keys for d in _differing_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def compare_outputs(ours: Path, theirs: Path) -> list[str]:
    """What differs between two prepare_jobs output folders: a CSV by its bytes, the stats key by key
    (timings and paths aside). Empty when the outputs are the same."""
    diffs = [
        name
        for name in ("train.csv", "validation.csv")
        if (ours / name).is_file() != (theirs / name).is_file()
        or ((ours / name).is_file() and (ours / name).read_bytes() != (theirs / name).read_bytes())
    ]
    stats = [_untimed(json.loads((d / "prepare_stats.json").read_text(encoding="utf-8"))) for d in (ours, theirs)]
    return diffs + [f"prepare_stats.json {key}" for key in _differing_keys(*stats)]


def jobs_stage(stage: str, work: Path, args: ScaleArguments, n: int) -> dict[str, dict[str, Any]]:
    """``prepare_jobs.py`` on ``work``'s postings, this checkout's and --baseline_code's, alternating: per
    checkout the median of --repeats runs, and growth over the same interpreter with the imports done.
    Keyed by the label that follows the stage's name: ``""`` for this checkout, ``" (baseline)"``."""
    from domainlm.errors import UserError

    source = work / f"postings.{stage.split()[1]}"
    mb = source.stat().st_size / 1e6
    tokenizer = str(work / "tokenizer")
    length = ["--length_unit", "words"] if args.jobs_length_unit == "words" else ["--tokenizer", tokenizer]
    flags = ["--keyword_backend", "tfidf", "--max_tokens", "1024", *length]
    imports = "import sys; sys.path.insert(0, sys.argv[1]); import domainlm.jobs"
    if args.jobs_length_unit == "tokens":
        imports += "; from transformers import AutoTokenizer; AutoTokenizer.from_pretrained(sys.argv[2])"
    codes = {"": ROOT} if args.baseline_code is None else {"": ROOT, " (baseline)": Path(args.baseline_code)}
    outputs = {label: work / ("jobs-baseline" if label else "jobs-this") for label in codes}
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in codes}
    log = work / "jobs.log"
    for i in range(args.repeats):
        for label in list(codes)[:: 1 if i % 2 == 0 else -1]:  # the first to run alternates
            script = str(codes[label] / "prepare_jobs.py")
            cmd = [sys.executable, script, "--input", str(source), "--output_dir", str(outputs[label]), *flags]
            code, seconds, peak = run_measured(cmd, log)
            if code != 0:
                last = (log.read_text(errors="replace").strip().splitlines() or ["no message"])[-1]
                raise UserError(f"{stage}{label} at {mb:g} MB: {last}")
            runs[label].append((seconds, peak))
    results = {}
    for label, code_dir in codes.items():
        _, _, base = run_measured([sys.executable, "-c", imports, str(code_dir), tokenizer], log)
        peak = statistics.median(p for _, p in runs[label])
        results[label] = {
            "postings": n,
            "input_mb": mb,
            "seconds": statistics.median(s for s, _ in runs[label]),
            "peak_rss_mib": peak,
            "growth_mib": peak - base,
            "runs": [{"seconds": s, "peak_rss_mib": p} for s, p in runs[label]],
        }
    if args.baseline_code is not None:
        results[""]["differs_from_baseline"] = compare_outputs(outputs[""], outputs[" (baseline)"])
    return results


def run(args: ScaleArguments, log: Any = print) -> dict[str, Any]:
    from bench.measure import load_average, machine, resolve_device
    from domainlm.errors import UserError
    from domainlm.tokenizer import train_bpe_tokenizer

    paragraphs = seed_paragraphs()
    postings = seed_postings() if set(args.stages) & set(JOBS_STAGES) else []
    load_before, started = load_average(), time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        jobs_tokens = args.jobs_length_unit == "tokens" and bool(postings)
        if jobs_tokens or {"text2csv tokens", "pack"} & set(args.stages):
            write_corpus(work / "first.txt", 1.0, paragraphs)
            first = (work / "first.txt").read_text(encoding="utf-8").split("\n\n")
            train_bpe_tokenizer(first, args.vocab_size).save_pretrained(work / "tokenizer")
        for size in args.sizes_mb:
            corpus = work / f"corpus-{size:g}.txt"
            n = write_corpus(corpus, size, paragraphs) if set(args.stages) & set(TEXT_STAGES) else 0
            n_postings = write_postings(work, size, postings) if postings else 0
            for stage in [s for s in STAGES if s in args.stages]:
                if stage in JOBS_STAGES:
                    for label, r in jobs_stage(stage, work, args, n_postings).items():
                        mb = r["input_mb"]
                        r.update(mb=mb, s_per_mb=r["seconds"] / mb, growth_mib_per_mb=r["growth_mib"] / mb)
                        results[f"{stage}{label} @ {size:g} MB"] = r
                        log(f"{stage}{label} @ {size:g} MB: {r['seconds']:.1f} s, peak {r['peak_rss_mib']:,.0f} MiB")
                    continue
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
        "jobs_source": str(JOBS if JOBS.is_file() else ROOT / "data" / "jobs_sample.csv") if postings else None,
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
            fmt_int(r["paragraphs"] if "paragraphs" in r else r["postings"]),
            f"{r['mb']:.1f}",
            f"{r['seconds']:.1f}",
            fmt_int(r["peak_rss_mib"]),
            fmt_int(r["growth_mib"]),
            f"{r['s_per_mb']:.2f}",
            f"{r['growth_mib_per_mb']:.1f}",
        ]
        for name, r in out["stages"].items()
    ]
    header = ["stage @ size", "paragraphs / postings", "MB", "s", "peak RSS MiB", "growth MiB", "s per MB",
              "growth MiB per MB"]  # fmt: skip
    lines = [markdown_table(header, rows), "", f"source: {out['source']}"]
    if out.get("jobs_source"):
        lines.append(f"postings: {out['jobs_source']}")
    for name, r in out["stages"].items():
        baseline = out["stages"].get(name.replace(" @ ", " (baseline) @ "))
        if baseline is None or "differs_from_baseline" not in r:
            continue
        same = "same output" if not r["differs_from_baseline"] else "differs: " + ", ".join(r["differs_from_baseline"])
        lines.append(
            f"{name}, baseline / this: {baseline['seconds'] / r['seconds']:.2f}x the time, "
            f"{baseline['peak_rss_mib'] / r['peak_rss_mib']:.2f}x the peak RSS, "
            f"{baseline['growth_mib'] / max(r['growth_mib'], 1):.2f}x the growth; {same}"
        )
    lines.append(load_line(out))
    return "\n".join(lines)


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
