"""Loading pickles without running code from them.

A pickle can call any function while it loads. The original job-postings data comes as pickles, so
they are loaded with an unpickler that builds only plain containers, strings and numbers, and
refuses every other global with a clear error before anything runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from domainlm.errors import UserError

# Globals a pickle of plain data may name (protocol 0-5 encode some builtins through these).
_ALLOWED = {
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "bool"),
    ("builtins", "complex"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("collections", "OrderedDict"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class RefusedPickle(UserError):
    pass


class _PlainDataUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise RefusedPickle(
            f"{self._path}: refused to load: the pickle asks for {module}.{name}, and only plain data "
            "(dicts, lists, strings, numbers) is loaded from pickles; convert it to CSV or JSON with a "
            "trusted script"
        )


def load_plain_pickle(path: str | Path) -> Any:
    """The object in ``path`` if it consists of plain data only; nothing else is constructed or run."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    if not data:
        raise UserError(f"{path} is empty")
    try:
        return _PlainDataUnpickler(io.BytesIO(data), path).load()
    except RefusedPickle:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise UserError(f"{path}: not a readable pickle ({err})") from None
