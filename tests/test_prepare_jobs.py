"""prepare_jobs: raw postings -> train.csv / validation.csv / prepare_stats.json, with exact values."""

import csv
import json
import os
import pickle
from pathlib import Path

import pytest

from domainlm import keywords as kw
from domainlm.cleaning import clean_line, clean_text, dedupe_key, text_key
from domainlm.errors import UserError, run_cli
from domainlm.jobs import (
    PrepareArguments,
    load_postings,
    parse_arguments,
    prepare_jobs,
    split_postings,
    summary,
)
from domainlm.template import SEP_TOKEN, clean_keywords

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "jobs_sample.csv"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = SHARED_DATA / "jobs"

# Nine raw postings: four survive. Comments give each one's fate under the settings of test_rows_and_stats.
TINY = [
    ("Data Engineer", "sql,dbt,SQL", "Build <b>pipelines</b> in SQL.\nShow more"),  # kept: 6 words
    ("", "", "Orphan text."),  # missing title
    ("Data Engineer", "sql,dbt,SQL", "Build <b>pipelines</b> in SQL.\nShow more"),  # exact duplicate
    ("DATA  engineer", "", "Build pipelines in SQL!"),  # normalised duplicate
    ("Nurse", "care", "Short."),  # 1 word < --min_tokens 3
    ("Chef", "menu", "word " * 30),  # 30 words > --max_tokens 20
    ("Baker", "bread, pastry", "Bake bread and pastry every morning."),  # kept: 7 words
    ("Driver", "", "Drive the van.\nDeliver parcels to customers."),  # kept, keywords extracted: 7 words
    ("Teacher", "maths,physics,maths,chemistry", "Teach maths and physics to pupils."),  # kept, capped: 7 words
]


def write_csv(path: Path, rows, header=("title", "keywords", "text")) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def args_for(tmp_path: Path, input_path: Path, **overrides) -> PrepareArguments:
    settings = {"keyword_backend": "tfidf", "length_unit": "words", **overrides}
    return PrepareArguments(input=str(input_path), output_dir=str(tmp_path / "out"), **settings)


def test_rows_and_stats(tmp_path):
    src = write_csv(tmp_path / "jobs.csv", TINY)
    args = args_for(tmp_path, src, top_n=2, min_tokens=3, max_tokens=20, validation_fraction=0.25, seed=0)
    stats = prepare_jobs(args, log=lambda s: None)
    out = tmp_path / "out"
    rows = read_csv(out / "train.csv") + read_csv(out / "validation.csv")
    by_title = {r["title"]: r for r in rows}
    assert sorted(by_title) == ["Baker", "Data Engineer", "Driver", "Teacher"]
    assert by_title["Data Engineer"] == {
        "text": f"Data Engineer{SEP_TOKEN}sql, dbt{SEP_TOKEN}Build pipelines in SQL.",
        "title": "Data Engineer",
        "keywords": "sql, dbt",
    }
    assert by_title["Teacher"]["keywords"] == "maths, physics"  # order kept, duplicate dropped, capped at 2
    assert by_title["Driver"]["keywords"] == "deliver parcels, drive"  # extracted by tfidf
    assert stats["read"] == 9 and stats["kept"] == 4
    assert stats["dropped"] == {"missing_title_or_text": 1, "duplicate": 2, "too_short": 1, "too_long": 1}
    keywords = dict(stats["keywords"])
    seconds = keywords.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert keywords == {
        "given": 3,
        "extracted": 1,
        "extraction_runs": 1,
        "backend": "tfidf",
        "per_posting": {"mean": 2, "min": 2, "p50": 2, "max": 2},
        "without_keywords": 0,
    }
    assert stats["train"]["rows"] == 3 and stats["validation"]["rows"] == 1
    # Words per row: Data Engineer 6, Baker 7, Teacher 7, Driver 9 ("Driver<|SEP|>deliver parcels, drive<|SEP|>...").
    lengths = {*stats["train"]["length"].values(), *stats["validation"]["length"].values()}
    assert lengths == {6, 7, 9} and stats["train"]["total_length"] + stats["validation"]["total_length"] == 29
    assert json.loads((out / "prepare_stats.json").read_text()) == json.loads(json.dumps(stats))
    assert summary(stats).splitlines()[:2] == [
        f"read 9 postings from {src}; kept 4",
        "dropped: missing title or text 1, duplicate 2, too short 1, too long 1",
    ]


def test_stats_record_the_arguments_as_parsed(tmp_path):
    """Numbers as numbers: --ngram_range was saved as given (["1,2"], strings) next to the parsed range."""
    src = write_csv(tmp_path / "jobs.csv", TINY)
    out = tmp_path / "out"
    argv = ["--input", str(src), "--output_dir", str(out), "--keyword_backend", "tfidf", "--length_unit", "words",
            "--ngram_range", "1,2", "--ngram_max", "3", "--top_n", "4", "--min_tokens", "2", "--max_tokens", "700",
            "--diversity", "0.25", "--validation_fraction", "0.2", "--seed", "7"]  # fmt: skip
    prepare_jobs(parse_arguments(argv), log=lambda s: None)
    assert json.loads((out / "prepare_stats.json").read_text())["arguments"] == {
        "input": str(src),
        "output_dir": str(out),
        "encoding": "utf-8",
        "title_column": "title",
        "text_column": "text",
        "keywords_column": "keywords",
        "reextract": False,
        "keyword_backend": "tfidf",
        "keyword_model": None,
        "top_n": 4,
        "ngram_range": [1, 3],  # the alias applied
        "ngram_min": None,
        "ngram_max": 3,
        "diversity": 0.25,
        "candidate_pool": 20,
        "keyword_doc_tokens": 128,
        "length_unit": "words",
        "tokenizer": None,
        "min_tokens": 2,
        "max_tokens": 700,
        "validation_fraction": 0.2,
        "seed": 7,
    }


def test_peak_memory_stays_near_two_copies_of_the_texts(tmp_path):
    """What Python allocates at the peak, for a pickle and a CSV: raw rows go once cleaned, rows are formatted
    when counted and again when written, and a CSV is read without a 4-bytes-a-character copy. Before, a
    raw and a cleaned copy of every text, the formatted rows and the CSV's copy were held: 5.5x the texts."""
    import tracemalloc

    texts = {i: " ".join(f"w{i}x{j}" for j in range(1500)) for i in range(40)}
    size = sum(map(len, texts.values()))  # ASCII: a byte a character
    keywords = {i: [f"skill {i} {j}" for j in range(20)] for i in texts}
    pkl = tmp_path / "jobs.pkl"
    pkl.write_bytes(pickle.dumps({"title": {i: f"Job {i}" for i in texts}, "keywords": keywords, "text": texts}))
    csv_path = write_csv(tmp_path / "jobs.csv", [(f"Job {i}", ",".join(keywords[i]), texts[i]) for i in texts])
    del texts, keywords
    prepare_jobs(args_for(tmp_path / "warm", write_csv(tmp_path / "warm.csv", TINY)), log=lambda s: None)  # imports
    for path in (pkl, csv_path):
        tracemalloc.start()
        try:
            prepare_jobs(args_for(tmp_path / path.suffix, path, max_tokens=100_000), log=lambda s: None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 3.5 * size, f"{path.name}: peak {peak / size:.2f}x the texts"  # 2.4x


def test_reextract_replaces_given_keywords(tmp_path):
    src = write_csv(tmp_path / "jobs.csv", TINY[6:])
    prepare_jobs(args_for(tmp_path, src, top_n=3, reextract=True, validation_fraction=0), log=lambda s: None)
    rows = {r["title"]: r["keywords"] for r in read_csv(tmp_path / "out" / "train.csv")}
    assert rows == {
        "Baker": "bake bread, pastry, morning",
        "Driver": "deliver parcels, drive, van",
        "Teacher": "teach maths, physics, pupils",
    }


POSTINGS = [
    {"title": "Data Engineer", "keywords": ["sql", "dbt"], "text": "Build pipelines.\n\nUse SQL, daily."},
    {"title": "Nurse – Kraków", "keywords": None, "text": "Care for patients, “kindly”."},
]


def _write_every_format(tmp_path: Path) -> list[Path]:
    import pandas as pd

    frame = pd.DataFrame(POSTINGS)
    paths = []
    csv_path = write_csv(tmp_path / "p.csv", [(p["title"], ",".join(p["keywords"] or []), p["text"]) for p in POSTINGS])
    paths.append(csv_path)
    (tmp_path / "p.json").write_text(json.dumps(POSTINGS), encoding="utf-8")
    (tmp_path / "columns.json").write_text(frame.to_json(), encoding="utf-8")  # {"title": {"0": ...}}
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in POSTINGS), encoding="utf-8")
    frame.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps(frame.to_dict()))  # the original project's shape
    (tmp_path / "list.pkl").write_bytes(pickle.dumps(POSTINGS))
    frame.to_pickle(tmp_path / "frame.pkl")
    names = ["p.json", "columns.json", "p.jsonl", "p.parquet", "dict.pkl", "list.pkl", "frame.pkl"]
    return paths + [tmp_path / n for n in names]


def test_every_input_format_gives_the_same_postings(tmp_path):
    expected = [(p["title"], p["text"], p["keywords"]) for p in POSTINGS]
    for path in _write_every_format(tmp_path):
        got = load_postings(args_for(tmp_path, path))
        assert [(r["title"], r["text"], r["keywords"]) for r in got] == expected, path.name


@pytest.mark.parametrize(
    ("flags", "ngram"),
    [
        (["--ngram_range", "1", "3"], (1, 3)),
        (["--ngram_range", "1,3"], (1, 3)),
        (["--ngram_range", "2", "2"], (2, 2)),
        (["--ngram_min", "2"], (2, 3)),
        (["--ngram_range", "1,2", "--ngram_max", "4"], (1, 4)),
        ([], (1, 3)),
    ],
)
def test_ngram_range_flags(tmp_path, flags, ngram):
    base = ["--input", "x.csv", "--output_dir", str(tmp_path)]
    assert parse_arguments(base + flags).ngram == ngram


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--reextract"],
        ["--reextract", "false", "--keyword_backend", "tfidf", "--top_n", "5", "--diversity", "0.25"],
        ["--ngram-range", "1", "2", "--length_unit", "words", "--max_tokens", "700", "--encoding", "cp1252"],
        ["--keyword_model", "m", "--candidate_pool", "0", "--keyword_doc_tokens", "64", "--seed", "7"],
    ],
)
def test_our_parser_reads_flags_as_hf_argument_parser_does(tmp_path, flags):
    from transformers import HfArgumentParser

    argv = ["--input", "x.csv", "--output-dir", str(tmp_path), *flags]
    (theirs,) = HfArgumentParser(PrepareArguments).parse_args_into_dataclasses(args=argv)
    assert parse_arguments(argv) == theirs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ngram_range": ["3"]}, r"--ngram_range 3: give two whole numbers, e.g. 1 3 or 1,3"),
        ({"ngram_range": ["1", "x"]}, r"--ngram_range 1 x: give two whole numbers"),
        ({"ngram_range": ["3", "1"]}, r"--ngram_range 3 1: need 1 <= shortest <= longest"),
        ({"diversity": 1.5}, r"--diversity must be in \[0, 1\]"),
        ({"validation_fraction": 1.0}, r"--validation_fraction must be in \[0, 1\)"),
        ({"top_n": 0}, "--top_n must be at least 1"),
        ({"length_unit": "tokens", "max_tokens": 100}, "a token length filter needs --tokenizer DIR"),
        ({"keyword_model": "m", "keyword_backend": "tfidf"}, "--keyword_model is for --keyword_backend sentence"),
        ({"input": "jobs.xlsx"}, r"--input jobs.xlsx: unsupported file type; use one of \.pkl"),
        ({"output_dir": __file__}, r"--output_dir .*test_prepare_jobs\.py is a file; give a folder"),
        ({"output_dir": f"{__file__}/out"}, r"--output_dir .*/out: .*test_prepare_jobs\.py is a file, not a folder"),
        ({"encoding": "klingon"}, r"--encoding klingon: unknown encoding; e\.g\. utf-8, cp1252"),
        ({"keyword_doc_tokens": -1}, r"--keyword_doc_tokens must be 0 \(the model's limit\) or more"),
    ],
)
def test_bad_flags(tmp_path, overrides, message):
    settings = {"input": "jobs.csv", "output_dir": str(tmp_path), "length_unit": "words", **overrides}
    with pytest.raises(UserError, match=message):
        PrepareArguments(**settings)


def _postings(n: int) -> list[dict[str, str]]:
    return [{"title": f"Job {i}", "text": f"Posting number {i}."} for i in range(n)]


def test_split_is_disjoint_reproducible_and_keeps_a_shared_text_together():
    postings = _postings(37) + [{"title": f"Same text {i}", "text": "One text, three titles."} for i in range(3)]
    train, val = split_postings(postings, 0.25, seed=7)
    assert len(val) in range(10, 13) and sorted(train + val) == list(range(40))
    assert not set(train) & set(val)
    assert split_postings(postings, 0.25, seed=7) == (train, val)
    assert split_postings(postings, 0.25, seed=8) != (train, val)
    shared = {37, 38, 39}
    assert shared <= set(train) or shared <= set(val)
    assert not {text_key(postings[i]["text"]) for i in train} & {text_key(postings[i]["text"]) for i in val}


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"), [(10, 0.1, 1), (10, 0.25, 2), (3, 0.01, 1), (1, 0.5, 0), (5, 0, 0)]
)
def test_split_sizes(n, fraction, n_val):
    train, val = split_postings(_postings(n), fraction, seed=0)
    assert (len(train), len(val)) == (n - n_val, n_val)


@pytest.fixture(scope="module")
def whitespace_tokenizer(tmp_path_factory) -> Path:
    """A tokenizer with one token per whitespace-separated word: token counts are word counts."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = tmp_path_factory.mktemp("ws-tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(out)
    return out


@pytest.mark.parametrize("batch", [1000, 3, 1])  # rows per tokenizer call: one call, two, one per row
def test_length_filter_counts_tokens_and_drops_without_truncating(tmp_path, whitespace_tokenizer, batch, monkeypatch):
    monkeypatch.setattr("domainlm.jobs.LENGTH_BATCH", batch)
    # Row "T<|SEP|>k<|SEP|>w1 w2 ... wN" is N whitespace words; +1 for the end-of-text token.
    rows = [(f"T{n}", "k", " ".join(["w"] * n)) for n in (2, 3, 5, 6)]
    src = write_csv(tmp_path / "jobs.csv", rows)
    args = args_for(
        tmp_path, src, length_unit="tokens", tokenizer=str(whitespace_tokenizer), min_tokens=4, max_tokens=6
    )
    stats = prepare_jobs(args, log=lambda s: None)
    kept = read_csv(tmp_path / "out" / "train.csv") + read_csv(tmp_path / "out" / "validation.csv")
    assert sorted(r["title"] for r in kept) == ["T3", "T5"]  # 4 and 6 tokens
    assert stats["dropped"]["too_short"] == 1 and stats["dropped"]["too_long"] == 1
    assert stats["length_unit"] == "tokens"
    assert stats["train"]["total_length"] + stats["validation"]["total_length"] == 4 + 6
    assert all(r["text"].endswith(" ".join(["w"] * int(r["title"][1:]))) for r in kept)  # never truncated


def test_a_hub_tokenizer_without_the_hub_asks_for_a_local_folder(tmp_path, monkeypatch):
    """--tokenizer gpt2 offline (README's example): one line saying it is no local folder and what to give."""
    from transformers import AutoTokenizer

    def offline(name, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", offline)
    src = write_csv(tmp_path / "jobs.csv", TINY)
    args = args_for(tmp_path, src, length_unit="tokens", tokenizer="gpt2", max_tokens=1024)
    message = (
        r"^--tokenizer gpt2: not a local folder, and the tokenizer could not be loaded from the model hub \(We couldn't "
        r"connect .*\); give a local tokenizer folder \(create_tokenizer.py makes one\)$"
    )
    with pytest.raises(UserError, match=message):
        prepare_jobs(args, log=lambda s: None)
    assert not (tmp_path / "out").exists()


def test_length_in_words_drops_long_postings_whole(tmp_path):
    rows = [("Short", "a", "one two three"), ("Long", "b", " ".join(["w"] * 50))]
    src = write_csv(tmp_path / "jobs.csv", rows)
    stats = prepare_jobs(args_for(tmp_path, src, max_tokens=10, validation_fraction=0), log=lambda s: None)
    assert [r["title"] for r in read_csv(tmp_path / "out" / "train.csv")] == ["Short"]
    assert stats["dropped"]["too_long"] == 1 and stats["keywords"]["extraction_runs"] == 0


def _bad_specs(d: Path) -> dict[str, tuple[Path, bytes | str | None, str]]:
    """Name -> (file, its bytes, None for no file or "dir" for a folder, the error it must give)."""
    return {
        "empty csv": (d / "empty.csv", b"", r"empty\.csv is empty: expected a CSV with a header row"),
        "header only": (d / "header.csv", b"title,keywords,text\n", r"header\.csv holds no rows"),
        "missing column": (
            d / "cols.csv",
            b"title,body\nA,B\n",
            r"cols\.csv has no column 'text' \(columns: 'title', 'body'\); choose one with --text_column",
        ),
        "missing columns": (
            d / "renamed.csv",
            b"job_title,description\nA,B\n",
            r"renamed\.csv has no columns 'title', 'text' \(columns: 'job_title', 'description'\); choose them with "
            r"--title_column NAME, --text_column NAME",
        ),
        "not utf-8": (
            d / "latin1.csv",
            "title,text\nCaf\u00e9,x\n".encode("latin-1"),
            r"latin1\.csv: byte 14 \(line 2\) is not UTF-8 \(0xe9\); pass --encoding cp1252 \(or the file's encoding\), "
            r"or re-save it as UTF-8",
        ),
        "unclosed quote": (
            d / "quote.csv",
            b'title,text\nA,"never closed\nB,x\n',
            r"quote\.csv: line 2: malformed CSV .*unclosed double quote",
        ),
        "extra fields": (
            d / "fields.csv",
            b"title,text\nA,B,C\n",
            r"fields\.csv: line 2: 3 fields but the header has 2; quote fields that contain commas",
        ),
        "pickle of strings": (
            d / "strings.pkl",
            pickle.dumps(["a", "b"]),
            r"strings\.pkl: a pickle of postings must hold a dict of columns .* not a list of 2 items",
        ),
        "pickle of a number": (d / "int.pkl", pickle.dumps(3), r"int\.pkl: a pickle of postings .* not a int"),
        "pickle without text": (
            d / "notext.pkl",
            pickle.dumps({"title": {0: "A"}}),
            r"notext\.pkl has no column 'text' \(columns: 'title'\); choose one with --text_column",
        ),
        "empty pickle": (d / "empty.pkl", b"", r"empty\.pkl is empty"),
        "empty parquet": (d / "empty.parquet", b"", r"empty\.parquet is empty"),
        "broken parquet": (d / "broken.parquet", b"PAR1 not really", r"broken\.parquet: not a readable parquet file"),
        "invalid json": (d / "bad.json", b'[{"title": "A",', r"bad\.json: line 1: invalid JSON"),
        "jsonl of lists": (d / "bad.jsonl", b"[1, 2]\n", r"bad\.jsonl: line 1: expected a JSON object per line"),
        "keywords of a wrong type": (
            d / "kw.jsonl",
            b'{"title": "A", "text": "B", "keywords": {"x": 1}}\n',
            r"kw\.jsonl: the row at line 1, column 'keywords': keywords must be a list or a comma-joined string, not dict",
        ),
        "separator in the text": (
            d / "sep.csv",
            f"title,text\nA,fine\nB,has {SEP_TOKEN} inside\n".encode(),
            r"sep\.csv: the row at line 3: the text contains the separator <\|SEP\|>; remove it from the data",
        ),
        "separator in a pickled title": (
            d / "sep.pkl",
            pickle.dumps({"title": {7: "A", 9: f"B {SEP_TOKEN}"}, "text": {7: "fine", 9: "also fine"}}),
            r"sep\.pkl: the row with index 9: the title contains the separator <\|SEP\|>; remove it from the data",
        ),
        "end-of-text token in the title": (
            d / "eot.jsonl",
            b'{"title": "A<|endoftext|>", "text": "x"}\n',
            r"eot\.jsonl: the row at line 1: the title contains the end-of-text token <\|endoftext\|>; remove it from the data",
        ),
        "padding token in the keywords": (
            d / "pad.csv",
            b"title,keywords,text\nA,<|pad|>,x\n",
            r"pad\.csv: the row at line 2: the keywords contains the padding token <\|pad\|>; remove it from the data",
        ),
        "repeated keywords column": (
            d / "dupkw.csv",
            b"title,keywords,text,keywords\nA,a,x,b\n",
            r"dupkw\.csv: line 1: column 'keywords' appears twice; rename one",
        ),
        "a folder": (d / "folder.csv", "dir", r"--input .*folder\.csv is a folder; give a file"),
        "a folder without a suffix": (d / "postings", "dir", r"--input .*postings is a folder; give a file"),
        "nothing left": (
            d / "short.csv",
            b"title,text\nA,one\n",
            r"short\.csv: no posting is left .* too short 1, too long 0\); check --min_tokens/--max_tokens",
        ),
        "no such file": (d / "absent.csv", None, r"absent\.csv: no such file"),
    }


@pytest.mark.parametrize("case", list(_bad_specs(Path("."))))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    path, data, message = _bad_specs(tmp_path)[case]
    if data == "dir":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    with pytest.raises(UserError, match=message) as err:
        prepare_jobs(args_for(tmp_path, path, min_tokens=5), log=lambda s: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_encoding_reads_a_windows_csv(tmp_path):
    src = tmp_path / "jobs.csv"
    src.write_bytes("title,keywords,text\r\nBarista,café,Serve “espresso” – daily.\r\n".encode("cp1252"))
    with pytest.raises(UserError, match=r"jobs\.csv: byte 32 \(line 2\) is not UTF-8 \(0xe9\); pass --encoding cp1252"):
        prepare_jobs(args_for(tmp_path, src), log=lambda s: None)
    assert not (tmp_path / "out").exists()
    prepare_jobs(args_for(tmp_path, src, encoding="cp1252", validation_fraction=0), log=lambda s: None)
    assert read_csv(tmp_path / "out" / "train.csv") == [
        {"text": f"Barista{SEP_TOKEN}café{SEP_TOKEN}Serve “espresso” – daily.", "title": "Barista", "keywords": "café"}
    ]
    assert json.loads((tmp_path / "out" / "prepare_stats.json").read_text())["arguments"]["encoding"] == "cp1252"


def test_cli_error_is_one_line_on_stderr(tmp_path, capsys):
    from prepare_jobs import main

    src = write_csv(tmp_path / "jobs.csv", [("A", "B")], header=("title", "body"))
    code = run_cli(main, ["--input", str(src), "--output_dir", str(tmp_path / "out"), "--length_unit", "words"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err == f"error: {src} has no column 'text' (columns: 'title', 'body'); choose one with --text_column\n"


def test_cli_prints_the_stats(tmp_path, capsys):
    from prepare_jobs import main

    src = write_csv(tmp_path / "jobs.csv", TINY)
    flags = ["--length_unit", "words", "--keyword_backend", "tfidf", "--top_n", "2", "--ngram_range", "1,2"]
    assert run_cli(main, ["--input", str(src), "--output_dir", str(tmp_path / "out"), *flags]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"read 9 postings from {src}; kept 6"
    assert out[1] == "dropped: missing title or text 1, duplicate 2, too short 0, too long 0"
    assert out[2].startswith("keywords: 5 kept postings had theirs, 1 got them from tfidf (1 extracted in ")
    out_dir = tmp_path / "out"
    assert out[-1] == f"wrote {out_dir}/train.csv, {out_dir}/validation.csv, {out_dir}/prepare_stats.json"


def test_an_empty_validation_split_removes_an_earlier_runs_file_but_not_the_users(tmp_path):
    src = write_csv(tmp_path / "jobs.csv", TINY[6:])
    out = tmp_path / "out"
    prepare_jobs(args_for(tmp_path, src, validation_fraction=0.3), log=lambda s: None)
    assert len(read_csv(out / "validation.csv")) == 1
    logged = []
    stats = prepare_jobs(args_for(tmp_path, src, validation_fraction=0), log=logged.append)
    assert stats["validation"]["rows"] == 0 and not (out / "validation.csv").exists()  # train.csv now has its row
    assert len(read_csv(out / "train.csv")) == 3
    assert logged == [f"removed {out / 'validation.csv'}: an earlier run's validation split, not one of this run's"]
    assert stats["outputs"] == ["train.csv", "prepare_stats.json"]

    (out / "validation.csv").write_text("text,title,keywords\nmine,A,b\n")  # the user's own, after that run
    os.utime(out / "validation.csv", (os.stat(out / "prepare_stats.json").st_mtime + 5,) * 2)
    logged.clear()
    prepare_jobs(args_for(tmp_path, src, validation_fraction=0), log=logged.append)
    assert read_csv(out / "validation.csv") == [{"text": "mine", "title": "A", "keywords": "b"}]
    assert logged == [
        f"note: no validation split this time; {out / 'validation.csv'} is not from prepare_jobs, left as it is"
    ]


def test_summary_without_validation_or_extraction(tmp_path):
    src = write_csv(tmp_path / "jobs.csv", [TINY[6]])
    stats = prepare_jobs(args_for(tmp_path, src, validation_fraction=0), log=lambda s: None)
    assert summary(stats).splitlines()[2:] == [
        "keywords: 1 kept postings had theirs, none needed extraction; per posting mean 2 (min 2, max 2)",
        "train: 1 rows, 7 words; per row min 7 / p50 7 / p90 7 / max 7",  # Baker: 7 words
        "validation: 0 rows, not written",
    ]


def test_auto_backend_uses_tfidf_when_sentence_transformers_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(kw, "sentence_transformers_available", lambda: False)
    src = write_csv(tmp_path / "jobs.csv", TINY[6:])
    logged = []
    stats = prepare_jobs(args_for(tmp_path, src, keyword_backend="auto"), log=logged.append)
    assert stats["keywords"]["backend"] == "tfidf"
    assert logged == [
        "keywords: sentence-transformers is not installed (pip install -r requirements-keywords.txt), "
        "so --keyword_backend auto uses tfidf"
    ]
    with pytest.raises(UserError, match=r"needs sentence-transformers, keybert and scikit-learn: run `pip install"):
        prepare_jobs(args_for(tmp_path / "b", src, keyword_backend="sentence-transformers"), log=logged.append)
    assert not (tmp_path / "b" / "out").exists()


def test_launch_command_on_the_bundled_sample(tmp_path):
    # launch.sh: --input data/jobs_sample.csv --length_unit words --max_tokens 700 (tfidf here: fast, no model)
    stats = prepare_jobs(args_for(tmp_path, SAMPLE, max_tokens=700), log=lambda s: None)
    assert stats["read"] == 240 and stats["kept"] == 214
    assert stats["dropped"] == {"missing_title_or_text": 0, "duplicate": 0, "too_short": 0, "too_long": 26}
    assert stats["keywords"]["extracted"] == 24 and stats["keywords"]["without_keywords"] == 0
    train, val = read_csv(tmp_path / "out" / "train.csv"), read_csv(tmp_path / "out" / "validation.csv")
    assert (len(train), len(val)) == (193, 21)
    for r in train + val:
        title, keywords, body = r["text"].split(SEP_TOKEN)
        assert (title, keywords) == (r["title"], r["keywords"]) and keywords and body
        assert len(r["text"].split()) <= 700
    assert not {text_key(r["text"].split(SEP_TOKEN)[2]) for r in train} & {
        text_key(r["text"].split(SEP_TOKEN)[2]) for r in val
    }


def test_the_summary_quoted_in_the_help_is_what_the_command_prints(tmp_path, capsys, monkeypatch):
    """prepare_jobs.py --help quotes what its first example prints with tfidf keywords (timing aside)."""
    import re

    import prepare_jobs

    monkeypatch.chdir(ROOT)  # the example's data/jobs_sample.csv
    flags = ["--input", "data/jobs_sample.csv", "--output_dir", str(tmp_path), "--length_unit", "words"]
    assert run_cli(prepare_jobs.main, [*flags, "--max_tokens", "700", "--keyword_backend", "tfidf"]) == 0
    printed = capsys.readouterr().out.splitlines()[:5]
    quoted = prepare_jobs.__doc__.split("with --keyword_backend tfidf:", 1)[1].strip().splitlines()[:5]

    def timing_aside(line):
        return re.sub(r"in \d+\.\d+s", "in ?s", line.strip())

    assert [timing_aside(line) for line in printed] == [timing_aside(line) for line in quoted]


@pytest.mark.shared_data
@pytest.mark.skipif(not (REAL / "linkedin_936.pkl").is_file(), reason=f"real data not found in {REAL}")
def test_real_pickle_csv_and_dataframe_agree_and_keywords_are_kept_in_order(tmp_path):
    import pandas as pd

    from_pickle = load_postings(args_for(tmp_path, REAL / "linkedin_936.pkl"))
    from_csv = load_postings(args_for(tmp_path, REAL / "linkedin_936.csv"))
    frame = tmp_path / "frame.pkl"
    pd.DataFrame(pickle.loads((REAL / "linkedin_936.pkl").read_bytes())).to_pickle(frame)
    from_frame = load_postings(args_for(tmp_path, frame))

    def rows(postings):
        return [(p["title"], p["text"].replace("\r\n", "\n"), clean_keywords(p["keywords"])) for p in postings]

    assert len(from_pickle) == 936
    assert rows(from_pickle) == rows(from_csv) == rows(from_frame)

    stats = prepare_jobs(args_for(tmp_path, REAL / "linkedin_936.pkl", top_n=5), log=lambda s: None)
    assert stats["keywords"]["extraction_runs"] == 0 and stats["keywords"]["per_posting"]["max"] == 5
    # Two postings share a text under different titles: a posting is its title and its text.
    given = {
        dedupe_key(clean_line(p["title"]), clean_text(p["text"])): clean_keywords(p["keywords"], top_n=5)
        for p in from_pickle
    }
    out = read_csv(tmp_path / "out" / "train.csv") + read_csv(tmp_path / "out" / "validation.csv")
    assert len(out) == stats["kept"] > 900
    for r in out:
        assert r["keywords"] == ", ".join(given[dedupe_key(r["title"], r["text"].split(SEP_TOKEN)[2])])


def test_parsing_flags_imports_no_transformers():
    import subprocess
    import sys

    code = (
        "import sys; from domainlm.jobs import parse_arguments; "
        "parse_arguments(['--input', 'x.csv', '--output_dir', 'o', '--reextract']); "
        "print(sorted(m for m in ('transformers', 'torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"  # the tfidf run of the 936 real postings takes about 3 s; transformers alone is 1-2 s


def test_help_shows_each_default():
    """As run_clm.py --help does: top_n 10, diversity 0.5, 1-3-grams, ...; none where there is no default."""
    from domainlm.jobs import make_parser

    helps = {a.dest: a.help for a in make_parser()._actions}
    assert helps["top_n"].endswith("(default: 10)") and helps["diversity"].endswith("(default: 0.5)")
    assert helps["ngram_range"].endswith("(default: 1 3)") and helps["validation_fraction"].endswith("(default: 0.1)")
    assert helps["seed"].endswith("(default: 42)") and helps["keyword_backend"].endswith("(default: auto)")
    assert "(default:" not in helps["input"] and "(default:" not in helps["max_tokens"]  # required; None
