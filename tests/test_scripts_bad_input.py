"""Issue 3's bad-input list, through the real scripts as a user runs them (`python text2csv.py ...`).

Each bad input must end with one line on stderr (``error: ...``, naming the file or flag), exit
status 2, no traceback, and nothing written: the output folder is not created, or an existing
one (or a file in its place) is left as it was. Rows with an empty title or text are not an error:
they are dropped, counted, and the run succeeds.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, script_env

# "Café – naïve “quotes”" as Windows writes it: é is byte 0xe9, the dash 0x96, the quotes 0x93 and 0x94.
WINDOWS_TEXT = "Café – naïve “quotes”"
CP1252 = WINDOWS_TEXT.encode("cp1252")


class _Runs:
    """Pickles to ``os.system(command)``: what a malicious pickle does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@dataclass
class Case:
    """An input file, the flags that go with it, and what the script must say."""

    name: str
    data: bytes
    flags: tuple[str, ...] = ()
    error: str | None = None  # a regex for the whole stderr line after "error: "; None: the run succeeds
    stdout: str | None = None  # a line the successful run prints


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = script_env(TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _cases(script: str, marker: Path) -> list[Case]:
    crafted = pickle.dumps({"title": {0: "A"}, "text": {0: _Runs(f"touch {marker}")}})
    if script == "prepare_jobs.py":
        return [
            Case("empty file", b"", error=r"{input} is empty: expected a CSV with a header row"),
            Case(
                "missing column",
                b"title,body\nA,B\n",
                error=r"{input} has no column 'text' \(columns: 'title', 'body'\); choose one with --text_column",
            ),
            Case(
                "not utf-8",
                b"title,text\nA,ok\nB," + CP1252 + b"\n",
                error=r"{input}: byte 21 \(line 3\) is not UTF-8 \(0xe9\); pass --encoding cp1252 "
                r"\(or the file's encoding\), or re-save it as UTF-8",
            ),
            Case(
                "unterminated quote",
                b'title,text\nA,"never closed\nB,x\n',
                error=r"{input}: line 2: malformed CSV \(.+\); check for an unclosed double quote",
            ),
            Case(
                "empty title or text",
                b"title,text\nA,Build pipelines in SQL.\n,No title here.\nB,\n  ,  \nC,Bake bread.\n",
                stdout="dropped: missing title or text 3, duplicate 0, too short 0, too long 0",
            ),
            Case(
                "output folder is a file", b"title,text\nA,x\n", error=r"--output_dir {output} is a file; give a folder"
            ),
            Case(
                "crafted pickle",
                crafted,
                error=r"{input}: refused to load: the pickle asks for (posix|os)\.system, and only plain data .*",
            ),
        ]
    return [
        Case("empty file", b"", error=r"{input} is empty: give it some text, or leave it out of the inputs"),
        Case(
            "missing column",
            b"ID,Joke\n1,ha\n",
            flags=("--column", "text"),
            error=r"{input} has no column 'text' \(columns: 'ID', 'Joke'\); choose one with --column",
        ),
        Case(
            "not utf-8",
            b"ok\n\n" + CP1252 + b"\n",
            error=r"{input}: byte 7 \(line 3\) is not UTF-8 \(0xe9\); pass --encoding cp1252 "
            r"\(or the file's encoding\), or re-save it as UTF-8",
        ),
        Case(
            "unterminated quote",
            b'text\n"fine"\n"never closed\nmore\n',
            flags=("--column", "text"),
            error=r"{input}: line 3: malformed CSV \(.+\); check for an unclosed double quote",
        ),
        Case(
            "empty text",
            b'ID,Joke\n1,ha\n2,\n3,"  "\n4,ho\n',
            flags=("--column", "Joke"),
            stdout=r"train\.csv:\s+2 examples, 4 characters; from 4 documents; dropped 2 empty, 0 duplicate",
        ),
        Case("output folder is a file", b"some text\n", error=r"--output_dir {output} is a file; give a folder"),
        Case("crafted pickle", crafted, error=r"{input}: pickles are not read here; save the data as CSV, .*"),
    ]


def _input_name(script: str, case: Case) -> str:
    if case.name == "crafted pickle":
        return "postings.pkl"
    if script == "text2csv.py" and "--column" not in case.flags:
        return "input.txt"
    return "input.csv"


def _check(script: str, case_name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    [case] = [c for c in _cases(script, marker) if c.name == case_name]
    src = tmp_path / _input_name(script, case)
    src.write_bytes(case.data)
    output = tmp_path / "out"
    if case.name == "output folder is a file":
        output.write_text("not a folder\n")
    args = [str(src), "--output_dir", str(output), *case.flags]
    if script == "prepare_jobs.py":
        args = ["--input", *args, "--length_unit", "words", "--keyword_backend", "tfidf", "--validation_fraction", "0"]
    else:
        args += ["--validation_fraction", "0"]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _run(script, args, cwd=tmp_path)

    assert "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists(), "the crafted pickle ran code"
    if case.error is None:
        assert proc.returncode == 0, proc.stderr
        assert case.stdout is not None and re.search(case.stdout, proc.stdout), proc.stdout
        with open(output / "train.csv", encoding="utf-8", newline="") as f:
            assert len(list(csv.DictReader(f))) == 2
        return
    expected = case.error.format(input=re.escape(str(src)), output=re.escape(str(output)))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    assert re.fullmatch(f"error: {expected}\n", proc.stderr), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no partial file
    if output.is_file():
        assert output.read_text() == "not a folder\n"


@pytest.mark.parametrize("case", [c.name for c in _cases("prepare_jobs.py", Path("x"))])
def test_prepare_jobs_bad_input(tmp_path, case):
    _check("prepare_jobs.py", case, tmp_path)


@pytest.mark.parametrize("case", [c.name for c in _cases("text2csv.py", Path("x"))])
def test_text2csv_bad_input(tmp_path, case):
    _check("text2csv.py", case, tmp_path)


def test_prepare_jobs_reads_a_windows_csv_with_encoding(tmp_path):
    src = tmp_path / "jobs.csv"
    src.write_bytes(b"title,keywords,text\nBarista,caf\xe9,Serve " + CP1252 + b" daily.\n")
    flags = ["--length_unit", "words", "--keyword_backend", "tfidf", "--validation_fraction", "0"]
    proc = _run(
        "prepare_jobs.py", ["--input", str(src), "--output_dir", "out", *flags, "--encoding", "cp1252"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "out" / "train.csv", encoding="utf-8", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row == {
        "text": f"Barista<|SEP|>café<|SEP|>Serve {WINDOWS_TEXT} daily.",
        "title": "Barista",
        "keywords": "café",
    }


def test_text2csv_reads_a_windows_text_file_with_encoding(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_bytes(b"ok\r\n\r\n" + CP1252 + b"\r\n")
    args = [str(src), "--split", "paragraph", "--validation_fraction", "0", "--output_dir", "out"]
    proc = _run("text2csv.py", [*args, "--encoding", "cp1252"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "out" / "train.csv", encoding="utf-8", newline="") as f:
        assert [r["text"] for r in csv.DictReader(f)] == ["ok", WINDOWS_TEXT]
