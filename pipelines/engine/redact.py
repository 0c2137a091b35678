"""Keeps secrets out of rendered configs and logs: values under secret-looking keys, of secret-looking
environment variables or --var names, are replaced by ******."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "******"
SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|credential|private[._-]?key|api[._-]?key|access[._-]?key|user[._-]?info|sasl\.jaas", re.I)
MIN_SECRET_LENGTH = 4
_NOT_SECRET_TAGS = ("tag:yaml.org,2002:null", "tag:yaml.org,2002:bool")


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


def _secret_scalar_spans(text: str) -> list[tuple[int, int]]:
    """Where, in YAML `text`, the scalars under secret-named keys are written (quotes included).

    A value's loaded form can differ from how it is written ('it''s', "a\\"b", octal 0012,
    block scalars), so replacing the loaded value alone would leave such secrets in clear.
    """
    import yaml

    spans: set[tuple[int, int]] = set()

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, secret or (isinstance(key, yaml.ScalarNode) and is_secret_name(str(key.value))))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, secret)
        elif secret and isinstance(node, yaml.ScalarNode) and node.tag not in _NOT_SECRET_TAGS:
            start, end = node.start_mark.index, node.end_mark.index
            while start < end and text[start] in "&!":  # keep an anchor or a tag before the value
                properties = re.compile(r"[&!]\S*\s+").match(text, start, end)
                if properties is None:
                    break
                start = properties.end()
            while end > start and text[end - 1] in " \t\r\n":
                end -= 1
            if end > start:
                spans.add((start, end))

    try:
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            walk(document, False)
    except yaml.YAMLError:
        return []
    return sorted(spans)


def redact(text: str, values: Iterable[str]) -> str:
    spans = _secret_scalar_spans(text)
    for start, end in reversed(spans):
        text = text[:start] + f'"{MASK}"' + text[end:]  # quoted: a bare ****** would read as a YAML alias
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
