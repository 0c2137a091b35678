"""The help a user reads first: no command summary is cut off, every option says what it is (and the
environment variable it reads), locations are typed as URIs, the exit codes are stated, and the root
--help's examples run as written (against the real local stack, which `eval "$(pipelines dev up)"`,
the examples' first line, stands for here)."""

from __future__ import annotations

import shlex

import pytest
from conftest import run_cli, summary_of


def commands_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Commands:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


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


def every_group() -> list[tuple[str, ...]]:
    import click

    return [path for path, command in every_command() if isinstance(command, click.Group)]


@pytest.mark.parametrize("group", every_group(), ids=lambda g: " ".join(g) or "root")
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


def test_every_option_that_reads_the_environment_shows_its_variable() -> None:
    """click's show_envvar: `[env var: NAME]` in the help, where the option's value may come from."""
    import click

    hidden = [
        (path, param.opts)
        for path, command in every_command()
        for param in command.params  # type: ignore[attr-defined]
        if isinstance(param, click.Option) and param.envvar and not param.show_envvar
    ]
    assert hidden == []
    text = run_cli("jobs", "status", "--help").stdout
    assert "env var: PIPELINES_API_URL" in text and "env var: PIPELINES_API_SIGN" in " ".join(text.split())


@pytest.mark.parametrize("command", ["run", "plan", "finish", "check"])
def test_the_commands_an_operator_scripts_state_their_own_exit_codes(command: str) -> None:
    text = run_cli(command, "--help").stdout
    codes = text[text.index("Exit codes:"):]
    assert "0 " in codes and "1 " in codes and "2 " in codes, text
    if command != "check":
        assert "75 " in codes  # may pass on retry: what the workflow retries


def test_locations_are_typed_as_uris() -> None:
    """Plans and sample files are s3:// URIs or local paths: checked when the command line is read."""
    from pipelines.cli.types import StorageUri

    located = {
        (path, param.name)
        for path, command in every_command()
        for param in command.params  # type: ignore[attr-defined]
        if isinstance(param.type, StorageUri)
    }
    assert located >= {
        (("run",), "plan_uri"), (("plan",), "plan_uri"), (("finish",), "plan_uri"), (("abort",), "plan_uri"),
        (("dev", "sample-audience"), "destination"),
    }
    result = run_cli("plan", "configs/send_audience_to_kafka.yml.liquid", "--out", "s3://bucket/")
    assert result.returncode == 2 and "expected s3://bucket/key" in result.stderr


@pytest.mark.parametrize(
    ("value", "folder", "problem"),
    [
        ("s3://bucket/jobs/plan.json", False, None),
        ("plans/plan.json", False, None),
        ("/tmp/plan.json", False, None),
        ("s3://bucket/prefix/", True, None),
        ("s3://bucket", True, None),
        ("s3://bucket/", False, "expected s3://bucket/key"),
        ("s3://bucket/jobs/", False, "not a prefix"),
        ("s3:///key", False, "expected s3://bucket/key"),
        ("https://example.com/plan.json", False, "or a local path"),
        ("  ", False, "empty"),
    ],
)
def test_the_uri_type(value: str, folder: bool, problem: str | None) -> None:
    import click

    from pipelines.cli.types import StorageUri

    if problem is None:
        assert StorageUri(folder).convert(value, None, None) == value.strip()
    else:
        with pytest.raises(click.BadParameter, match=problem):
            StorageUri(folder).convert(value, None, None)
