"""Keeps secrets out of rendered configs and logs: values under secret-looking keys, of secret-looking
environment variables or --var names, are replaced by ******."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "******"
SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|credential|private[._-]?key|api[._-]?key|access[._-]?key|sasl\.jaas", re.I)
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def secret_values(data: Any, variables: Mapping[str, str]) -> set[str]:
    """Values to hide: under secret-named keys in `data`, and of secret-named `variables`."""
    found = {v for k, v in variables.items() if is_secret_name(k) and isinstance(v, str)}

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, secret or is_secret_name(str(key)))
        elif isinstance(node, list):
            for item in node:
                walk(item, secret)
        elif secret and node is not None and not isinstance(node, bool):
            found.add(str(node))

    walk(data, False)
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH}


def redact(text: str, values: Iterable[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
