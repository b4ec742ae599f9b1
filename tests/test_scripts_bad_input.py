"""Issue 3's bad-input list, through the real scripts as a user runs them (`python text2csv.py ...`).

Each bad input must end with one line on stderr (``error: ...``, naming the file or flag), exit
status 2, no traceback, and nothing written: the output folder is not created, or an existing
one (or a file in its place) is left as it was, byte for byte. Rows with an empty title or text are
not an error: they are dropped, counted, and the run succeeds.
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
    """An input file, the flags that go with it, and what the script must say.

    ``{input}``, ``{output}`` and ``{tmp}`` in ``flags`` and ``error`` stand for the input file, the
    output folder and the test's folder.
    """

    name: str
    data: bytes | None  # None: a folder in the input's place
    flags: tuple[str, ...] = ()
    error: str | None = None  # a regex for the whole stderr line after "error: "; None: the run succeeds
    stdout: str | None = None  # a line the successful run prints
    input_name: str | None = None  # relative to the test's folder; default: see _input_name
    existing: tuple[str, ...] = ()  # made in the output folder first: "name/" a folder, "name" a file


UTF16_ERROR = r"{input}: byte 1 \(line 1\) is a NUL byte \(0x00\): the file looks UTF-16 without a byte-order mark; "
NOT_TSV = r"--column applies only to \.csv, \.json, \.jsonl, \.parquet files; save it as CSV \(comma-separated\)"


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
            Case(
                "input is an output",
                b"title,text\nA,x\n",
                input_name="out/train.csv",
                error=r"{input} is both an input and an output; choose another --output_dir",
            ),
            Case("input is a folder", None, error=r"--input {input} is a folder; give a file"),
            Case(
                "repeated column",
                b"title,text,text\nA,a,b\n",
                error=r"{input}: line 1: column 'text' appears twice; rename one",
            ),
            Case(
                "missing keywords column",
                b"title,keywords,text\nA,x,y\n",
                flags=("--keywords_column", "kw"),
                error=r"{input} has no column 'kw' \(columns: 'title', 'keywords', 'text'\); choose one with "
                r"--keywords_column",
            ),
            Case(
                "utf-16 without a byte-order mark",
                "title,text\nA,Café\n".encode("utf-16-le"),
                error=UTF16_ERROR + "pass --encoding utf-16-le",
            ),
            Case(
                "utf-16 with --encoding",
                "title,text\nA,Café\nB,Bar\n".encode("utf-16-le"),
                flags=("--encoding", "utf-16-le"),
                stdout="dropped: missing title or text 0, duplicate 0, too short 0, too long 0",
            ),
            Case(
                "end-of-text token",
                b"title,text\nA,fine\nB,one<|endoftext|>two\n",
                error=r"{input}: the row at line 3: the text contains the end-of-text token <\|endoftext\|>; remove it from the data",
            ),
            Case(
                "validation.csv is a folder",
                b"title,text\nA,x\n",
                existing=("train.csv", "validation.csv/"),
                error=r"{output}/validation\.csv is a folder; move it away, or choose another --output_dir",
            ),
            Case(
                "semicolon-separated",
                b"title;text\nA;b\n",
                error=r"{input} looks ';'-separated \(line 1 is 'title;text'\); a CSV here must be comma-separated: "
                "save it again as CSV with commas",
            ),
            Case(
                "no such tokenizer",
                b"title,text\nA,x\n",
                flags=("--length_unit", "tokens", "--max_tokens", "100", "--tokenizer", "./no_such_tok"),
                error=r"--tokenizer \./no_such_tok: no such folder; make one with create_tokenizer\.py, "
                "or give a hub name such as gpt2",
            ),
            Case(
                "tokenizer that is a file",
                b"title,text\nA,x\n",
                flags=("--length_unit", "tokens", "--max_tokens", "100", "--tokenizer", "{input}"),
                error=r"--tokenizer {input} is a file; give the folder that holds it \({tmp}\)",
            ),
            Case(
                "tokenizer folder without a tokenizer",
                b"title,text\nA,x\n",
                flags=("--length_unit", "tokens", "--max_tokens", "100", "--tokenizer", "{tmp}"),
                error=r"--tokenizer {tmp}: this folder holds no tokenizer \(none of tokenizer\.json, "
                r"tokenizer_config\.json, vocab\.json, vocab\.txt, tokenizer\.model\); make one with .*",
            ),
            Case(
                "no such keyword model",
                b"title,text\nA,x\n",
                flags=("--keyword_backend", "sentence-transformers", "--keyword_model", "/no/such/model"),
                error=r"--keyword_model /no/such/model: no such folder; give a model folder, or leave "
                "--keyword_model out for the bundled all-MiniLM-L6-v2",
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
        Case(
            "repeated column",
            b"text,text\na,b\n",
            flags=("--column", "text"),
            error=r"{input}: line 1: column 'text' appears twice; rename one",
        ),
        Case(
            "utf-16 without a byte-order mark",
            "one\ntwo\n".encode("utf-16-le"),
            error=UTF16_ERROR + "pass --encoding utf-16-le",
        ),
        Case(
            "utf-16 with --encoding",
            "one\n\ntwo\n".encode("utf-16-le"),
            flags=("--encoding", "utf-16-le", "--split", "paragraph"),
            stdout=r"train\.csv:\s+2 examples, 6 characters; from 1 document; dropped 0 empty, 0 duplicate",
        ),
        Case(
            "stray NUL byte",
            b"line one\nli\x00ne two\n",
            error=r"{input}: byte 11 \(line 2\) is a NUL byte \(0x00\), which text does not hold: a binary file, "
            r"or stray NULs; remove them \(`tr -d '\\000' < input\.txt > fixed\.txt`\) or give a text file",
        ),
        Case(
            "tsv with --column",
            b"id\ttext\n1\thello\n",
            flags=("--column", "text"),
            input_name="data.tsv",
            error=r"{input}: text2csv does not read \.tsv tables, and " + NOT_TSV,
        ),
        Case(
            "xlsx",
            b"PK\x03\x04 a zip",
            input_name="data.xlsx",
            error=r"{input}: text2csv does not read \.xlsx tables, and " + NOT_TSV,
        ),
        Case(
            "--column on a text file",
            b"some text\n",
            flags=("--column", "Joke"),
            input_name="notes.txt",
            error=r"--column Joke applies to \.csv, \.json, \.jsonl, \.parquet inputs, and none of the inputs is one "
            r"\(text files and folders are read whole\); save the table as CSV, or leave out --column",
        ),
        Case(
            "--column text, named, on a text file",
            b"some text\n",
            flags=("--column", "text"),
            input_name="notes.txt",
            error=r"--column text applies to \.csv, \.json, \.jsonl, \.parquet inputs, and none of the inputs is one "
            r"\(text files and folders are read whole\); save the table as CSV, or leave out --column",
        ),
        Case(
            "end-of-text token",
            b"intro\nstory one<|endoftext|>story two\n",
            error=r"{input}: line 2: holds the end-of-text token <\|endoftext\|>, which the tokenizer reads as that "
            r"token in the middle of an example; cut examples there with --separator '<\|endoftext\|>', or remove it",
        ),
        Case(
            "end-of-text token in a CSV row",
            b'text\nfine\n"two\nlines<|endoftext|>"\n',
            flags=("--column", "text"),
            error=r"{input}: line 4: holds the end-of-text token <\|endoftext\|>, .*",
        ),
        Case(
            "end-of-text token as the separator",
            b"story one<|endoftext|>story two<|endoftext|>\n",
            flags=("--separator", "<|endoftext|>"),
            stdout=r"train\.csv:\s+2 examples, 18 characters; from 1 document; dropped 1 empty, 0 duplicate",
        ),
        Case(
            "validation.csv is a folder",
            b"some text\n",
            existing=("train.csv", "validation.csv/"),
            error=r"{output}/validation\.csv is a folder; move it away, or choose another --output_dir",
        ),
        Case(
            "tab-separated",
            b"id\ttext\n1\ta\n",
            flags=("--column", "text"),
            error=r"{input} looks tab-separated \(line 1 is 'id\\ttext'\); a CSV here must be comma-separated: "
            "save it again as CSV with commas",
        ),
        Case(
            "tokenizer that is a file",
            b"some text\n",
            flags=("--split", "tokens", "--max_tokens", "10", "--tokenizer", "{input}"),
            error=r"--tokenizer {input} is a file; give the folder that holds it \({tmp}\)",
        ),
    ]


def _input_name(script: str, case: Case) -> str:
    if case.input_name:
        return case.input_name
    if case.name == "crafted pickle":
        return "postings.pkl"
    if script == "text2csv.py" and "--column" not in case.flags:
        return "input.txt"
    return "input.csv"


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def _check(script: str, case_name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    [case] = [c for c in _cases(script, marker) if c.name == case_name]
    src = tmp_path / _input_name(script, case)
    src.parent.mkdir(parents=True, exist_ok=True)
    if case.data is None:
        src.mkdir()
    else:
        src.write_bytes(case.data)
    output = tmp_path / "out"
    if case.name == "output folder is a file":
        output.write_text("not a folder\n")
    for name in case.existing:
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).mkdir() if name.endswith("/") else (output / name).write_text("old\n")
    fill = {"input": str(src), "output": str(output), "tmp": str(tmp_path)}
    args = [str(src), "--output_dir", str(output)]
    if script == "prepare_jobs.py":
        args = ["--input", *args, "--length_unit", "words", "--keyword_backend", "tfidf", "--validation_fraction", "0"]
    else:
        args += ["--validation_fraction", "0"]
    args += [flag.format(**fill) for flag in case.flags]  # last: a case's flags override the defaults above
    before = _tree(tmp_path)
    proc = _run(script, args, cwd=tmp_path)

    assert "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists(), "the crafted pickle ran code"
    if case.error is None:
        assert proc.returncode == 0, proc.stderr
        assert case.stdout is not None and re.search(case.stdout, proc.stdout), proc.stdout
        with open(output / "train.csv", encoding="utf-8", newline="") as f:
            assert len(list(csv.DictReader(f))) == 2
        return
    expected = case.error.format(**{k: re.escape(v) for k, v in fill.items()})
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    assert re.fullmatch(f"error: {expected}\n", proc.stderr), proc.stderr
    assert _tree(tmp_path) == before  # no output folder, no partial file, no file replaced


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


@pytest.mark.parametrize(
    ("script", "damage", "error"),
    [
        ("generate.py", "model.safetensors", r"--model_dir {model}: its model cannot be loaded \(SafetensorError: .*"),
        ("evaluate_model.py", "tokenizer.json", r"--model_dir {model}: its tokenizer cannot be loaded \(.*"),
    ],
)
def test_generation_and_evaluation_of_a_damaged_model_folder(
    tmp_path, tiny_model_dir, records_dir, script, damage, error
):
    # before: a traceback from safetensors or json, after the validation file was read
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / damage).write_bytes(b"{\x00\x01")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("earlier\n")
    if script == "generate.py":
        args = ["--prompt", "Bake", "--output", str(out / "samples.jsonl")]
    else:
        args = ["--validation_file", str(records_dir / "validation.csv"), "--output_dir", str(out)]
    before = _tree(tmp_path)
    proc = _run(script, ["--model_dir", str(model), *args, "--quiet"], cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert re.fullmatch(f"error: {error.format(model=re.escape(str(model)))}\n", proc.stderr), proc.stderr
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("damage", "flag", "what", "kind"),
    [
        ("config.json", "--model_name_or_path", "tokenizer", "OSError"),  # read first, and it reads config.json
        ("tokenizer.json", "--model_name_or_path", "tokenizer", "JSONDecodeError"),
        ("model.safetensors", "--model_name_or_path", "model", "SafetensorError"),
        ("tokenizer.json", "--tokenizer_name", "tokenizer", "JSONDecodeError"),
    ],
)
def test_training_from_a_damaged_model_folder(tmp_path, tiny_model_dir, records_dir, damage, flag, what, kind):
    """A file of the model (or tokenizer) folder cut short by a copy: one line naming the flag, no traceback."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = (model / damage).read_bytes()
    (model / damage).write_bytes(data[: len(data) // 2])
    start = [flag, str(model)] if flag == "--model_name_or_path" else [
        "--model_name_or_path", str(tiny_model_dir), flag, str(model)]  # fmt: skip
    before = _tree(tmp_path)
    proc = _run("run_clm.py", [*start, "--train_file", str(records_dir / "train.csv"), "--do_train", "--max_steps", "1",
                               "--output_dir", str(tmp_path / "out"), "--report_to", "none"], cwd=tmp_path)  # fmt: skip
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {flag} {model}: its {what} cannot be loaded ({kind}: "), last
    assert last.endswith("a file of the folder is damaged or incomplete: copy the folder again, or save it again")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("script", "args", "error"),
    [
        ("run_clm.py", ["--do_train", "--per_device_train_batch_size", "abc"],
         "argument --per_device_train_batch_size/--per-device-train-batch-size: invalid int value: 'abc'"),
        ("generate.py", ["--model_dir", "m", "--prompt", "x", "--top_k", "abc"], "argument --top_k: invalid int value: 'abc'"),
        ("evaluate_model.py", ["--model_dir", "m"], "the following arguments are required: --validation_file"),
        ("text2csv.py", ["--bogus"], "unknown flag --bogus"),
        ("evaluate_model.py", ["--model_dir", "m", "--validation_fle", "v.csv"],
         "unknown flag --validation_fle (did you mean --validation_file?)"),  # not "--validation_file is required"
        ("generate.py", ["--model", "m", "--promt=x", "--top_k", "abc"], "unknown flag --promt (did you mean --prompt?)"),
        ("prepare_jobs.py", ["--input", "x.csv", "--output_dir", "o", "--max_tokens", "many"],
         "argument --max_tokens/--max-tokens: invalid int value: 'many'"),
        ("create_tokenizer.py", ["--train_file", "t.csv"], "the following arguments are required: --output_dir"),
    ],
)  # fmt: skip
def test_a_flag_argparse_refuses_is_one_line_too(tmp_path, script, args, error):
    """Not argparse's usage block (143 lines for run_clm.py) before the error: one line that says where help is."""
    proc = _run(script, args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {error}; see python {script} --help\n"
    assert list(tmp_path.iterdir()) == []
