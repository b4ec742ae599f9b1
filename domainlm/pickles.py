"""Loading pickles without running code from them.

A pickle is a program: loading one may call any importable function (``os.system`` included). The
original job-postings data comes as pickles, so they are loaded by an unpickler whose ``find_class``
knows two lists and refuses every other global before anything runs:

* plain Python types (containers, strings, numbers), which are returned as themselves;
* the globals that a pandas 3.x ``DataFrame`` of str/object/int/float/bool columns pickles to
  (found by recording ``find_class`` for such frames under protocols 2-5, with and without pyarrow).
  None of them is imported or called: each becomes an inert stand-in that only records the arguments
  and state the pickle gives it. ``_frame_columns`` then reads those records like a file format
  (dtype strings from a short list, byte buffers of checked length, Arrow string offsets checked
  against their buffer) and returns plain columns. pandas, numpy and pyarrow never see the bytes,
  so a crafted pickle cannot reach, say, ``numpy.ndarray(shape, object, buffer)`` (which dereferences
  the buffer as pointers) or a ``DataFrame.__setstate__`` that sets arbitrary attributes.

A DataFrame comes back as ``{column: {index: value}}``, the shape of the original project's pickles
(keyed by position 0, 1, ... where the index repeats a label, as after ``pd.concat``).
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

from domainlm.errors import UserError

# Plain data. Protocols >= 2 encode most of these with opcodes; the globals appear for sets and
# frozensets (protocols 2-3), bytearrays (< 5), complex numbers and slices (REDUCE).
_PLAIN: dict[tuple[str, str], Any] = {
    ("builtins", t.__name__): t for t in (dict, list, tuple, set, frozenset, str, int, float, bool, complex, slice)
}
_PLAIN[("collections", "OrderedDict")] = OrderedDict


def _sized(kind: type) -> Any:
    """``bytes``/``bytearray`` as a pickle may call them, but not ``bytes(10**12)``."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}(<size>) is not plain data")
        return kind(*args)

    return build


_PLAIN[("builtins", "bytes")] = _sized(bytes)
_PLAIN[("builtins", "bytearray")] = _sized(bytearray)

# What a pandas 3.x DataFrame of str/object/int/float/bool columns pickles to, and nothing more.
_FRAME_GLOBALS = frozenset(
    {
        ("pandas", "DataFrame"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas", "Index"),
        ("pandas", "RangeIndex"),
        ("pandas", "StringDtype"),
        ("pandas.arrays", "ArrowStringArray"),  # str columns where pyarrow is installed
        ("pandas.arrays", "StringArray"),  # str columns without pyarrow
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),  # protocols 2-4 and object arrays
        ("numpy._core.numeric", "_frombuffer"),  # protocol 5
        ("pyarrow.lib", "_restore_array"),
        ("pyarrow.lib", "type_for_alias"),
        ("pyarrow.lib", "py_buffer"),
    }
)

# Simple dtypes a frame column may have; anything else (datetimes, categories, structured or
# subarray dtypes) is refused.
_NUMERIC_DTYPES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}
_ARROW_STRINGS = {"string": 4, "utf8": 4, "large_string": 8, "large_utf8": 8}  # alias -> offset bytes


class RefusedPickle(UserError):
    pass


class _Stub:
    """Stand-in for a pandas/numpy/pyarrow global: calling it or building it only records."""

    _global: tuple[str, str] = ("", "")

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


_STUBS = {g: type(g[1], (_Stub,), {"_global": g, "__module__": __name__}) for g in _FRAME_GLOBALS}


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """Protocol 2 writes ``bytes`` as ``_codecs.encode(text, 'latin1')``; only that is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is accepted only as protocol 2 writes bytes (latin1)")
    return text.encode("latin-1")


class _PlainDataUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 spelling
            module = "builtins"
        if (module, name) in _PLAIN:
            return _PLAIN[(module, name)]
        if (module, name) in _STUBS:
            return _STUBS[(module, name)]
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        raise RefusedPickle(
            f"{self._path}: refused to load: the pickle asks for {module}.{name}, and only plain data "
            "(dicts, lists, strings, numbers) or a pandas DataFrame of such columns is loaded from pickles; "
            "convert it to CSV, JSON or parquet with a trusted script"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle(f"{self._path}: refused to load: the pickle uses persistent ids")


def load_plain_pickle(path: str | Path) -> Any:
    """The plain data in ``path``; a pickled DataFrame comes back as ``{column: {index: value}}``.

    Nothing named in the pickle is imported or run; anything beyond plain data and the parts of a
    DataFrame is refused with a ``UserError`` that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    size = path.stat().st_size
    if not size:
        raise UserError(f"{path} is empty: expected a pickle of postings")
    try:
        with path.open("rb") as f:  # read as it goes: no copy of the whole file next to what it holds
            obj = _PlainDataUnpickler(f, path).load()
    except RefusedPickle:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise UserError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); re-save it or use CSV") from None
    if isinstance(obj, _STUBS[("pandas", "DataFrame")]):
        try:
            obj = _frame_columns(obj, limit=size)
        except _Layout as err:
            raise RefusedPickle(
                f"{path}: refused to load this DataFrame: {err}; only str/object/int/float/bool columns are "
                "read from pickles, save other frames with DataFrame.to_parquet"
            ) from None
    _refuse_stubs(path, obj)
    return obj


def _refuse_stubs(path: Path, obj: Any) -> None:
    """DataFrame parts anywhere but at the top level are refused (iteratively: pickles can nest deeply)."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _Stub):
            module, name = item._global
            raise RefusedPickle(
                f"{path}: refused to load: {module}.{name} appears inside plain data; only a DataFrame "
                "as the whole pickle, or plain dicts, lists, strings and numbers, are loaded"
            )
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)


# --- reading a recorded DataFrame -------------------------------------------------------------


class _Layout(Exception):
    """The recorded objects do not have the shape a pandas 3.x DataFrame pickle has."""


def _is(obj: Any, module: str, name: str) -> bool:
    return isinstance(obj, _Stub) and obj._global == (module, name)


def _frame_columns(frame: _Stub, limit: int) -> dict[Any, dict[Any, Any]]:
    """Columns of a recorded DataFrame. ``limit`` (the pickle's size in bytes) bounds rows and columns:
    a RangeIndex costs a few bytes whatever its length, and nothing may be sized by it alone."""
    state = frame.state
    if frame.args or not isinstance(state, dict) or state.get("_typ") != "dataframe":
        raise _Layout("the DataFrame's state is not a pandas 3.x frame")
    mgr = state.get("_mgr")
    if not _is(mgr, "pandas.core.internals.managers", "BlockManager") or len(mgr.args) != 2:
        raise _Layout("the frame's data is not a BlockManager of (blocks, axes)")
    blocks, axes = mgr.args
    if not isinstance(blocks, tuple | list) or not isinstance(axes, tuple | list) or len(axes) != 2:
        raise _Layout("the BlockManager does not hold blocks and two axes")
    n_cols, n_rows = _index_length(axes[0]), _index_length(axes[1])
    if n_cols > limit or n_rows > limit:
        raise _Layout(f"{n_cols} columns x {n_rows} rows cannot come from a pickle of {limit} bytes")
    columns = _index_values(axes[0], n_cols)
    index = _index_values(axes[1], n_rows)
    if len(set(columns)) != len(columns):
        raise _Layout("the frame has duplicate column names")
    values: list[list[Any] | None] = [None] * n_cols
    for block in blocks:
        if not _is(block, "pandas._libs.internals", "_unpickle_block") or len(block.args) != 3:
            raise _Layout("a block is not pickled by _unpickle_block(values, placement, ndim)")
        array, placement, ndim = block.args
        where = _placement(placement, n_cols)
        rows = _block_rows(array, len(where), n_rows, ndim)
        for col, column_values in zip(where, rows, strict=True):
            if values[col] is not None:
                raise _Layout(f"column {col} is stored twice")
            values[col] = column_values
    if any(v is None for v in values):
        raise _Layout("a column has no data")
    if len(set(index)) != len(index):  # pd.concat keeps each part's labels: as dict keys, rows would merge
        index = list(range(n_rows))
    return {name: dict(zip(index, column, strict=True)) for name, column in zip(columns, values, strict=True)}


def _index_length(idx: Any) -> int:
    if not _is(idx, "pandas.core.indexes.base", "_new_Index") or len(idx.args) != 2:
        raise _Layout("an axis is not pickled by _new_Index")
    cls, d = idx.args
    if not isinstance(d, dict):
        raise _Layout("an axis has no attributes")
    if cls is _STUBS[("pandas", "RangeIndex")]:
        start, stop, step = d.get("start"), d.get("stop"), d.get("step")
        if not all(type(v) is int for v in (start, stop, step)) or step == 0:
            raise _Layout("a RangeIndex has no integer start/stop/step")
        return len(range(start, stop, step))
    if cls is _STUBS[("pandas", "Index")]:
        return _array_length(d.get("data"))
    raise _Layout("an axis is neither an Index nor a RangeIndex (MultiIndex and others are not read)")


def _index_values(idx: _Stub, n: int) -> list[Any]:
    cls, d = idx.args
    if cls is _STUBS[("pandas", "RangeIndex")]:
        return list(range(d["start"], d["stop"], d["step"]))
    values = _array_values(d["data"], n)
    for v in values:
        if isinstance(v, list | dict | set) or v is None:
            raise _Layout("an index holds a missing or unhashable label")
    return values


def _placement(placement: Any, n_cols: int) -> list[int]:
    if isinstance(placement, slice):
        start, stop, step = placement.start or 0, placement.stop, placement.step or 1
        if not all(type(v) is int for v in (start, stop, step)) or start < 0 or step <= 0:
            raise _Layout("a block's placement is not a slice of the columns")
        where = range(start, stop, step)  # pandas may store a stop past the last column
        if len(where) > n_cols or (where and where[-1] >= n_cols):
            raise _Layout("a block's placement runs past the columns")
        return list(where)
    where = _array_values(placement, _array_length(placement))
    if not all(type(i) is int and 0 <= i < n_cols for i in where):
        raise _Layout("a block's placement is not a list of column positions")
    return where


def _block_rows(array: Any, n_items: int, n_rows: int, ndim: Any) -> list[list[Any]]:
    """A block's values as one list per column."""
    if ndim != 2:
        raise _Layout("a block is not two-dimensional")
    if _is(array, "pandas.arrays", "ArrowStringArray") or _is(
        array, "pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"
    ):
        if n_items != 1:
            raise _Layout("a string block holds more than one column")
        return [_array_values(array, n_rows)]
    shape, flat = _ndarray(array)
    if len(shape) != 2 or shape[0] != n_items or shape[1] != n_rows:
        raise _Layout(f"a block's shape {shape} does not match {n_items} columns x {n_rows} rows")
    return [flat[i * n_rows : (i + 1) * n_rows] for i in range(n_items)]


def _array_length(arr: Any) -> int:
    if _is(arr, "pandas.arrays", "ArrowStringArray"):
        return _arrow_args(arr)[1]
    if _is(arr, "pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"):
        return _array_length(_string_array_ndarray(arr))
    shape, _ = _ndarray(arr)
    if len(shape) != 1:
        raise _Layout("an index or placement is not one-dimensional")
    return shape[0]


def _array_values(arr: Any, n: int) -> list[Any]:
    if _is(arr, "pandas.arrays", "ArrowStringArray"):
        values = _arrow_strings(arr)
    elif _is(arr, "pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"):
        values = _array_values(_string_array_ndarray(arr), n)
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        if not all(v is None or isinstance(v, str) for v in values):
            raise _Layout("a StringArray holds something other than strings")
    else:
        shape, values = _ndarray(arr)
        if len(shape) != 1:
            raise _Layout("a one-dimensional array was expected")
    if len(values) != n:
        raise _Layout(f"an array has {len(values)} values where {n} were expected")
    return values


def _string_array_ndarray(arr: _Stub) -> Any:
    cls = arr.args[0] if arr.args else None
    st = arr.state  # (dtype, ndarray) or (dtype, ndarray, {"_readonly": ...})
    if cls is not _STUBS[("pandas.arrays", "StringArray")] or not isinstance(st, tuple) or len(st) not in (2, 3):
        raise _Layout("only pandas StringArray is read among NDArray-backed arrays")
    return arr.state[1]


def _dtype(dt: Any) -> tuple[str, str]:
    """(byte order, type string) of a recorded numpy.dtype, if it is one of the simple ones."""
    if not _is(dt, "numpy", "dtype") or not dt.args or not isinstance(dt.args[0], str):
        raise _Layout("an array has no simple dtype")
    code = dt.args[0]
    order = dt.state[1] if isinstance(dt.state, tuple) and len(dt.state) > 1 else "|"
    if code not in _NUMERIC_DTYPES and code not in ("O8", "O4"):
        raise _Layout(f"dtype {code!r} is not read (only bool, int, float and object columns)")
    if isinstance(dt.state, tuple) and any(x is not None for x in dt.state[2:5]):
        raise _Layout("structured or subarray dtypes are not read")
    if order not in ("<", ">", "|", "="):
        raise _Layout(f"unknown byte order {order!r}")
    return order, code


def _ndarray(arr: Any) -> tuple[tuple[int, ...], list[Any]]:
    """(shape, values in C order) of a recorded numpy array."""
    if _is(arr, "numpy._core.multiarray", "_reconstruct"):
        st = arr.state
        if not (isinstance(st, tuple) and len(st) == 5 and arr.args and arr.args[0] is _STUBS[("numpy", "ndarray")]):
            raise _Layout("an ndarray has no (version, shape, dtype, fortran, data) state")
        _, shape, dt, fortran, raw = st
        order = "F" if fortran else "C"  # of raw bytes; object arrays are pickled as a list in C order
    elif _is(arr, "numpy._core.numeric", "_frombuffer"):
        if len(arr.args) != 4:
            raise _Layout("_frombuffer has not (buffer, dtype, shape, order)")
        raw, dt, shape, order = arr.args
    else:
        raise _Layout("an array is neither an ndarray nor a pandas string array")
    if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape) or order not in ("C", "F"):
        raise _Layout("an ndarray has no valid shape or memory order")
    size = math.prod(shape)
    byteorder, code = _dtype(dt)
    if code.startswith("O"):
        if not isinstance(raw, list) or len(raw) != size:
            raise _Layout("an object array does not hold one value per element")
        return shape, list(raw)
    if not isinstance(raw, bytes | bytearray):
        raise _Layout("a numeric array has no byte buffer")
    import numpy as np  # reads bytes with a dtype from the short list above, nothing else

    dtype = np.dtype(("" if byteorder in ("|", "=") else byteorder) + code)
    if len(raw) != size * dtype.itemsize:
        raise _Layout(f"a buffer of {len(raw)} bytes does not hold {size} values of {code}")
    values = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order=order)
    return shape, values.ravel(order="C").tolist()


def _arrow_args(arr: _Stub) -> tuple[str, int, int, int, list[Any]]:
    st = arr.state
    pa_array = st.get("_pa_array") if isinstance(st, dict) else None
    if not _is(pa_array, "pyarrow.lib", "_restore_array") or len(pa_array.args) != 1:
        raise _Layout("an ArrowStringArray holds no pyarrow array")
    data = pa_array.args[0]
    if not isinstance(data, tuple) or len(data) != 7:
        raise _Layout("a pyarrow array is not (type, length, null_count, offset, buffers, children, dictionary)")
    typ, length, null_count, offset, buffers, children, dictionary = data
    if not _is(typ, "pyarrow.lib", "type_for_alias") or typ.args[:1] == () or typ.args[0] not in _ARROW_STRINGS:
        raise _Layout("a pyarrow array is not of a string type")
    if children not in ([], ()) or dictionary is not None:
        raise _Layout("a pyarrow string array has children or a dictionary")
    if not all(type(v) is int and v >= 0 for v in (length, null_count, offset)):
        raise _Layout("a pyarrow array has an invalid length or offset")
    if not isinstance(buffers, list | tuple) or len(buffers) != 3:
        raise _Layout("a pyarrow string array has not three buffers")
    raw = []
    for buf in buffers:
        if buf is None:
            raw.append(None)
        elif _is(buf, "pyarrow.lib", "py_buffer") and len(buf.args) == 1 and isinstance(buf.args[0], bytes | bytearray):
            raw.append(bytes(buf.args[0]))
        else:
            raise _Layout("a pyarrow buffer is not plain bytes")
    return typ.args[0], length, null_count, offset, raw


def _arrow_strings(arr: _Stub) -> list[str | None]:
    """Decode an Arrow (large_)string array from its buffers, checking every offset."""
    alias, length, _, offset, (validity, offsets, data) = _arrow_args(arr)
    width = _ARROW_STRINGS[alias]
    if offsets is None or len(offsets) < (offset + length + 1) * width:
        raise _Layout("a pyarrow string array's offsets are shorter than its length")
    if validity is not None and len(validity) * 8 < offset + length:
        raise _Layout("a pyarrow string array's validity bitmap is too short")
    data = data or b""
    pos = [
        int.from_bytes(offsets[i * width : (i + 1) * width], "little", signed=True)
        for i in range(offset, offset + length + 1)
    ]
    out: list[str | None] = []
    for i in range(length):
        j = offset + i
        if validity is not None and not (validity[j // 8] >> (j % 8)) & 1:
            out.append(None)
            continue
        start, end = pos[i], pos[i + 1]
        if not 0 <= start <= end <= len(data):
            raise _Layout("a pyarrow string offset points outside its data")
        try:
            out.append(data[start:end].decode("utf-8"))
        except UnicodeDecodeError:
            raise _Layout("a pyarrow string is not UTF-8") from None
    return out
