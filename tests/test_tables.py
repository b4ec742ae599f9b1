import csv

import pytest

from domainlm.data import check_data_file, load_text_dataset
from domainlm.errors import UserError
from domainlm.tables import atomic_write, read_table, write_csv

TRICKY = [
    'He said "hello", then left.',
    "line one\nline two\n\nparagraph, with commas",
    "Zürich – São Paulo — naïve café €5 “curly”",
    "a,b,c",
    "NA",
    "  leading and trailing spaces  ",
]


def test_csv_round_trip_through_the_training_loader(tmp_path):
    path = tmp_path / "train.csv"
    assert write_csv(path, [{"text": t} for t in TRICKY], ["text"]) == len(TRICKY)
    ds = load_text_dataset(str(path))
    assert ds["text"] == TRICKY
    assert check_data_file(str(path), "text", "--train_file") == len(TRICKY)


def test_windows_line_endings_are_normalised(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b'text\r\r\n"one\r\ntwo\r\n\r\nthree"\r\n"x\ry"\r\n')
    assert load_text_dataset(str(path))["text"] == ["one\ntwo\n\nthree", "x\ny"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "train.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"title,body\nx,y\n", "has no column 'text' (columns: 'title', 'body'); choose one with --text_column"),
        (b'text\n"fine"\n"unterminated\n', "line 3: malformed CSV"),
        (b"text\nok\ncaf\xe9\n", "line 3 is not UTF-8 (byte 0xe9)"),
        (b"text\n\n", "no row has text"),
        (b"text\na,b\n", "line 2: 2 fields but the header has 1"),
    ],
)
def test_bad_csv_gets_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        check_data_file(str(path), "text", "--train_file")
    assert message in str(err.value)
    assert "bad.csv" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"--train_file .*nope\.csv: no such file"):
        check_data_file(str(tmp_path / "nope.csv"), "text", "--train_file")


def test_read_table_formats_agree(tmp_path):
    rows = [{"title": "A", "text": "x\ny"}, {"title": "B, c", "text": '"q"'}]
    write_csv(tmp_path / "t.csv", rows, ["title", "text"])
    (tmp_path / "t.jsonl").write_text('{"title": "A", "text": "x\\ny"}\n{"title": "B, c", "text": "\\"q\\""}\n')
    (tmp_path / "t.json").write_text('{"title": {"0": "A", "1": "B, c"}, "text": {"0": "x\\ny", "1": "\\"q\\""}}')
    for name in ("t.csv", "t.jsonl", "t.json"):
        got = [{k: r[k] for k in ("title", "text")} for r in read_table(tmp_path / name, {"text": "--text_column"})]
        assert got == rows, name
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as f:
        assert list(csv.DictReader(f)) == rows


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_csv(tmp_path / "t.csv", [{"text": "x"}], ["text"])
    finally:
        os.umask(mask)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o644
