"""``data/make_sample_jobs.py``: the bundled sample is exactly what the generator writes."""

import csv
import subprocess
import sys

from conftest import ROOT


def run_generator(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "data" / "make_sample_jobs.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


def test_defaults_rewrite_the_bundled_sample_byte_for_byte(tmp_path):
    out = tmp_path / "sample.csv"
    proc = run_generator("--output", str(out))
    assert out.read_bytes() == (ROOT / "data" / "jobs_sample.csv").read_bytes()
    assert "rows: 240\nrows without keywords: 24\n" in proc.stdout


def test_more_rows_with_another_seed(tmp_path):
    out = tmp_path / "more.csv"
    run_generator("--rows", "30", "--seed", "7", "--output", str(out))
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and sum(not r["keywords"] for r in rows) == 3
    assert len({r["title"] for r in rows}) == 30
    with open(ROOT / "data" / "jobs_sample.csv", newline="", encoding="utf-8") as f:
        bundled = {r["text"] for r in csv.DictReader(f)}
    assert not bundled & {r["text"] for r in rows}  # another seed, other postings
