"""The compiled hot loops (setup.py builds them; each is optional): one way to get one.

`compiled("pipelines.native._fastrows", "split_rows")` is that function, or None when the extension was not
built (no C compiler at install time), when it refuses to load, or with PIPELINES_NATIVE=0 (which
turns them all off, to compare or to rule them out). Callers keep a Python loop with the same results
for None.

An extension refuses with an ImportError: pipelines.native._fastkafka does while a confluent-kafka
other than the one it was verified with is installed (see setup.py). That is logged once per process
as a warning, since every run is then slower; `refusal(module)` gives the message. A module that was
not built at all stays silent.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

# How the C loops number column types (pipelines/native/_fastrows.c), one table for every caller:
# split_rows converts the first four itself and calls the column's converter for kind 4 (timestamps,
# json); encode_records and the JSON value reader convert timestamps (4) themselves.
COLUMN_KINDS = {"string": 0, "long": 1, "double": 2, "boolean": 3, "timestamp": 4}
CONVERTER_KIND = 4

_loaded: dict[str, Any] = {}  # module name -> the module, or None (not built, or refused)
_refusals: dict[str, str] = {}  # module name -> why it refused to load
_lock = threading.Lock()  # one import attempt, and so one warning, per module and process


def enabled() -> bool:
    return os.environ.get("PIPELINES_NATIVE", "1") != "0"


def compiled(module: str, name: str) -> Any:
    if not enabled():
        return None
    if module not in _loaded:
        with _lock:
            if module not in _loaded:
                _load(module)
    found = _loaded[module]
    return None if found is None else getattr(found, name)


def refusal(module: str) -> str | None:
    """Why `module` refused to load (its ImportError's message), or None."""
    return _refusals.get(module)


def _load(module: str) -> None:
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        found = None
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == module):  # else: not built
            import logging

            _refusals[module] = str(exc)
            logging.getLogger(__name__).warning("%s", exc)
    _loaded[module] = found
