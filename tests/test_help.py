"""The help a user reads first: no command summary is cut off, and the root --help's examples run as
written (against the real local stack, which `eval "$(pipelines dev up)"`, the examples' first line,
stands for here)."""

from __future__ import annotations

import shlex

import pytest
from conftest import run_cli, summary_of

GROUPS = [(), ("dev",), ("jobs",), ("api",)]


def commands_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Commands:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "root")
def test_no_command_summary_is_cut_off(group: tuple[str, ...]) -> None:
    result = run_cli(*group, "--help")
    assert result.returncode == 0, result.stderr
    summaries = commands_section(result.stdout)
    assert summaries, result.stdout
    assert not [line for line in summaries if line.rstrip().endswith("...")], result.stdout


def root_examples() -> list[str]:
    """The `pipelines ...` lines of the root --help's Examples, after `eval "$(pipelines dev up)"`."""
    text = run_cli("--help").stdout
    examples = text[text.index("Examples:"):].splitlines()[1:]
    return [line.strip() for line in examples if line.strip().startswith("pipelines ")]


@pytest.mark.integration
def test_the_root_help_examples_run_as_written(stack) -> None:
    examples = root_examples()
    assert [e.split()[1] for e in examples] == ["dev", "dev", "validate", "run"], examples
    for example in examples:
        result = run_cli(*shlex.split(example)[1:])
        assert result.returncode == 0, f"{example}\n{result.stderr}"
    assert summary_of(result)["rows_written"] == 100_000
