"""The compiled hot loops (setup.py builds them; each is optional): one way to get one.

`compiled("pipelines._fastrows", "split_rows")` is that function, or None when the extension was not
built (no C compiler at install time) or PIPELINES_NATIVE=0 (which turns them all off, to compare
or to rule them out). Callers keep a Python loop with the same results for None.
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def enabled() -> bool:
    return os.environ.get("PIPELINES_NATIVE", "1") != "0"


def compiled(module: str, name: str) -> Any:
    if not enabled():
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None
