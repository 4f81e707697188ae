"""Loading a pickle that may come from another pipeline step, without letting it run code.

A pickle can name any importable callable, and unpickling calls it. :class:`PlainDataUnpickler`
builds nothing but containers, strings and numbers (numpy scalars included) and refuses every other
class or function, so an ``impute_dict.pkl`` or ``risk_table_map.pkl`` from elsewhere is data only.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from contracts.errors import DataError


class PlainDataUnpickler(pickle.Unpickler):
    """Unpickles containers, strings and numbers (numpy scalars included); refuses every other class
    or function, which is how a pickle would otherwise run code while loading."""

    ALLOWED = frozenset({
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "OrderedDict"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it references {module}.{name}")


def load_plain_pickle(path: Path) -> Any:
    try:
        return PlainDataUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(
            f"{path} was not loaded: {exc}. Only plain dicts, lists, strings and numbers are read from a pickle; "
            f"write the artifact as {path.with_suffix('.json').name} instead."
        ) from None
