"""Terraform's ``templatefile`` interpolation, done strictly in Python, for the files Terraform fills
(statemachine.json, workflow/*.json): the tests and the local stack render exactly what is deployed.

``${name}`` is a placeholder (spaces inside the braces allowed); ``$${`` is templatefile's escape
for a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_PLACEHOLDER = re.compile(r"(?<!\$)\$\{\s*([^}]*?)\s*\}")


def placeholders_in(text: str) -> set[str]:
    """The names of the ``${...}`` placeholders in a template."""
    return set(_PLACEHOLDER.findall(text))


def fill(text: str, values: dict[str, str], label: str, check: Callable[[str, str], None] | None = None) -> str:
    """``text`` with each ``${name}`` replaced by values[name], as templatefile does.

    Strict: every placeholder needs a value and every value a placeholder (a ValueError starting
    with ``label`` names the others), and every value must be a string (TypeError). ``check(name,
    value)``, called for each value after its type is checked, may refuse it too.
    """
    found = placeholders_in(text)
    missing, extra = sorted(found - values.keys()), sorted(values.keys() - found)
    if missing or extra:
        problems = ([f"no value for {', '.join(missing)}"] if missing else []) + ([f"no placeholder for {', '.join(extra)}"] if extra else [])
        raise ValueError(f"{label}: {'; '.join(problems)}")
    for name, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"{label}: the value of {name} must be a string, got {type(value).__name__}")
        if check is not None:
            check(name, value)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text).replace("$${", "${")
