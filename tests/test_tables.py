import csv

import pytest

from domainlm.data import check_data_file, load_text_dataset
from domainlm.errors import UserError
from domainlm.tables import atomic_write, check_output_dir, read_table, read_text, staged_outputs, write_csv

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
        (b"text\nok\ncaf\xe9\n", "byte 11 (line 3) is not UTF-8 (0xe9); re-save it as UTF-8, e.g. `iconv -f cp1252"),
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


def test_a_column_name_with_spaces_around_it_is_named_as_the_training_loader_reads_it(tmp_path):
    path = tmp_path / "spaced.csv"
    path.write_bytes(b"id, text\n1,hello world\n2,another line\n")  # the loader's column is ' text', not 'text'
    with pytest.raises(UserError) as err:
        check_data_file(str(path), "text", "--train_file")
    assert str(err.value) == (
        f"{path}: line 1: the column name ' text' has spaces around it, which the training loader keeps; "
        "remove them from the header"
    )
    assert check_data_file(str(path), " text", "--train_file") == 2
    assert load_text_dataset(str(path), " text")["text"] == ["hello world", "another line"]


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


CP1252 = "Café – naïve “quotes”\n".encode("cp1252")  # 0xe9 é, 0x96 en dash, 0x93/0x94 curly quotes


def test_read_text_with_an_encoding(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"ok\n" + CP1252)
    assert read_text(path, "cp1252") == "ok\nCafé – naïve “quotes”\n"
    with pytest.raises(UserError) as err:
        read_text(path, encoding_flag="--encoding")
    assert str(err.value) == (
        f"{path}: byte 6 (line 2) is not UTF-8 (0xe9); pass --encoding cp1252 (or the file's encoding), "
        "or re-save it as UTF-8"
    )


def test_read_text_drops_a_bom_and_counts_it_in_the_offset(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext\nok\n")
    assert read_text(path) == read_text(path, "utf-8-sig") == "text\nok\n"
    path.write_bytes(b"\xef\xbb\xbftext\n\x81\n")  # 0x81: neither UTF-8 nor cp1252
    with pytest.raises(UserError, match=r"bom\.csv: byte 8 \(line 2\) is not UTF-8 \(0x81\); pass --enc latin-1 "):
        read_text(path, encoding_flag="--enc")
    with pytest.raises(
        UserError, match=r"bom\.csv: byte 8 \(line 2\) is not valid cp1252 \(0x81\); pass the file's own"
    ):
        read_text(path, "cp1252", "--encoding")
    with pytest.raises(UserError, match=r"--encoding klingon: unknown encoding; e\.g\. utf-8, cp1252"):
        read_table(path, encoding="klingon", encoding_flag="--encoding")


def test_a_utf8_file_read_as_another_encoding_is_refused_not_garbled(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes("text\nCafé – naïve\n".encode())
    with pytest.raises(UserError) as err:
        read_table(path, {"text": "--c"}, "cp1252", "--encoding")
    assert str(err.value) == (
        f"{path}: byte 8 (line 2): the file is UTF-8 ('é'), which --encoding cp1252 would garble (into 'Ã©'); "
        "leave out --encoding"
    )
    with pytest.raises(UserError, match=r"u\.csv: byte 8 \(line 2\): the file is UTF-8 \('é'\), which latin-1 "):
        read_text(path, "latin-1")
    path.write_bytes(b"\xef\xbb\xbftext\nplain ASCII\n")
    with pytest.raises(UserError, match=r"byte 0 \(line 1\): the file is UTF-8 \(its byte-order mark\), which "):
        read_text(path, "cp1252", "--encoding")
    path.write_bytes(b"text\nplain ASCII\n")  # the same in every one of these encodings
    assert read_text(path, "cp1252", "--encoding") == "text\nplain ASCII\n"


def test_a_windows_file_read_as_latin1_is_refused_where_it_would_hide_quotes(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"ok\n" + CP1252)  # 0x96 and 0x93 are C1 control characters in latin-1
    with pytest.raises(UserError) as err:
        read_text(path, "latin-1", "--encoding")
    assert str(err.value) == (
        f"{path}: byte 8 (line 2): 0x96 is an invisible control character in latin-1 and '–' in cp1252, "
        "the encoding of Windows files; pass --encoding cp1252"
    )
    assert read_text(path, "cp1252", "--encoding") == "ok\n" + CP1252.decode("cp1252")
    path.write_bytes("ok\nCafé\n".encode("latin-1") + b"\x81\n")  # real latin-1; 0x81 is not cp1252 either
    assert read_text(path, "iso-8859-1", "--encoding") == "ok\nCafé\n\x81\n"


def test_a_utf8_file_read_as_utf16_is_refused_not_turned_into_other_letters(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"text\nplain\n")  # even length: as UTF-16 it decodes, into CJK characters
    with pytest.raises(UserError) as err:
        read_table(path, {"text": "--c"}, "utf-16-le", "--encoding")
    assert (
        str(err.value)
        == f"{path}: the file is UTF-8 (no zero bytes), which utf-16-le would garble; leave out --encoding"
    )
    path.write_bytes("text\nplain\n".encode("utf-16"))
    assert read_text(path, "utf-16", "--encoding") == "text\nplain\n"


def test_read_table_names_only_the_formats_it_reads(tmp_path):
    path = tmp_path / "jobs.pkl"
    path.write_bytes(b"\x80\x04N.")  # pickles are read by prepare_jobs alone
    with pytest.raises(UserError) as err:
        read_table(path)
    assert str(err.value) == f"{path}: unsupported file type .pkl; use one of .csv, .json, .jsonl, .parquet"


def test_read_table_passes_the_encoding_on(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"text\n" + CP1252)
    (tmp_path / "t.jsonl").write_bytes(b'{"text": "' + CP1252.strip() + b'"}\n')
    for name in ("t.csv", "t.jsonl"):
        assert read_table(tmp_path / name, {"text": "--c"}, "cp1252")[0]["text"] == "Café – naïve “quotes”", name
        with pytest.raises(UserError, match=r"byte \d+ \(line \d\) is not UTF-8 \(0xe9\)"):
            read_table(tmp_path / name, {"text": "--c"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.parquet is empty: expected a parquet file"),
        (b"PAR1 not really PAR1", r"empty\.parquet: not a readable parquet file \(.+\); re-export it, or use CSV"),
        (b"title,text\nA,B\n", r"empty\.parquet: not a readable parquet file"),
    ],
)
def test_damaged_parquet_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "empty.parquet"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        read_table(path, {"text": "--text_column"})
    assert "\n" not in str(err.value)


def test_staged_outputs_are_all_or_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), staged_outputs(out) as staged:
        write_csv(staged.file("a.csv"), [{"text": "x"}], ["text"])
        raise RuntimeError("crash before the second file")
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone too
    with staged_outputs(out) as staged:
        write_csv(staged.file("a.csv"), [{"text": "x"}], ["text"])
        write_csv(staged.file("b.csv"), [{"text": "y"}], ["text"])
        assert not (out / "a.csv").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]


def test_staging_folders_of_killed_processes_are_removed_on_the_next_run(tmp_path):
    """``kill -9`` leaves a staging folder; only this host's folders of processes that are gone are removed."""
    import os
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host = int(gone.stdout), socket.gethostname()
    out = tmp_path / "out"
    names = [f".staging-{host}-{dead}-k3x_9", f".staging-{host}-{os.getpid()}-a1b2", f".staging-other-host-{dead}-q7",
             ".staging-abc123", ".staging-notes.txt"]  # fmt: skip
    for name in names[:-1]:
        (out / name).mkdir(parents=True)
        (out / name / "train.csv").write_text("half")
    (out / names[-1]).write_text("a file of the user's")
    with staged_outputs(out) as staged:
        write_csv(staged.file("a.csv"), [{"text": "x"}], ["text"])
        assert staged.folder.name.startswith(f".staging-{host}-{os.getpid()}-")
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.csv", *names[1:]])


def test_an_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"^--output_dir .*/f is a file; give a folder$"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(UserError, match=r"^--output_dir .*/f/sub: .*/f is a file, not a folder; give another folder$"):
        check_output_dir(tmp_path / "f" / "sub")
    check_output_dir(tmp_path / "a" / "b")  # not there yet: fine


def test_cyrillic_in_cp1251_is_named_as_such_not_cp1252(tmp_path):
    # cp1252 decodes these bytes too, into Latin mojibake ("Òèõàÿ ðåêà"), so offering it would mislead
    path = tmp_path / "ru.txt"
    path.write_bytes("Тихая река ждёт Ёжика у окна.\nСерый кот spits.\n".encode("cp1251"))
    assert path.read_bytes().decode("cp1252").startswith("Òèõàÿ ðåêà")
    with pytest.raises(UserError) as err:
        read_text(path, encoding_flag="--encoding")
    assert str(err.value) == (
        f"{path}: byte 0 (line 1) is not UTF-8 (0xd2); pass --encoding cp1251 (or the file's encoding), "
        "or re-save it as UTF-8"
    )
    assert read_text(path, "cp1251").startswith("Тихая река ждёт Ёжика")
    with pytest.raises(UserError, match=r"iconv -f cp1251 -t utf-8 ru\.txt"):
        read_text(path)


def test_csv_lines_end_where_stringio_ends_them(tmp_path):
    """iter_csv hands the csv module the lines io.StringIO(text, newline="") would, without StringIO's copy of
    the file (4 bytes a character): a line ends at \\n, \\r\\n or a lone \\r, never at U+2028 or U+0085."""
    import io

    from domainlm.tables import _lines, iter_csv

    text = "a\rb\r\nc\nd\u2028e\x85f\r"
    assert list(_lines(text)) == ["a\r", "b\r\n", "c\n", "d\u2028e\x85f\r"] == list(io.StringIO(text, newline=""))
    assert list(_lines("x")) == ["x"] and list(_lines("")) == []
    path = tmp_path / "t.csv"
    path.write_bytes('title,text\rA,"one\r\ntwo"\r\nB,x\u2028y\n'.encode())
    header, rows = iter_csv(path)
    assert header == ["title", "text"]
    assert list(rows) == [(2, {"title": "A", "text": "one\r\ntwo"}), (4, {"title": "B", "text": "x\u2028y"})]
    path.write_bytes(b" \r\n\t\n")
    with pytest.raises(UserError, match=r"t\.csv is empty: expected a CSV with a header row"):
        iter_csv(path)


def test_jsonl_lines_end_at_newlines_only(tmp_path):
    """json.dumps(..., ensure_ascii=False) writes U+2028 and U+0085 as they are; splitlines() cut the row there."""
    from domainlm.tables import write_jsonl

    rows = [{"text": "one\u2028two\u0085three\x1cfour"}, {"text": "five"}]
    path = tmp_path / "t.jsonl"
    write_jsonl(path, rows)
    assert path.read_text(encoding="utf-8").count("\n") == 2 and "\u2028" in path.read_text(encoding="utf-8")
    assert read_table(path) == [{**rows[0], "_line": 1}, {**rows[1], "_line": 2}]
    path.write_text('{"text": "a"}\r\n\r\n{"text": "b"}\r\n', encoding="utf-8")  # saved on Windows
    assert read_table(path) == [{"text": "a", "_line": 1}, {"text": "b", "_line": 3}]
