#!/usr/bin/env python
"""Keyword extraction on the 936 real postings: wall time per backend, and agreement with the original.

    python bench/keyword_agreement.py                               # both backends, ../shared/data/jobs
    python bench/keyword_agreement.py --backends tfidf --repeats 3  # the median of 3 runs is shown
    python bench/keyword_agreement.py --json_out work/bench/keywords.json

Each run is the command a user types, in a fresh process, so imports and model loading count:

    python prepare_jobs.py --input ../shared/data/jobs/linkedin_936.pkl --output_dir DIR --reextract \\
        --keyword_backend sentence-transformers      (or tfidf)

Printed per backend: wall seconds of the whole command, CPU seconds (user + system) of its process,
the seconds prepare_stats.json gives to keyword extraction alone, and the 1-minute load average
before and after (the machine is shared: CPU seconds tell what the run cost, wall seconds what it
took on the machine as it was). On 2 cores, a run that only uses one core cannot take less wall
time than its CPU time; torch encodes with both.

Agreement: for each posting, how many of our top-10 keywords are among the keywords the original
project stored for it (exact match after lower-casing and joining whitespace; the originals were
extracted by KeyBERT from 1-2-word CountVectorizer candidates, 7 to 91 per posting). Reported as the
mean count per posting and as the share of our keywords that match. It describes agreement with
another extractor, not quality.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/keyword_agreement.py` from anywhere finds domainlm and bench

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "jobs" / "linkedin_936.pkl"
BACKENDS = ("sentence-transformers", "tfidf")


def run_prepare(data: Path, backend: str, out: Path, extra: list[str]) -> dict[str, Any]:
    """One ``prepare_jobs.py --reextract`` run in a fresh process: times, load, and its stats."""
    cmd = [sys.executable, str(ROOT / "prepare_jobs.py"), "--input", str(data), "--output_dir", str(out)]
    cmd += ["--reextract", "--keyword_backend", backend, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    stats = json.loads((out / "prepare_stats.json").read_text(encoding="utf-8"))
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "extract_s": stats["keywords"]["seconds"],
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "backend": stats["keywords"]["backend"],
        "command": " ".join(cmd[1:]),
    }


def _norm(keyword: str) -> str:
    return " ".join(keyword.lower().split())


def agreement(data: Path, out: Path, top_n: int = 10) -> dict[str, Any]:
    """How many of each posting's extracted keywords are among its original keywords."""
    from domainlm.cleaning import clean_line, clean_text, dedupe_key
    from domainlm.jobs import PrepareArguments, load_postings
    from domainlm.template import SEP_TOKEN

    original: dict[str, set[str]] = {}
    for p in load_postings(PrepareArguments(input=str(data), output_dir=str(out), length_unit="words")):
        if isinstance(p["title"], str) and isinstance(p["text"], str):
            key = dedupe_key(clean_line(p["title"]), clean_text(p["text"]))
            original[key] = {_norm(k) for k in p["keywords"] or []}
    counts, ours_total, matched_total = [], 0, 0
    for name in ("train.csv", "validation.csv"):
        if not (out / name).is_file():
            continue
        with open(out / name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                ours = [_norm(k) for k in row["keywords"].split(", ") if k][:top_n]
                theirs = original[dedupe_key(row["title"], row["text"].split(SEP_TOKEN, 2)[2])]
                n = sum(1 for k in ours if k in theirs)
                counts.append(n)
                ours_total += len(ours)
                matched_total += n
    return {
        "postings": len(counts),
        "mean_in_original": round(statistics.mean(counts), 2),
        "share_in_original": round(matched_total / max(ours_total, 1), 3),
        "postings_with_none": sum(1 for n in counts if n == 0),
        "mean_keywords": round(ours_total / max(len(counts), 1), 2),
    }


def machine() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag before any run; ``args.data`` is set to the default file when not given."""
    from domainlm.errors import UserError
    from domainlm.tables import check_output_file

    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: must be at least 1")
    if args.json_out is not None:
        check_output_file(args.json_out, "--json_out", (".json",))
    if args.data is None:
        if not DEFAULT_DATA.is_file():
            raise UserError(
                f"{DEFAULT_DATA}: not found (the real postings live outside the repository, in ../shared/data); "
                "put them there, or pass --data FILE"
            )
        args.data = DEFAULT_DATA
    elif args.data.is_dir():
        raise UserError(f"--data {args.data} is a folder; give a .pkl or .csv file of postings with their keywords")
    elif not args.data.is_file():
        raise UserError(f"--data {args.data}: no such file; give a .pkl or .csv file of postings with their keywords")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        help="postings with their original keywords (default: ../shared/data/jobs/linkedin_936.pkl)",
    )
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--repeats", type=int, default=1, help="runs per backend (1+); the median wall time is shown")
    parser.add_argument("--json_out", type=Path, help="also write the figures here")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more prepare_jobs.py flags")
    args = parser.parse_args(argv)
    check_arguments(args)
    extra = [a for a in args.extra if a != "--"]

    from bench.report import markdown_table, write_json

    results: dict[str, Any] = {"data": str(args.data), "machine": machine(), "backends": {}}
    rows = []
    for backend in args.backends:
        runs = []
        with tempfile.TemporaryDirectory(prefix="kw-bench-") as tmp:
            for i in range(args.repeats):
                out = Path(tmp) / f"run{i}"
                runs.append(run_prepare(args.data, backend, out, extra))
                print(f"{backend} run {i + 1}: {json.dumps(runs[-1])}", flush=True)
            agree = agreement(args.data, out)
        wall = statistics.median(r["wall_s"] for r in runs)
        mid = min(runs, key=lambda r: abs(r["wall_s"] - wall))
        results["backends"][backend] = {"runs": runs, "agreement": agree}
        rows.append(
            [
                mid["backend"],
                f"{wall:.1f}",
                f"{mid['cpu_s']:.1f}",
                f"{mid['extract_s']:.1f}",
                f"{mid['load_before']:.1f} / {mid['load_after']:.1f}",
                f"{agree['mean_in_original']:.2f} of {agree['mean_keywords']:g}",
                f"{agree['share_in_original']:.1%}",
                agree["postings_with_none"],
            ]
        )
    header = [
        "backend",
        "wall s",
        "CPU s",
        "extraction s",
        "load before / after",
        "top-10 in original (mean)",
        "share",
        "postings with none",
    ]
    print(markdown_table(header, rows))
    if args.json_out:
        write_json(args.json_out, results)
    return results


if __name__ == "__main__":
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
