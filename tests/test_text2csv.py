"""text2csv: exact examples per split mode, normalisation, counts, round trip, bad inputs, real data."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from conftest import ROOT, script_env

from domainlm.data import load_text_dataset
from domainlm.errors import UserError, run_cli
from domainlm.text2csv import STATS_FILE, Text2CsvArgs, TokenCutter, normalise, text2csv, token_counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (real data lives outside the repo)")


def _script():
    spec = importlib.util.spec_from_file_location("text2csv_script", ROOT / "text2csv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path: Path, *inputs, **kwargs) -> dict:
    kwargs.setdefault("output_dir", str(tmp_path / "out"))
    return text2csv(Text2CsvArgs(inputs=[str(p) for p in inputs], **kwargs))


def read_csv(path: Path) -> list[str]:
    """The ``text`` column, read with the csv module (independent of the training loader)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(list(r) == ["text"] for r in rows)
    return [r["text"] for r in rows]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


DOC = "Title line\n\nFirst paragraph,\nsecond line.   \n \t\nSecond paragraph\n\n\n\nThird<SEP>part\n"


@pytest.mark.parametrize(
    ("flags", "expected", "empty"),
    [
        ({}, [DOC.rstrip()], 0),
        (
            {"split": "line"},
            ["Title line", "First paragraph,", "second line.", "Second paragraph", "Third<SEP>part"],
            6,  # the blank lines (one holds a space and a tab) and the final empty line
        ),
        (
            {"split": "paragraph"},
            ["Title line", "First paragraph,\nsecond line.", "Second paragraph", "Third<SEP>part"],
            0,
        ),
        (
            {"separator": "<SEP>"},
            ["Title line\n\nFirst paragraph,\nsecond line.   \n \t\nSecond paragraph\n\n\n\nThird", "part"],
            0,
        ),
        (
            {"split": "separator", "separator": "\\n\\n"},  # typed as backslash-n on a command line
            ["Title line", "First paragraph,\nsecond line.   \n \t\nSecond paragraph", "Third<SEP>part"],
            1,  # between the two "\n\n" of the four-newline run
        ),
    ],
)
def test_each_split_mode_gives_exact_examples(tmp_path, flags, expected, empty):
    src = write(tmp_path / "doc.txt", DOC)
    stats = run(tmp_path, src, validation_fraction=0.0, **flags)
    assert read_csv(tmp_path / "out" / "train.csv") == expected
    assert stats["splits"]["train"]["examples"] == len(expected)
    assert stats["splits"]["train"]["dropped"] == {"empty": empty, "duplicate": 0}
    assert not (tmp_path / "out" / "validation.csv").exists()


def test_line_endings_unicode_and_trailing_whitespace(tmp_path):
    decomposed = "Cafe\u0301 na\u0131\u0308ve"  # e + combining acute; dotless i + combining diaeresis
    src = write(tmp_path / "win.txt", f"one\r\ntwo  \r\r\nthree\rfour\t\r\n\r\n{decomposed}\r\n".encode())
    run(tmp_path, src, split="paragraph", validation_fraction=0.0)
    got = read_csv(tmp_path / "out" / "train.csv")
    assert got == ["one\ntwo  \nthree\nfour", unicodedata.normalize("NFC", decomposed)]  # trailing: per example
    assert got[1] == "Caf\u00e9 na\u0131\u0308ve" and len(got[1]) == 11  # dotless i + diaeresis has no composed form
    assert normalise("a\r\r\nb\r\nc\rd") == "a\nb\nc\nd"
    assert (tmp_path / "out" / "train.csv").read_bytes().count(b"\r") == 0


def test_utf8_read_as_cp1252_is_repaired(tmp_path):
    """A corpus saved after a wrong decoding (the jokes tutorial's "itâ€™s"): the examples read as written."""
    src = write(tmp_path / "jokes.txt", "Why itâ€™s funny\nâ€œQuoteâ€\x9d and cafÃ©\nmaÃŸ¹ stays ß¹\n".encode())
    run(tmp_path, src, split="line", validation_fraction=0.0)
    assert read_csv(tmp_path / "out" / "train.csv") == ["Why it’s funny", "“Quote” and café", "maß¹ stays ß¹"]
    stats = run(tmp_path, src, split="line", validation_fraction=0.0, repair_encoding=False)
    assert read_csv(tmp_path / "out" / "train.csv") == [
        "Why itâ€™s funny",
        "â€œQuoteâ€\x9d and cafÃ©",
        "maÃŸ¹ stays ß¹",
    ]
    assert stats["repair_encoding"] is False


def test_empties_and_duplicates_counted_per_split(tmp_path):
    train = write(tmp_path / "train.txt", "a\n\nb\n\na\n\nc  \n\nc\n\nb\n")  # a b a c c b
    val = write(tmp_path / "val.txt", "d\n\na\n\nd\n\ne\n\n\n  \n\nc\n")  # d a d e c
    stats = run(tmp_path, train, validation=[str(val)], split="paragraph")
    assert read_csv(tmp_path / "out" / "train.csv") == ["a", "b", "c"]
    assert read_csv(tmp_path / "out" / "validation.csv") == ["d", "e"]
    assert stats["splits"]["train"]["dropped"] == {"empty": 0, "duplicate": 3}
    assert stats["splits"]["validation"]["dropped"] == {"empty": 0, "duplicate": 1, "in_train": 2}
    lines = write(tmp_path / "lines.txt", "x\n\n \ny\nx\n\t\ny\n\u200b\n\u00ad \u2060\nz\u200b")  # zero widths: empty
    stats = run(tmp_path, lines, split="line", validation_fraction=0.0, output_dir=str(tmp_path / "o2"))
    assert read_csv(tmp_path / "o2" / "train.csv") == ["x", "y", "z\u200b"]  # kept as written where visible
    assert stats["splits"]["train"]["dropped"] == {"empty": 5, "duplicate": 2}
    assert stats["splits"]["train"]["characters"] == 4
    on_disk = json.loads((tmp_path / "o2" / STATS_FILE).read_text())
    assert on_disk["splits"]["train"] == stats["splits"]["train"]


def test_csv_round_trip_through_the_training_loader(tmp_path):
    texts = [
        'She said "hi", then left.\nSecond line, with a comma',
        "quotes \"\" and ''; commas ,,, and a tab\there",
        "ünïcödé — 日本語 😀\n\n  indented after a blank line",
        "NA",
        "null",
        "1.0",
        '"',
        "#not a comment",
        "line one\nline two\n\nline four",
    ]
    src = write(tmp_path / "rows.jsonl", "".join(json.dumps({"body": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    stats = run(tmp_path, src, column="body", validation_fraction=0.0)
    out = tmp_path / "out" / "train.csv"
    assert list(load_text_dataset(str(out), cache_dir=str(tmp_path / "cache"))["text"]) == texts
    assert read_csv(out) == texts
    assert stats["splits"]["train"]["characters"] == sum(map(len, texts))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [STATS_FILE, "train.csv"]  # no staging left


def test_a_column_that_holds_no_text_names_the_row(tmp_path):
    """JSONL rows whose --column holds a list: one line naming the row and the column; numbers are their text,
    a null an empty row (dropped as such); nothing is written."""
    rows = [{"body": "A joke about ducks."}, {"body": 42}, {"body": None}, {"body": ["a", "list"]}]
    src = write(tmp_path / "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError) as err:
        run(tmp_path, src, column="body", validation_fraction=0.0)
    assert (
        str(err.value) == f"{src}: the row at line 4: its 'body' is list \"['a', 'list']\", not text; make it a string"
    )
    assert not (tmp_path / "out").exists()
    src = write(tmp_path / "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:3]))
    stats = run(tmp_path, src, column="body", validation_fraction=0.0)
    assert read_csv(tmp_path / "out" / "train.csv") == ["A joke about ducks.", "42"]
    assert stats["splits"]["train"]["characters"] == len("A joke about ducks.") + 2


def test_no_arguments_follows_the_guide(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = _script()
    assert run_cli(script.main, []) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "expected train.txt and validation.txt" in err and "are missing" in err
    write(tmp_path / "train.txt", "Sonnet one\r\nline two\r\n\r\nSonnet two\r\n")
    assert run_cli(script.main, []) == 2
    assert "validation.txt is missing" in capsys.readouterr().err
    write(tmp_path / "validation.txt", "A Winter Letter\n")
    assert run_cli(script.main, []) == 0
    out = capsys.readouterr().out
    assert "train.csv:      1 example, 31 characters; from 1 document; dropped 0 empty, 0 duplicate" in out
    assert read_csv(tmp_path / "train.csv") == ["Sonnet one\nline two\n\nSonnet two"]
    assert read_csv(tmp_path / "validation.csv") == ["A Winter Letter"]
    assert json.loads((tmp_path / STATS_FILE).read_text())["split"] == "file"


def test_help_imports_nothing_heavy():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['text2csv.py', '--help']\n"
        "try:\n    runpy.run_path('text2csv.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('heavy:', sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))\n"
    )
    env = script_env()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert (
        out.stdout.startswith("usage: text2csv.py")
        and "    python text2csv.py\n" in out.stdout
        and "--validation_fraction" in out.stdout
    )
    assert out.stdout.rstrip().endswith("heavy: []")


def test_validation_fraction_is_reproducible_and_disjoint(tmp_path):
    src = write(tmp_path / "c.txt", "".join(f"line {i}\n" for i in range(40)))
    everything = [f"line {i}" for i in range(40)]

    def split(seed, name):
        run(tmp_path, src, split="line", validation_fraction=0.25, seed=seed, output_dir=str(tmp_path / name))
        return read_csv(tmp_path / name / "train.csv"), read_csv(tmp_path / name / "validation.csv")

    train, val = split(7, "a")
    assert (train, val) == split(7, "b")
    assert len(val) == 10 and len(train) == 30
    assert not set(train) & set(val)
    assert sorted(train + val, key=everything.index) == everything
    assert train == [t for t in everything if t in train]  # input order kept
    assert split(8, "c")[1] != val
    src1 = write(tmp_path / "one.txt", "only one paragraph\n")
    with pytest.raises(UserError, match=r"one\.txt gives 1 example, too few"):
        run(tmp_path, src1, output_dir=str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("empty.txt", b"", {}, r"empty\.txt is empty"),
        ("blank.txt", b" \n\n\t\n", {}, r"blank\.txt is empty"),
        ("empty.csv", b"", {"column": "text"}, r"empty\.csv is empty"),
        ("jokes.csv", b"ID,Joke\n1,ha\n", {}, r"jokes\.csv has no column 'text' \(columns: 'ID', 'Joke'\).*--column"),
        (
            "latin1.txt",
            "ok\nCaf\xe9\n".encode("latin-1"),
            {},
            r"latin1\.txt: byte 6 \(line 2\) is not UTF-8 \(0xe9\); pass --encoding cp1252 \(or the file's encoding\)",
        ),
        ("nothing.csv", b"ID,Joke\n1,\n2,  \n", {"column": "Joke"}, r"nothing\.csv: no examples: column 'Joke'"),
        ("seps.txt", b"<S> \n<S>\n", {"split": "separator", "separator": "<S>"}, r"seps\.txt: no examples"),
        ("missing.txt", None, {}, r"missing\.txt: no such file or folder"),
        ("folder", "dir", {}, r"folder: no \.txt files"),
    ],
)
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, name, content, kwargs, message):
    good = write(tmp_path / "good.txt", "fine\n\ntext\n")
    path = tmp_path / name
    if content == "dir":
        write(path / "notes.md", "not a .txt file")
    elif content is not None:
        write(path, content)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):  # as a validation input: nothing of train is written either
        run(tmp_path, good, validation=[str(path)], **{"split": "paragraph", **kwargs})
    assert not out.exists()
    with pytest.raises(UserError, match=message):
        run(tmp_path, path, validation_fraction=0.0, **{"split": "paragraph", **kwargs})
    assert not out.exists()


def test_round_trip_mismatch_names_the_row_and_leaves_nothing(tmp_path, monkeypatch):
    import domainlm.text2csv as module

    real_write_csv = module.write_csv

    def corrupting_write_csv(path, rows, columns):
        return real_write_csv(path, [{"text": r["text"].replace("b", "B")} for r in rows], columns)

    monkeypatch.setattr(module, "write_csv", corrupting_write_csv)
    src = write(tmp_path / "x.txt", "a\n\nb\n\nc\n")
    with pytest.raises(UserError, match=r"out/train\.csv: row 2 changed when read back .*wrote 'b', read 'B'"):
        run(tmp_path, src, split="paragraph", validation_fraction=0.0, output_dir=str(tmp_path / "new" / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]  # the folders it made are gone too


def test_existing_output_folder_keeps_old_files_on_error(tmp_path):
    out = write(tmp_path / "out" / "train.csv", "text\nold\n").parent
    with pytest.raises(UserError):
        run(tmp_path, tmp_path / "absent.txt")
    assert sorted(p.name for p in out.iterdir()) == ["train.csv"]
    assert read_csv(out / "train.csv") == ["old"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": ["a.txt"]}, "--output_dir DIR is required"),
        ({"inputs": ["a.txt"], "output_dir": "o", "split": "separator"}, "needs --separator"),
        ({"inputs": ["a.txt"], "output_dir": "o", "split": "line", "separator": "x"}, "only applies to --split sep"),
        (
            {"inputs": ["a.txt"], "output_dir": "o", "split": "tokens", "max_tokens": 8},
            "needs --max_tokens N and --tok",
        ),
        ({"inputs": ["a.txt"], "output_dir": "o", "max_tokens": 8}, "only apply to --split tokens"),
        ({"inputs": ["a.txt"], "output_dir": "o", "validation": ["b.txt"], "validation_fraction": 0.1}, "not both"),
        ({"inputs": ["a.txt"], "output_dir": "o", "validation_fraction": 1.0}, "--validation_fraction 1.0"),
        ({"validation": ["b.txt"]}, "--validation needs training inputs"),
        ({"validation_fraction": 0.2}, "--validation_fraction needs INPUT"),
        ({"inputs": ["a.txt"], "output_dir": "o", "encoding": "klingon"}, "--encoding klingon: unknown encoding"),
        ({"inputs": ["a.txt"], "output_dir": __file__}, "test_text2csv.py is a file; give a folder"),
        ({"inputs": ["a.txt"], "output_dir": f"{__file__}/sub"}, "test_text2csv.py is a file, not a folder"),
    ],
)
def test_conflicting_flags(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Text2CsvArgs(**kwargs)


def test_default_validation_fraction():
    assert Text2CsvArgs(inputs=["a"], output_dir="o").validation_fraction == 0.1
    assert Text2CsvArgs(inputs=["a", "b"], output_dir="o").validation_fraction == 0.0
    assert Text2CsvArgs(inputs=["a"], validation=["b"], output_dir="o").validation_fraction == 0.0


def test_encoding_reads_windows_files_and_writes_utf8(tmp_path):
    text = "Café – naïve “quotes”\r\n\r\nœuvre"
    src = write(tmp_path / "w.txt", text.encode("cp1252"))
    table = write(tmp_path / "w.csv", ("text\r\n" + text.replace("\r\n\r\n", "\r\n")).encode("cp1252"))
    with pytest.raises(UserError, match=r"w\.txt: byte 3 \(line 1\) is not UTF-8 \(0xe9\); pass --encoding cp1252"):
        run(tmp_path, src, split="paragraph")
    stats = run(tmp_path, src, split="paragraph", validation_fraction=0.0, encoding="cp1252")
    assert read_csv(tmp_path / "out" / "train.csv") == ["Café – naïve “quotes”", "œuvre"]
    assert stats["encoding"] == "cp1252"
    run(tmp_path, table, column="text", validation_fraction=0.0, encoding="cp1252", output_dir=str(tmp_path / "t"))
    assert read_csv(tmp_path / "t" / "train.csv") == ["Café – naïve “quotes”", "œuvre"]


def test_input_is_never_overwritten(tmp_path):
    src = write(tmp_path / "train.csv", "text\nhello\n")
    with pytest.raises(UserError, match=r"train\.csv is both an input and an output"):
        run(tmp_path, src, output_dir=str(tmp_path), validation_fraction=0.0)
    os.link(src, tmp_path / "linked.csv")  # another name of the same file
    with pytest.raises(UserError, match=r"linked\.csv is both an input and an output"):
        run(tmp_path, tmp_path / "linked.csv", output_dir=str(tmp_path), validation_fraction=0.0)
    assert src.read_text() == "text\nhello\n"


def test_an_earlier_runs_validation_csv_goes_and_a_file_of_the_users_stays(tmp_path, capsys):
    src = write(tmp_path / "c.txt", "".join(f"line {i}\n" for i in range(10)))
    out = tmp_path / "out"
    run(tmp_path, src, split="line", validation_fraction=0.2)
    assert len(read_csv(out / "validation.csv")) == 2
    run(tmp_path, src, split="line", validation_fraction=0.0)  # it may hold examples train.csv now has
    assert sorted(p.name for p in out.iterdir()) == [STATS_FILE, "train.csv"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"removed {out / 'validation.csv'}: an earlier run's validation split, not one of this run's"
    )
    write(out / "validation.csv", "text\nmy own\n")  # put there by the user, after that run
    os.utime(out / "validation.csv", (os.stat(out / STATS_FILE).st_mtime + 5,) * 2)
    run(tmp_path, src, split="line", validation_fraction=0.0)
    assert read_csv(out / "validation.csv") == ["my own"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"note: no validation split this time; {out / 'validation.csv'} is not from text2csv, left as it is"
    )


def test_staged_outputs_check_every_target_before_replacing_any(tmp_path):
    from domainlm.tables import staged_outputs

    out = write(tmp_path / "out" / "train.csv", "text\nold\n").parent
    (out / "validation.csv").mkdir()
    message = r"^.*/out/validation\.csv is a folder; move it away, or choose another --output_dir$"
    with pytest.raises(UserError, match=message), staged_outputs(out) as staged:
        staged.file("train.csv").write_text("text\nnew\n")
        staged.file("validation.csv").write_text("text\nnew\n")
    assert read_csv(out / "train.csv") == ["old"]
    assert sorted(p.name for p in out.iterdir()) == ["train.csv", "validation.csv"]  # no staging folder left


# --- tokens mode -------------------------------------------------------------------------------------

TEXT = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees"
WORDS = TEXT.split()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from domainlm.tokenizer import train_bpe_tokenizer

    corpus = [" ".join(WORDS[i:] + WORDS[:i]) + "." for i in range(len(WORDS))]
    tok = train_bpe_tokenizer(corpus, vocab_size=320, min_frequency=1)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def count(tokenizer_dir):
    from domainlm.text2csv import load_tokenizer

    return token_counter(load_tokenizer(str(tokenizer_dir)))


def sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n)) + "."


def assert_pieces_cover(doc: str, pieces: list[str]) -> None:
    """``doc`` is the pieces in order with only whitespace between them (and nothing else lost)."""
    pos = 0
    for piece in pieces:
        start = doc.index(piece, pos)
        assert not doc[pos:start].strip(), (doc[pos:start], piece)
        pos = start + len(piece)
    assert not doc[pos:].strip()


def test_token_cutter_packs_whole_paragraphs(count):
    paragraphs = [" ".join(sentence(7 * p + s) for s in range(2)) for p in range(6)]
    doc = "\n\n".join(paragraphs)
    limit = max(map(count, paragraphs)) * 2 + 2  # room for two paragraphs, never three
    cutter = TokenCutter(count, limit)
    pieces = cutter(doc)
    assert all(count(p) <= limit for p in pieces)
    assert "\n\n".join(pieces).split("\n\n") == paragraphs  # concatenated, the pieces give the paragraphs back
    assert pieces == ["\n\n".join(paragraphs[i : i + 2]) for i in (0, 2, 4)]
    assert cutter.cuts == {"paragraph": 1}
    assert cutter(paragraphs[0] + "  \n\n") == [paragraphs[0]]  # fits: one example, trailing whitespace gone


def test_token_cutter_cuts_lines_then_sentences_then_tokens(count):
    long_line = " ".join(sentence(s, 8) for s in range(6))  # six sentences on one line
    no_stop = " ".join(WORDS * 3)  # one sentence, no full stop
    doc = "\n\n".join(["short one.", "\n".join(sentence(s) for s in range(8)), long_line, no_stop, "end."])
    limit = 14
    cutter = TokenCutter(count, limit)
    pieces = cutter(doc)
    assert all(count(p) <= limit for p in pieces), [(p, count(p)) for p in pieces if count(p) > limit]
    assert_pieces_cover(doc, pieces)
    assert pieces[0] == "short one."
    assert pieces[-1] == "end."
    assert sentence(0, 8) in pieces  # the long line is cut between its sentences
    # one document cut between paragraphs, one paragraph between lines, one line between sentences, one sentence
    assert cutter.cuts == {"paragraph": 1, "line": 1, "sentence": 1, "token": 1}
    assert "".join(pieces).replace(" ", "").replace("\n", "") == doc.replace(" ", "").replace("\n", "")


def test_token_cutter_cuts_a_sentence_without_stops_in_linear_time():
    counted = []

    def words(text: str) -> int:  # one token per word
        counted.append(len(text))
        return len(text.split())

    text = " ".join(f"w{i}" for i in range(25))
    assert TokenCutter(words, 10)(text) == [
        "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9",
        "w10 w11 w12 w13 w14 w15 w16 w17 w18 w19",
        "w20 w21 w22 w23 w24",
    ]
    long_text = " ".join(f"w{i}" for i in range(4000))  # 22,889 characters, one sentence
    counted.clear()
    pieces = TokenCutter(words, 10)(long_text)
    assert pieces == [" ".join(f"w{i}" for i in range(a, a + 10)) for a in range(0, 4000, 10)]
    # About 8 characters counted per character of text; counting the rest before each cut was 216.
    assert sum(counted) < 20 * len(long_text)


def test_token_cutter_cuts_chinese_and_japanese_sentences():
    cutter = TokenCutter(len, 6)  # one token per character
    assert cutter("我们招聘。你好吗？很好！") == ["我们招聘。", "你好吗？", "很好！"]
    assert cutter.cuts == {"sentence": 1}
    assert cutter("「はい。」と言った。") == ["「はい。」", "と言った。"]  # after the closing 」


def test_tokens_mode_end_to_end(tmp_path, tokenizer_dir, count):
    docs = ["\n\n".join(" ".join(sentence(d * 5 + p * 3 + s) for s in range(3)) for p in range(4)) for d in range(3)]
    for d, doc in enumerate(docs):
        write(tmp_path / "in" / f"doc{d}.txt", doc.replace("\n", "\r\n") + "\r\n")
    stats = run(
        tmp_path, tmp_path / "in", split="tokens", max_tokens=40, tokenizer=str(tokenizer_dir), validation_fraction=0
    )
    got = read_csv(tmp_path / "out" / "train.csv")
    assert all(count(t) <= 40 for t in got)
    assert stats["splits"]["train"]["max_tokens_per_example"] == max(map(count, got)) <= 40
    assert stats["splits"]["train"]["tokens"] == sum(map(count, got))
    assert stats["splits"]["train"]["documents"] == 3
    assert stats["cut"]["paragraph"] == 3 and stats["max_tokens"] == 40
    assert "\n\n".join(got).split("\n\n") == [p for doc in docs for p in doc.split("\n\n")]
    with pytest.raises(UserError, match=r"--tokenizer .*nope: no such folder"):
        run(tmp_path, tmp_path / "in", split="tokens", max_tokens=40, tokenizer=str(tmp_path / "nope"))


def test_tokens_mode_never_tokenises_a_long_document_whole(tmp_path, tokenizer_dir, count, monkeypatch):
    """Counting a 10 MB document in one call took 1.7 GB: a text longer than the tokenizer's longest token
    times --max_tokens cannot fit, so no text longer than that is counted; the examples stay the same."""
    import domainlm.text2csv as t2c

    counted: list[int] = []
    real_counter = t2c.token_counter

    def recording_counter(tokenizer):
        inner = real_counter(tokenizer)

        def counting(text: str) -> int:
            counted.append(len(text))
            return inner(text)

        return counting

    monkeypatch.setattr(t2c, "token_counter", recording_counter)
    lines = [f"Part {p}. " + " ".join(sentence(3 * p + s) for s in range(3)) for p in range(200)]
    doc = "\n\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:])  # 100 paragraphs, then one of 100 lines
    write(tmp_path / "in" / "doc.txt", doc)
    run(tmp_path, tmp_path / "in", split="tokens", max_tokens=40, tokenizer=str(tokenizer_dir), validation_fraction=0)
    assert max(counted) < len(doc) / 20  # neither the document nor its paragraph of 100 lines whole
    bound = t2c.chars_per_token_bound(t2c.load_tokenizer(str(tokenizer_dir)))
    assert bound is not None and max(counted) <= bound * 40
    assert read_csv(tmp_path / "out" / "train.csv") == TokenCutter(count, 40)(doc)  # as counting everything


def test_chars_per_token_bound_is_a_true_bound(tokenizer_dir, count):
    from tokenizers import normalizers

    from domainlm.text2csv import chars_per_token_bound, load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_dir))
    bound = chars_per_token_bound(tokenizer)
    assert bound == max(len(t) for t in tokenizer.get_vocab())
    for text in [TEXT, " ".join(WORDS * 5), "the" * 50, "日本語のテキスト 🙂 é", " " * 40 + "\n" * 9, "<|SEP|>" * 3]:
        assert count(text) * bound >= len(text), text
    tokenizer.backend_tokenizer.normalizer = normalizers.Strip()  # may drop characters: no bound
    assert chars_per_token_bound(tokenizer) is None


# --- real data ---------------------------------------------------------------------------------------


@pytest.mark.shared_data
@needs_shared
def test_shakespeare_txt_to_csv_round_trip(tmp_path):
    train_txt, val_txt = SHARED / "shakespeare" / "train.txt", SHARED / "shakespeare" / "validation.txt"
    stats = run(tmp_path, train_txt, validation=[str(val_txt)])
    out = tmp_path / "out"
    for name, src in (("train", train_txt), ("validation", val_txt)):
        expected = normalise(src.read_text(encoding="utf-8")).rstrip()
        assert list(load_text_dataset(str(out / f"{name}.csv"), cache_dir=str(tmp_path / "c"))["text"]) == [expected]
        assert stats["splits"][name]["characters"] == len(expected)
    # The guide's Windows-written validation.csv holds the same text as validation.txt.
    run(tmp_path, SHARED / "shakespeare" / "validation.csv", validation_fraction=0, output_dir=str(tmp_path / "w"))
    assert read_csv(tmp_path / "w" / "train.csv") == read_csv(out / "validation.csv")
    stats = run(tmp_path, train_txt, split="paragraph", output_dir=str(tmp_path / "p"))
    paragraphs = [p for p in re.split(r"\n\s*\n", train_txt.read_text(encoding="utf-8")) if p.strip()]
    n = len({p.rstrip() for p in paragraphs})
    assert stats["splits"]["train"]["examples"] + stats["splits"]["validation"]["examples"] == n


@pytest.mark.shared_data
@needs_shared
def test_jokes_csv_with_column(tmp_path):
    path = SHARED / "jokes" / "onelinefun.csv"
    with open(path, encoding="utf-8", newline="") as f:
        jokes = [row["Joke"] for row in csv.DictReader(f)]
    cleaned = [unicodedata.normalize("NFC", j.replace("\r\n", "\n")).rstrip() for j in jokes]
    nonempty = [j for j in cleaned if j.strip()]
    expected = len(set(nonempty))
    stats = run(tmp_path, path, column="Joke")
    train, val = stats["splits"]["train"], stats["splits"]["validation"]
    assert train["documents"] == len(jokes)
    assert train["examples"] + val["examples"] == expected
    assert train["dropped"] == {"empty": len(jokes) - len(nonempty), "duplicate": len(nonempty) - expected}
    assert val["examples"] == int(0.1 * expected + 0.5)
    train_rows = load_text_dataset(str(tmp_path / "out" / "train.csv"), cache_dir=str(tmp_path / "cache"))["text"]
    got = list(train_rows) + read_csv(tmp_path / "out" / "validation.csv")
    assert sorted(got) == sorted(set(nonempty))
