"""Reading tables with errors a person can act on, and writing files atomically.

Every file the project writes goes through ``atomic_write``: a temporary file in the same folder,
flushed to disk, then renamed over the target, so a crash never leaves half a ``train.csv``.
Every table the project reads goes through ``read_table``, which names the file, the line and the
column when something is wrong.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from domainlm.errors import UserError, first_line

# Python's csv module refuses fields over 128 KiB by default; long documents are legitimate.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def file_mode() -> int:
    """The permissions a new file gets from ``open`` under the current umask (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


TABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")  # what read_table reads; prepare_jobs reads pickles itself


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[io.IOBase]:
    """Open a temporary file next to ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _not_a_folder(folders: Iterable[Path]) -> Path | None:
    """The first of ``folders`` (a path, then the folders above it) that exists and is not a folder, when
    it comes before the first one that is a folder; else None."""
    for folder in folders:
        if folder.exists() or folder.is_symlink():
            return None if folder.is_dir() else folder
    return None


def check_output_dir(path: str | os.PathLike, flag: str = "--output_dir") -> None:
    """A UserError now, before any work, when ``path`` or a folder above it exists and is not a folder."""
    path = Path(path)
    blocker = _not_a_folder((path, *path.absolute().parents))
    if blocker == path:
        raise UserError(f"{flag} {path} is a file; give a folder")
    if blocker is not None:
        raise UserError(f"{flag} {path}: {blocker} is a file, not a folder; give another folder")


def check_output_file(path: str | os.PathLike, flag: str, suffixes: Sequence[str] = ()) -> None:
    """A UserError now, before any work, when ``path`` cannot become a file: it is a folder, a folder
    above it is a file, its suffix is not one of ``suffixes`` (when given), or no file can be made in the
    nearest folder above it that exists (a temporary file is made and removed there; folders are made later)."""
    import tempfile

    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        names = " or ".join(suffixes)
        raise UserError(f"{flag} {path}: use a {names} file name")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    blocker = _not_a_folder(path.absolute().parents)
    if blocker is not None:
        raise UserError(f"{flag} {path}: {blocker} is a file, not a folder; give another path")
    folder = next(p for p in path.absolute().parents if p.exists())
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(
            f"{flag} {path}: cannot write into {folder} ({err.strerror or err}); choose another path"
        ) from None


def check_output_names(output_dir: str | os.PathLike, names: Iterable[str], flag: str = "--output_dir") -> None:
    """A UserError when a file about to be written into ``output_dir`` has a folder in its place."""
    for name in names:
        target = Path(output_dir) / name
        if target.is_dir():
            raise UserError(f"{target} is a folder; move it away, or choose another {flag}")


def check_inputs_are_not_outputs(
    inputs: Iterable[str | os.PathLike], output_dir: str | os.PathLike, names: Iterable[str], flag: str = "--output_dir"
) -> None:
    """A UserError, before any work, when an input is one of the files the run writes (it would replace it)."""
    outputs = [Path(output_dir) / name for name in names]
    for path in inputs:
        for out in outputs:
            same = out.exists() and Path(path).exists() and os.path.samefile(path, out)  # a hard link too
            if same or Path(path).resolve() == out.resolve():
                raise UserError(f"{path} is both an input and an output; choose another {flag}")


def is_earlier_output(path: Path, stats_file: Path, wrote_it: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether ``path`` is what an earlier run left: that run's ``stats_file`` (written last, in the same
    step) says it wrote it (``wrote_it``) and ``path`` is not newer (nobody put a file of their own there)."""
    try:
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        return path.is_file() and bool(wrote_it(stats)) and path.stat().st_mtime <= stats_file.stat().st_mtime
    except (OSError, ValueError, LookupError, TypeError, AttributeError):  # no stats file, or not ours
        return False


def settle_earlier_validation(path: Path, earlier_output: bool, tool: str, log: Callable[[str], None]) -> None:
    """After a run that wrote no validation split: an old ``path`` that an earlier run of ``tool`` wrote
    (``earlier_output``, from ``is_earlier_output`` before this run) is removed, since it would sit next
    to a train.csv that may now hold its rows; any other is left as it is, with a note."""
    if not path.exists():
        return
    if earlier_output:
        path.unlink()
        log(f"removed {path}: an earlier run's validation split, not one of this run's")
    else:
        log(f"note: no validation split this time; {path} is not from {tool}, left as it is")


class StagedFolder:
    """Files written under a hidden folder inside ``output_dir``, moved into place together at the end.

    ``file(name)`` gives the staging path to write ``name`` to. Used by ``staged_outputs``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    def file(self, name: str) -> Path:
        self.names.append(name)
        return self.folder / name


def _staging_prefix(pid: int | None = None) -> str:
    """The name of this process's staging folders, up to mkdtemp's random part (letters, digits, ``_``)."""
    return f".staging-{socket.gethostname()}-{os.getpid() if pid is None else pid}-"


_STAGING = re.compile(r"\.staging-(?P<host>.+)-(?P<pid>\d+)-\w+")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_dead_staging(output_dir: Path) -> list[str]:
    """Remove the staging folders that processes of this machine left in ``output_dir`` when they were
    killed (``kill -9``, a crash of the machine's memory); returns their names.

    A folder is removed only when its name says this host and a process that no longer runs. Folders
    of running processes, and of other hosts sharing the folder, are left alone.
    """
    host = socket.gethostname()
    removed = []
    for folder in sorted(output_dir.glob(".staging-*")):
        match = _STAGING.fullmatch(folder.name)
        if match and match["host"] == host and folder.is_dir() and not _process_alive(int(match["pid"])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


@contextlib.contextmanager
def staged_outputs(output_dir: str | os.PathLike, flag: str = "--output_dir") -> Iterator[StagedFolder]:
    """Write a set of output files all or nothing: nothing in ``output_dir`` changes unless the block ends
    without an error, and then each staged file is renamed into place (in the order ``file`` was called).
    On an error the staging folder is removed, and so are the folders made for it. Staging folders that
    killed processes left there are removed first (``remove_dead_staging``)."""
    output_dir = Path(output_dir)
    check_output_dir(output_dir, flag)
    created = [p for p in (output_dir.absolute(), *output_dir.absolute().parents) if not p.exists()]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_dead_staging(output_dir)
        staged = StagedFolder(Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=output_dir)))
    except OSError as err:
        raise UserError(f"{flag} {output_dir}: cannot write there ({err.strerror or err})") from None
    try:
        yield staged
        written = [name for name in staged.names if (staged.folder / name).exists()]
        check_output_names(output_dir, written, flag)  # every target, before the first one is replaced
        for name in written:
            os.replace(staged.folder / name, output_dir / name)
    except BaseException:
        shutil.rmtree(staged.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the folders made here, innermost first, if still empty
            for folder in created:
                folder.rmdir()
        raise
    shutil.rmtree(staged.folder, ignore_errors=True)


def row_at(path: str | os.PathLike, line: Any) -> str:
    """Where a row read with its ``_line`` is, in words: ``the row at line N`` of a CSV, JSONL or text
    file (a CSV row may span lines: N is its first), ``the row with index N`` of a pickle, else ``row N``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".jsonl", ".txt"):
        return f"the row at line {line}"
    if suffix in (".pkl", ".pickle"):
        return f"the row with index {line!r}"
    return f"row {line}"


def cell_text(path: str | Path, row: dict[str, Any], column: str, lists: bool = False) -> Any:
    """A text cell of a table row: a string, None when empty (a JSON null, a parquet NaN), a number as its
    text; ``lists``: a list of such cells too (JSON keywords). Anything else: a UserError naming the row."""
    value = row.get(column)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value != value:  # NaN: pandas' empty cell
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if lists and isinstance(value, (list, tuple)):
        return [cell_text(path, {column: v}, column) for v in value]
    raise UserError(
        f"{path}: {row_at(path, row.get('_line'))}: its {column!r} is {type(value).__name__} "
        f"{str(value)[:40]!r}, not text; make it a string"
    )


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> int:
    """Write ``rows`` as a quoted UTF-8 CSV with a header; returns the number of rows."""
    n = 0
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_write(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


_HIGH_LETTER = re.compile(rb"[\xc0-\xff]")
_ASCII_LETTER = re.compile(rb"[A-Za-z]")


def check_encoding(encoding: str, flag: str = "--encoding") -> str:
    """``encoding`` if Python knows it, else a UserError that names the flag."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"{flag} {encoding}: unknown encoding; e.g. utf-8, cp1252, latin-1, utf-16") from None
    return encoding


def _likely_encoding(data: bytes) -> str:
    """A guess to offer in an error message, not to decode with: Windows tools write cp1252 or UTF-16,
    and cp1251 for Cyrillic. In cp1251 the letters А-я are the bytes 0xC0-0xFF, so a Russian text has
    more of them than ASCII letters; a Western text in cp1252 has an accented letter among many ASCII
    ones (cp1252 would decode the Cyrillic bytes too, silently, into Latin mojibake)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = data[: 1 << 16]
    if len(_HIGH_LETTER.findall(sample)) > len(_ASCII_LETTER.findall(sample)):
        return "cp1251"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _nul_error(path: Path, data: bytes, encoding_flag: str | None) -> UserError:
    """Text never holds NUL bytes; UTF-16 without a byte-order mark decodes as "UTF-8" full of them."""
    offset = data.index(b"\x00")
    line = data[:offset].count(b"\n") + 1
    where = f"{path}: byte {offset} (line {line}) is a NUL byte (0x00)"
    sample = data[:4096]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)  # ASCII in UTF-16: every other byte is 0
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec, looks = "utf-16", "UTF-16 (it starts with a byte-order mark)"
    elif max(even, odd) >= len(sample) // 8 and min(even, odd) <= max(even, odd) // 20:
        codec, looks = ("utf-16-le" if odd > even else "utf-16-be"), "UTF-16 without a byte-order mark"
    else:
        return UserError(
            f"{where}, which text does not hold: a binary file, or stray NULs; remove them "
            f"(`tr -d '\\000' < {path.name} > fixed{path.suffix}`) or give a text file"
        )
    fix = f"pass {encoding_flag} {codec}" if encoding_flag else f"re-save it as UTF-8 (`iconv -f {codec} -t utf-8`)"
    return UserError(f"{where}: the file looks {looks}; {fix}")


_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _refuse_utf8(path: Path, data: bytes, encoding: str, encoding_flag: str | None) -> None:
    """A UserError when ``data``, to be read as ``encoding`` (not UTF-8), is UTF-8 with letters beyond ASCII.

    cp1252 and latin-1 decode almost any bytes, so a UTF-8 file read with them comes out garbled
    without an error ("café" as "cafÃ©"); text in those encodings is practically never valid UTF-8.
    """
    first = _NON_ASCII.search(data)
    if first is None:
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    offset = first.start()
    char = text[offset]  # the bytes before it are ASCII: one character each
    garbled = char.encode("utf-8").decode(encoding, errors="replace")
    line = data[:offset].count(b"\n") + 1
    what = "its byte-order mark" if char == "\ufeff" else repr(char)
    flag = f"{encoding_flag} {encoding}" if encoding_flag else encoding
    fix = f"leave out {encoding_flag}" if encoding_flag else "read it as UTF-8"
    raise UserError(
        f"{path}: byte {offset} (line {line}): the file is UTF-8 ({what}), which {flag} would garble "
        f"(into {garbled!r}); {fix}"
    )


_C1 = re.compile(rb"[\x80-\x9f]")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuse_windows_bytes(path: Path, data: bytes, encoding: str, encoding_flag: str | None) -> None:
    """A UserError when ``data``, to be read as latin-1, holds a byte that latin-1 makes an invisible control
    character but Windows' cp1252 a letter or a quote (0x93: “): the file is cp1252."""
    for match in _C1.finditer(data):
        try:
            char = match.group().decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: not cp1252 either
            continue
        offset = match.start()
        line = data[:offset].count(b"\n") + 1
        fix = f"pass {encoding_flag} cp1252" if encoding_flag else "re-save it as UTF-8"
        raise UserError(
            f"{path}: byte {offset} (line {line}): 0x{data[offset]:02x} is an invisible control character in {encoding} and {char!r} in "
            f"cp1252, the encoding of Windows files; {fix}"
        )


def read_text(path: str | os.PathLike, encoding: str = "utf-8", encoding_flag: str | None = None) -> str:
    """The whole file as text; a clear error for a missing file or bytes that are not ``encoding``.

    UTF-8 files may start with a byte-order mark, which is dropped. A UTF-8 file with more than ASCII
    is refused under any other ``encoding``, which would garble it without an error. ``encoding_flag``
    names the script's flag that sets the encoding (``--encoding``), for the error message to offer;
    without it the message says how to re-save the file as UTF-8. Byte offsets in messages count from 0.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    codec = codecs.lookup(check_encoding(encoding, encoding_flag or "encoding")).name
    start = 0
    if codec in ("utf-8", "utf-8-sig"):
        codec = "utf-8"
        start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if b"\x00" in data and not codec.startswith(("utf-16", "utf-32")):
        raise _nul_error(path, data, encoding_flag)
    if not codec.startswith(("utf-8", "utf-16", "utf-32")):
        _refuse_utf8(path, data, encoding, encoding_flag)
    if codec == "iso8859-1":
        _refuse_windows_bytes(path, data, encoding, encoding_flag)
    if codec.startswith(("utf-16", "utf-32")) and b"\x00" not in data and _is_utf8(data):
        # UTF-16 and UTF-32 write a line break (and every ASCII character) with zero bytes
        fix = f"leave out {encoding_flag}" if encoding_flag else "read it as UTF-8"
        raise UserError(f"{path}: the file is UTF-8 (no zero bytes), which {encoding} would garble; {fix}")
    try:
        return data[start:].decode(codec)
    except UnicodeDecodeError as err:
        offset = start + err.start
        line = data[:offset].count(b"\n") + 1
        where = f"{path}: byte {offset} (line {line})"
        value = f"0x{data[offset]:02x}" if offset < len(data) else "cut short at the end"
    guess = _likely_encoding(data)
    if codec != "utf-8":
        fix = f"pass the file's own encoding with {encoding_flag}" if encoding_flag else "re-save it as UTF-8"
        raise UserError(f"{where} is not valid {encoding} ({value}); {fix}")
    if encoding_flag:
        fix = f"pass {encoding_flag} {guess} (or the file's encoding), or re-save it as UTF-8"
    else:
        fix = f"re-save it as UTF-8, e.g. `iconv -f {guess} -t utf-8 {path.name} > fixed{path.suffix}`"
    raise UserError(f"{where} is not UTF-8 ({value}); {fix}")


_LINE_END = re.compile(r"\r\n?|\n")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings, as ``io.StringIO(text, newline="")`` yields them (a line
    ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``), without the copy StringIO reads from: 4 bytes a
    character, 4x the text of an ASCII CSV."""
    start = 0
    for m in _LINE_END.finditer(text):
        yield text[start : m.end()]
        start = m.end()
    if start < len(text):
        yield text[start:]


def iter_csv(
    path: str | os.PathLike, encoding: str = "utf-8", encoding_flag: str | None = None, strip_header: bool = True
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and ``(line_number, row)`` pairs of a CSV; malformed quoting is reported by line.

    Column names lose the spaces around them (``id, text``), unless ``strip_header`` is False: the
    training loader keeps them."""
    path = Path(path)
    text = read_text(path, encoding, encoding_flag)
    if not text or text.isspace():  # text.strip() would copy the whole file
        raise UserError(f"{path} is empty: expected a CSV with a header row")
    reader = csv.reader(_lines(text), strict=True)
    try:
        header = next(reader)
    except csv.Error as err:
        raise UserError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from None
    if strip_header:
        header = [h.strip() for h in header]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise UserError(
                    f"{path}: line {start}: malformed CSV ({err}); check for an unclosed double quote"
                ) from None
            if not values:  # blank line
                continue
            if len(values) > len(header):
                raise UserError(
                    f"{path}: line {start}: {len(values)} fields but the header has {len(header)}; "
                    "quote fields that contain commas"
                )
            yield start, dict(zip(header, values + [""] * (len(header) - len(values)), strict=True))

    return header, rows()


def require_columns(
    path: str | os.PathLike, columns: Sequence[str], wanted: dict[str, str], optional: Sequence[str] = ()
) -> None:
    """``wanted`` maps a column name to the flag that chooses it; a missing one is a UserError.

    ``columns`` is a CSV header as written (other formats cannot repeat a name): a column that is
    read (``wanted`` or ``optional``) and named twice is an error, since a row keeps only one value.
    """
    for name in [*wanted, *optional]:
        if (n := columns.count(name)) > 1:
            times, fix = ("twice", "rename one") if n == 2 else (f"{n} times", "rename all but one")
            raise UserError(f"{path}: line 1: column {name!r} appears {times}; {fix}")
    missing = {name: flag for name, flag in wanted.items() if name not in columns}
    if not missing:
        return
    if len(columns) == 1 and (";" in columns[0] or "\t" in columns[0]):
        kind = "tab" if "\t" in columns[0] else "';'"
        raise UserError(
            f"{path} looks {kind}-separated (line 1 is {columns[0]!r}); a CSV here must be comma-separated: "
            "save it again as CSV with commas"
        )
    have = ", ".join(repr(c) for c in columns) or "none"
    if len(missing) == 1:
        [(name, flag)] = missing.items()
        raise UserError(f"{path} has no column {name!r} (columns: {have}); choose one with {flag}")
    names = ", ".join(repr(n) for n in missing)
    flags = ", ".join(f"{flag} NAME" for flag in missing.values())
    raise UserError(f"{path} has no columns {names} (columns: {have}); choose them with {flags}")


def read_table(
    path: str | os.PathLike,
    wanted: dict[str, str] | None = None,
    encoding: str = "utf-8",
    encoding_flag: str | None = None,
    optional: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON (a list of objects), JSONL or parquet file as dicts.

    ``wanted`` maps required column names to the flag that names them, for the error message;
    ``optional`` names columns read where present (``require_columns`` checks both in a CSV header).
    Each row carries its source position under the key ``"_line"`` (CSV/JSONL line, JSON index).
    ``encoding`` and ``encoding_flag`` are those of ``read_text`` (parquet ignores them).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]]
    if suffix == ".csv":
        header, it = iter_csv(path, encoding, encoding_flag)
        require_columns(path, header, wanted or {}, optional)
        rows = [{**row, "_line": line} for line, row in it]
    elif suffix == ".jsonl":
        rows = []
        # lines end at \n alone: splitlines() would also cut at U+2028 and the like, which a JSON string may
        # hold as they are (json.dumps(..., ensure_ascii=False) writes them)
        for i, line in enumerate(read_text(path, encoding, encoding_flag).split("\n"), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: line {i}: invalid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}: line {i}: expected a JSON object per line")
            rows.append({**obj, "_line": i})
    elif suffix == ".json":
        text = read_text(path, encoding, encoding_flag)
        if not text or text.isspace():
            raise UserError(f"{path} is empty: expected a JSON list of objects")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
        rows = _rows_from_json(path, obj)
    elif suffix == ".parquet":
        rows = _rows_from_parquet(path)
    else:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(TABLE_SUFFIXES)}")
    if not rows:
        raise UserError(f"{path} holds no rows")
    if suffix != ".csv" and wanted:
        columns = sorted({k for r in rows for k in r if k != "_line"})
        require_columns(path, columns, wanted)
    return rows


def _rows_from_parquet(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty: expected a parquet file")
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as err:
        raise UserError(f"{path}: reading parquet needs pandas and pyarrow ({err}); pip install pyarrow") from None
    except Exception as err:  # pyarrow raises its own types (ArrowInvalid, ...) for a damaged file
        raise UserError(
            f"{path}: not a readable parquet file ({first_line(err, 160)}); re-export it, or use CSV"
        ) from None
    return [{**r, "_line": i} for i, r in enumerate(frame.to_dict("records"), start=1)]


def _rows_from_json(path: Path, obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return rows_from_columns(obj)  # {"title": {0: ...}, "text": {0: ...}} as pandas writes it
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        n = max(len(v) for v in obj.values())
        return [{**{k: (v[i] if i < len(v) else None) for k, v in obj.items()}, "_line": i + 1} for i in range(n)]
    if isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
        return [{**r, "_line": i} for i, r in enumerate(obj, start=1)]
    raise UserError(f"{path}: expected a list of objects or an object of columns")


def rows_from_columns(columns: dict[str, dict[Any, Any]]) -> list[dict[str, Any]]:
    """``{"title": {i: v}, "text": {i: v}}`` (a dict of dicts, as the original pickles hold) as rows."""
    index: list[Any] = []
    seen: set[Any] = set()
    for col in columns.values():
        for key in col:
            if key not in seen:
                seen.add(key)
                index.append(key)
    return [{**{name: col.get(key) for name, col in columns.items()}, "_line": key} for key in index]
