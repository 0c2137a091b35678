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


def every_command() -> list[tuple[tuple[str, ...], object]]:
    import click

    from pipelines.cli.main import cli

    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(cli, ())
    return found


def test_every_option_has_help_and_no_default_is_said_twice() -> None:
    """Each option says what it is; a default is given once, by click's [default: ...] or by the text."""
    import click

    missing, twice = [], []
    for path, command in every_command():
        for param in command.params:  # type: ignore[attr-defined]
            if not isinstance(param, click.Option) or param.hidden or param.name == "help":
                continue
            if not param.help:
                missing.append((path, param.opts))
            elif param.show_default and "default" in param.help.lower():
                twice.append((path, param.opts))
    assert (missing, twice) == ([], [])


@pytest.mark.parametrize("path", [p for p, _ in every_command() if p], ids=" ".join)
def test_every_command_states_its_exit_codes(path: tuple[str, ...]) -> None:
    """The command's own help, or its group's, says what its exit codes mean."""
    own = run_cli(*path, "--help").stdout
    group = run_cli(*path[:1], "--help").stdout if len(path) > 1 else ""
    assert "Exit codes" in own or "Exit codes" in group, own
