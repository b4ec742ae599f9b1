"""The restricted unpickler: plain data and DataFrames load, code never runs."""

import math
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from domainlm.errors import UserError
from domainlm.pickles import RefusedPickle, load_plain_pickle

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_PICKLE = SHARED_DATA / "jobs" / "linkedin_936.pkl"

POSTINGS = {
    "title": {0: "Data Engineer", 1: "Nurse – Kraków"},
    "keywords": {0: ["sql", "a/b testing"], 1: []},
    "text": {0: "Build pipelines.\n\nUse SQL.", 1: "Care for patients, “kindly”."},
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_loads_under_every_protocol(tmp_path, protocol):
    obj = {**POSTINGS, "extra": {0: (1, 2.5, True, None, b"x", {"a"}, frozenset([3]), 2 + 1j)}}
    path = _write(tmp_path / "p.pkl", pickle.dumps(obj, protocol=protocol))
    assert load_plain_pickle(path) == obj


class _Runs:
    """Pickles to ``func(*args)``: what a malicious pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted(marker: Path) -> dict[str, object]:
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Runs(os.system, f"touch {marker}"),
        "subprocess.call": _Runs(subprocess.call, ["touch", str(marker)]),
        "subprocess.Popen": _Runs(subprocess.Popen, ["touch", str(marker)]),
        "builtins.exec": _Runs(exec, touch),
        "builtins.eval": _Runs(eval, touch),
        "builtins.open": _Runs(open, str(marker), "w"),
        "nested in plain data": {"title": {0: _Runs(os.system, f"touch {marker}")}},
    }


@pytest.mark.parametrize("case", list(_crafted(Path("x"))))
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_crafted_pickle_runs_nothing(tmp_path, case, protocol):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pkl", pickle.dumps(_crafted(marker)[case], protocol=protocol))
    with pytest.raises(RefusedPickle) as err:
        load_plain_pickle(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused to load: the pickle asks for ")
    assert "convert it to CSV, JSON or parquet" in message and "\n" not in message
    assert not marker.exists()


def test_numpy_globals_are_never_called(tmp_path):
    # numpy.ndarray((2,), 'O', buffer) reads the buffer's bytes as object pointers: a real unpickler
    # crashes the interpreter on this (and a worse payload could do more). Here ndarray is an inert
    # stand-in, so the pickle is refused instead.
    data = b"cnumpy\nndarray\n((I2\ntS'O'\nC\x10" + b"x" * 16 + b"tR."
    with pytest.raises(RefusedPickle, match=r"numpy\.ndarray appears inside plain data"):
        load_plain_pickle(_write(tmp_path / "evil.pkl", data))
    builtin_getattr = b"cbuiltins\ngetattr\n(cbuiltins\nstr\nS'join'\ntR."
    with pytest.raises(RefusedPickle, match=r"asks for builtins\.getattr"):
        load_plain_pickle(_write(tmp_path / "getattr.pkl", builtin_getattr))


def test_bytes_of_a_given_size_are_refused(tmp_path):
    with pytest.raises(UserError, match="not a readable pickle"):
        load_plain_pickle(_write(tmp_path / "big.pkl", b"cbuiltins\nbytes\n(I1000000000000\ntR."))


def test_a_dataframe_loads_as_plain_columns(tmp_path):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            "title": ["Data Engineer", "Nurse", None],
            "keywords": [["sql", "dbt"], None, []],
            "text": ["Build.", "Care.", "Cook."],
            "n": [1, 2, 3],
            "score": [0.5, np.nan, 2.0],
            "remote": [True, False, True],
        },
        index=[10, 11, 12],
    )
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"frame{protocol}.pkl"
        frame.to_pickle(path, protocol=protocol)
        got = load_plain_pickle(path)
        assert list(got) == ["title", "keywords", "text", "n", "score", "remote"]
        assert got["title"] == {10: "Data Engineer", 11: "Nurse", 12: None}
        assert got["keywords"] == {10: ["sql", "dbt"], 11: None, 12: []}
        assert got["text"] == {10: "Build.", 11: "Care.", 12: "Cook."}
        assert got["n"] == {10: 1, 11: 2, 12: 3}
        assert got["score"][10] == 0.5 and math.isnan(got["score"][11]) and got["score"][12] == 2.0
        assert got["remote"] == {10: True, 11: False, 12: True}


def test_dataframe_layouts_fortran_blocks_and_python_strings(tmp_path):
    import numpy as np
    import pandas as pd

    fortran = pd.DataFrame(np.arange(6).reshape(3, 2), columns=["a", "b"])  # a transposed (F-order) block
    path = tmp_path / "f.pkl"
    fortran.to_pickle(path)
    assert load_plain_pickle(path) == {"a": {0: 0, 1: 2, 2: 4}, "b": {0: 1, 1: 3, 2: 5}}
    python_strings = pd.DataFrame({"t": pd.Series(["x", None], dtype=pd.StringDtype("python", na_value=np.nan))})
    python_strings.iloc[::-1].to_pickle(path)
    assert load_plain_pickle(path) == {"t": {1: None, 0: "x"}}


def test_a_dataframe_whose_index_repeats_keeps_every_row(tmp_path):
    import pandas as pd

    first = pd.DataFrame({"title": ["Data Engineer", "Nurse"], "text": ["Build.", "Care."]})
    second = pd.DataFrame({"title": ["Cook", "Pilot"], "text": ["Cook.", "Fly."]})
    path = tmp_path / "concat.pkl"
    pd.concat([first, second]).to_pickle(path)  # index 0, 1, 0, 1: two batches of a scraper, say
    assert load_plain_pickle(path) == {
        "title": {0: "Data Engineer", 1: "Nurse", 2: "Cook", 3: "Pilot"},
        "text": {0: "Build.", 1: "Care.", 2: "Cook.", 3: "Fly."},
    }


def test_dataframe_of_other_dtypes_is_refused(tmp_path):
    import pandas as pd

    path = tmp_path / "dates.pkl"
    pd.DataFrame({"posted": pd.to_datetime(["2021-01-01"])}).to_pickle(path)
    with pytest.raises(RefusedPickle, match=r"asks for pandas\.arrays\.DatetimeArray"):
        load_plain_pickle(path)


def test_a_huge_range_index_is_refused_not_materialised(tmp_path):
    import pandas as pd

    data = pickle.dumps(pd.DataFrame(index=range(10)), protocol=2)  # protocol 2: no frames to resize
    stop_10 = b"h\x0bK\n"  # the rows' RangeIndex: memo 11 ('stop'), then the int 10
    assert data.count(stop_10) == 1
    patched = data.replace(stop_10, b"h\x0bJ\xff\xff\xff\x7f")  # stop = 2**31 - 1
    with pytest.raises(RefusedPickle, match=r"0 columns x 2147483647 rows cannot come from a pickle of \d+ bytes"):
        load_plain_pickle(_write(tmp_path / "huge.pkl", patched))


def test_arrow_offsets_outside_their_buffer_are_refused(tmp_path):
    import pandas as pd
    import pyarrow  # noqa: F401  (parquet needs it)

    data = pickle.dumps(pd.DataFrame({"t": ["abc"]}), protocol=5)
    offsets = (0).to_bytes(8, "little") + (3).to_bytes(8, "little")
    assert data.count(offsets) == 1
    patched = data.replace(offsets, (0).to_bytes(8, "little") + (999).to_bytes(8, "little"))
    with pytest.raises(RefusedPickle, match="offset points outside its data"):
        load_plain_pickle(_write(tmp_path / "patched.pkl", patched))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty: expected a pickle of postings"),
        (b"title,text\nA,B\n", "not a readable pickle"),
        (pickle.dumps(POSTINGS)[:-20], "not a readable pickle"),
    ],
)
def test_unreadable_pickles(tmp_path, data, message):
    path = _write(tmp_path / "bad.pkl", data)
    with pytest.raises(UserError, match=message) as err:
        load_plain_pickle(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.shared_data
@pytest.mark.skipif(not REAL_PICKLE.is_file(), reason=f"real data not found at {REAL_PICKLE}")
def test_real_pickle_and_its_dataframe_load(tmp_path):
    import pandas as pd

    obj = load_plain_pickle(REAL_PICKLE)
    assert sorted(obj) == ["keywords", "text", "title"] and len(obj["text"]) == 936
    path = tmp_path / "frame.pkl"
    pd.DataFrame(obj).to_pickle(path)
    assert load_plain_pickle(path) == obj
