"""Reading tables with errors a person can act on, and writing files atomically.

Every file the project writes goes through ``atomic_write``: a temporary file in the same folder,
flushed to disk, then renamed over the target, so a crash never leaves half a ``train.csv``.
Every table the project reads goes through ``read_table``, which names the file, the line and the
column when something is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from domainlm.errors import UserError

# Python's csv module refuses fields over 128 KiB by default; long documents are legitimate.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet", ".pkl", ".pickle")


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def read_text(path: str | os.PathLike) -> str:
    """The whole file as text; a clear error for a missing file or bytes that are not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[err.start]:02x}); "
            f"re-save the file as UTF-8, e.g. `iconv -f cp1252 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}`"
        ) from None


def iter_csv(path: str | os.PathLike) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and ``(line_number, row)`` pairs of a CSV; malformed quoting is reported by line."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise UserError(f"{path} is empty: expected a CSV with a header row")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as err:
        raise UserError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from None
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


def require_columns(path: str | os.PathLike, columns: Sequence[str], wanted: dict[str, str]) -> None:
    """``wanted`` maps a column name to the flag that chooses it; a missing one is a UserError."""
    for name, flag in wanted.items():
        if name not in columns:
            have = ", ".join(repr(c) for c in columns) or "none"
            raise UserError(f"{path} has no column {name!r} (columns: {have}); choose one with {flag}")


def read_table(path: str | os.PathLike, wanted: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON (a list of objects), JSONL or parquet file as dicts.

    ``wanted`` maps required column names to the flag that names them, for the error message.
    Each row carries its source position under the key ``"_line"`` (CSV/JSONL line, JSON index).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]]
    if suffix == ".csv":
        header, it = iter_csv(path)
        require_columns(path, header, wanted or {})
        rows = [{**row, "_line": line} for line, row in it]
    elif suffix == ".jsonl":
        rows = []
        for i, line in enumerate(read_text(path).splitlines(), start=1):
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
        text = read_text(path)
        if not text.strip():
            raise UserError(f"{path} is empty: expected a JSON list of objects")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
        rows = _rows_from_json(path, obj)
    elif suffix == ".parquet":
        import pandas as pd

        if not path.is_file():
            raise UserError(f"{path}: no such file")
        frame = pd.read_parquet(path)
        rows = [{**r, "_line": i} for i, r in enumerate(frame.to_dict("records"), start=1)]
    else:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(TABLE_SUFFIXES)}")
    if not rows:
        raise UserError(f"{path} holds no rows")
    if suffix != ".csv" and wanted:
        columns = sorted({k for r in rows for k in r if k != "_line"})
        require_columns(path, columns, wanted)
    return rows


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
