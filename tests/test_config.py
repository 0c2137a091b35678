"""Configs: strict Liquid rendering, YAML parsing, validation into plugin settings, the CLI's
`validate` and `render` commands (exit codes, secret masking) and the plugin registry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.engine import registry
from pipelines.cli.main import cli
from pipelines.engine.config import load_job, parse_yaml, render
from pipelines.engine.errors import EXIT_CONFIG, ConfigError
from pipelines.engine.redact import MASK

UNSET = "PIPELINES_TEST_SURELY_UNSET"

# A valid config reading a local folder; {parser}, {filters}, {out}, {exec} are replaced by tests.
CSV_COLUMNS = """\
    columns:
      - {name: user_id, type: string}
      - {name: country, type: string}
      - {name: score, type: double}
"""


# ---------------------------------------------------------------- helpers


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_text(*, parser: str | None = None, filters: str = "", out: str | None = None, exec_: str = "") -> str:
    """A whole config (already dedented); sections are given as YAML text at column 0/2."""
    parser = parser if parser is not None else "  parser:\n    type: csv\n" + CSV_COLUMNS
    out = out if out is not None else "out:\n  type: file\n  path_prefix: /tmp/never-written/out\n"
    return "in:\n  type: file\n  path_prefix: /tmp/never-read/in_\n" + parser + filters + out + exec_


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args])


def config_error(path: Path, *extra: str) -> str:
    """Runs `pipelines validate`, checks it fails as a config error naming the file; returns the message."""
    result = invoke("validate", path, *extra)
    assert result.exit_code == EXIT_CONFIG, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}"), result.stderr
    assert result.stderr.count("\n") == 1, "one line on stderr, no traceback"
    return result.stderr


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (UNSET, "KAFKA_BOOTSTRAP", "KAFKA_SASL_PASSWORD", "PIPE_TOPIC", "PIPE_TEST_VALUE", "API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- Liquid rendering


def test_liquid_renders_env_and_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPE_TOPIC", "from-env")
    path = write(tmp_path, "c.yml.liquid", 'topic: "{{ env.PIPE_TOPIC }}"\nbucket: "{{ var.BUCKET }}"\n')

    assert render(path, {"BUCKET": "audiences"}) == 'topic: "from-env"\nbucket: "audiences"\n'


def test_var_is_available_as_var_and_overrides_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPE_TOPIC", "from-env")
    path = write(tmp_path, "c.yml.liquid", 'a: "{{ env.PIPE_TOPIC }}"\nb: "{{ var.PIPE_TOPIC }}"\n')

    result = invoke("render", path, "--var", "PIPE_TOPIC=from-var")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == 'a: "from-var"\nb: "from-var"\n'


def test_var_value_may_contain_equals_sign(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", 'q: "{{ var.Q }}"\n')

    result = invoke("render", path, "--var", "Q=a=b")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == 'q: "a=b"\n'


def test_var_without_equals_sign_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", "a: 1\n")

    result = invoke("render", path, "--var", "NOVALUE")

    assert result.exit_code == EXIT_CONFIG
    assert "expected KEY=VALUE" in result.stderr


def test_default_filter_applies_only_when_undefined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        "c.yml.liquid",
        textwrap.dedent(
            f"""\
        topic: "{{{{ env.PIPE_TOPIC | default: 'audience-members' }}}}"
        max: {{{{ env.{UNSET} | default: 0 }}}}
        v: "{{{{ var.V | default: 'dv' }}}}"
        """
        ),
    )
    assert parse_yaml(render(path), str(path)) == {"topic": "audience-members", "max": 0, "v": "dv"}

    monkeypatch.setenv("PIPE_TOPIC", "mine")
    assert parse_yaml(render(path, {"V": "given"}), str(path)) == {"topic": "mine", "max": 0, "v": "given"}


def test_undefined_variable_is_an_error_naming_variable_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yml.liquid",
        textwrap.dedent(
            f"""\
        in:
          type: file
          path_prefix: "{{{{ env.{UNSET} }}}}"
        """
        ),
    )
    with pytest.raises(ConfigError) as info:
        render(path)
    message = str(info.value)
    assert f"env.{UNSET}" in message
    assert message.startswith(f"{path}: line 3:")

    stderr = config_error(path)
    assert f"env.{UNSET}" in stderr and "line 3" in stderr


def test_undefined_var_namespace_is_an_error_too(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", 'a: 1\nb: "{{ var.NOT_GIVEN }}"\n')

    stderr = config_error(path, "--var", "OTHER=1")

    assert "var.NOT_GIVEN" in stderr and f"{path}: line 2" in stderr


def test_undefined_variable_in_an_if_tag_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", f"a: 1\n{{% if env.{UNSET} %}}b: 2{{% endif %}}\n")

    with pytest.raises(ConfigError, match=rf"line 2: undefined template variable: env\.{UNSET}"):
        render(path)


def test_include_loads_the_partial_beside_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    write(configs, "_kafka.yml.liquid", '  type: kafka\n  brokers: ["{{ env.KAFKA_BOOTSTRAP }}"]\n')
    path = write(configs, "send.yml.liquid", "out:\n{% include 'kafka' %}\n  topic: t\n")
    # A partial of the same name in the working directory is not the one used.
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    write(elsewhere, "_kafka.yml.liquid", "  type: wrong\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")

    assert parse_yaml(render(path), str(path)) == {"out": {"type": "kafka", "brokers": ["broker:9092"], "topic": "t"}}


def test_undefined_variable_inside_a_partial_names_the_partial(tmp_path: Path) -> None:
    partial = write(tmp_path, "_kafka.yml.liquid", '  type: kafka\n\n  brokers: ["{{ env.KAFKA_BOOTSTRAP }}"]\n')
    path = write(tmp_path, "send.yml.liquid", "a: 1\nb: 2\nout:\n{% include 'kafka' %}\n  topic: t\n")

    with pytest.raises(ConfigError) as info:
        render(path)

    message = str(info.value)
    assert message.startswith(f"{partial}: line 3:"), message
    assert "env.KAFKA_BOOTSTRAP" in message
    assert str(path) + ":" not in message  # the partial, not the config including it


def test_missing_partial_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "send.yml.liquid", "out:\n{% include 'kafka' %}\n")

    stderr = config_error(path)

    assert "include 'kafka' needs _kafka.yml.liquid beside the config" in stderr


def test_include_name_must_be_a_plain_name(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "_secrets.yml.liquid", "a: 1\n")
    path = write(tmp_path / "sub", "c.yml.liquid", "{% include '../secrets' %}\n")

    stderr = config_error(path)

    assert "include name '../secrets' must be a plain name" in stderr


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", "a: 1\nb: {{ env.X | no_such_filter }}\n")

    stderr = config_error(path)

    assert f"{path}: line 2: template error: unknown filter 'no_such_filter'" in stderr


def test_unclosed_block_names_the_file_without_a_wrong_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", "a: 1\nb: 2\n{% if true %}\nc: 3\n")

    stderr = config_error(path)

    assert "template error: expected tag endif" in stderr
    assert "line 1" not in stderr  # the error is at the end of the template, not on line 1


def test_plain_yml_is_not_templated(tmp_path: Path) -> None:
    text = 'a: "{{ x }}"\nb: "{% if y %}"\n'
    path = write(tmp_path, "c.yml", text)

    assert render(path) == text
    assert parse_yaml(render(path), str(path)) == {"a": "{{ x }}", "b": "{% if y %}"}
    result = invoke("render", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == text


def test_plain_yml_config_with_braces_validates(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text().replace("/tmp/never-read/in_", "/tmp/{{ not_a_var }}/in_"))

    result = invoke("validate", path)

    assert result.exit_code == 0, result.stderr
    job = load_job(path)
    assert job.input.settings.path_prefix == "/tmp/{{ not_a_var }}/in_"


def test_missing_config_file(tmp_path: Path) -> None:
    stderr = config_error(tmp_path / "nope.yml.liquid")

    assert "config file not found" in stderr


# ---------------------------------------------------------------- YAML


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", "in:\n  type: file\n  path_prefix: [a\nout: {type: stdout}\n")

    stderr = config_error(path)

    assert "invalid YAML at line 4, column 4" in stderr


def test_yaml_error_in_a_template_says_the_line_is_of_the_rendered_text(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", "a: 1\n{%- comment -%}\nremoved\n{%- endcomment %}\nb: [1\nc: 2\n")

    stderr = config_error(path)

    assert "invalid YAML at line 3, column 2 of the rendered config" in stderr


def test_yaml_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", "in:\n  type: file\n\tpath_prefix: x\n")

    stderr = config_error(path)

    assert "invalid YAML at line 3" in stderr


def test_yaml_duplicate_key_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text(exec_="exec:\n  max_errors: 1\n  max_errors: 100\n"))
    exec_line = config_text().count("\n") + 1

    stderr = config_error(path)

    assert f"invalid YAML at line {exec_line + 2}, column 3: duplicate key 'max_errors' (first at line {exec_line + 1})" in stderr


def test_yaml_merge_keys_may_override(tmp_path: Path) -> None:
    data = parse_yaml("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", "c.yml")

    assert data["m"] == {"x": 3, "y": 2}


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_config_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "c.yml", text)

    stderr = config_error(path)

    assert "expected a mapping with in:, out:" in stderr


# ---------------------------------------------------------------- validation into settings


def test_valid_config_validates_and_lists_the_output_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text())

    result = invoke("validate", path)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"ok: {path} (user_id:string, country:string, score:double)\n"


def test_example_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parent.parent / "configs" / "send_audience_to_kafka.yml.liquid"
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "localhost:9092")

    job = load_job(example, {"S3_BUCKET": "audiences", "S3_KEY": "drops/a.csv.gz", "MAX_ERRORS": "3"})

    assert job.output.settings.brokers == ("localhost:9092",)
    assert job.output.settings.topic == "audience-members"
    assert job.exec.max_errors == 3
    assert job.exec.error_output == "s3://audiences/_errors/"
    assert job.schema.names == ["user_id", "country", "score", "opted_in", "updated_at", "segment_id"]


@pytest.mark.parametrize(
    ("old", "new", "where", "hint"),
    [
        ("    type: csv\n", "    type: csv\n    delimeter: ';'\n", "in.parser.delimeter: unknown option", "did you mean 'delimiter'?"),
        ("  type: file\n", "  type: file\n  path_prefx: x\n", "in.path_prefx: unknown option", "did you mean 'path_prefix'?"),
        ("{name: score, type: double}", "{name: score, typ: double}", "in.parser.columns[2].typ: unknown option", "did you mean 'type'?"),
        ("out:\n", "filter: []\nout:\n", "filter: unknown top-level key", "did you mean 'filters'?"),
        ("out:\n", "exec: {max_error: 1}\nout:\n", "exec.max_error: unknown option", "did you mean 'max_errors'?"),
    ],
)
def test_unknown_key_names_its_path_and_suggests(tmp_path: Path, old: str, new: str, where: str, hint: str) -> None:
    text = config_text()
    assert old in text
    path = write(tmp_path, "c.yml", text.replace(old, new, 1))

    stderr = config_error(path)

    assert f"error: {path}: {where} ({hint})" in stderr


def test_unknown_key_far_from_any_option_has_no_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text(exec_="exec:\n  zzzz: 1\n"))

    stderr = config_error(path)

    assert stderr == f"error: {path}: exec.zzzz: unknown option\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  path_prefix: /tmp/never-read/in_\n", "", "in.path_prefix: missing required option 'path_prefix'"),
        ("  parser:\n    type: csv\n" + CSV_COLUMNS, "", "in.parser: missing required option 'parser' (avro, csv, json, jsonl)"),
        (CSV_COLUMNS, "", "in.parser.columns: missing required option 'columns'"),
        ("{name: country, type: string}", "{type: string}", "in.parser.columns[1].name: missing required option 'name'"),
        ("  type: file\n  path_prefix: /tmp/never-written/out\n", "  path_prefix: x\n", "out: missing required option 'type' (file, kafka, null, s3, stdout)"),
        ("out:\n  type: file\n  path_prefix: /tmp/never-written/out\n", "", "out: missing required section 'out:'"),
    ],
)
def test_missing_required_option(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = config_text()
    assert old in text
    path = write(tmp_path, "c.yml", text.replace(old, new, 1))

    stderr = config_error(path)

    assert stderr == f"error: {path}: {expected}\n"


def test_wrong_column_type_names_the_key_path_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text().replace("{name: country, type: string}", "{name: country, type: int}"))

    stderr = config_error(path)

    assert stderr == (
        f"error: {path}: in.parser.columns[1].type: "
        "expected one of string, long, double, boolean, timestamp, json; got 'int'\n"
    )


def test_misspelt_column_type_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text().replace("type: double}", "type: dubble}"))

    stderr = config_error(path)

    assert "in.parser.columns[2].type: expected one of string, long, double" in stderr
    assert "did you mean 'double'?" in stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    skip_header_lines: many\n", "in.parser.skip_header_lines: expected an integer, got 'many'"),
        ("    skip_header_lines: true\n", "in.parser.skip_header_lines: expected an integer, got True"),
        ("    skip_header_lines: '--5'\n", "in.parser.skip_header_lines: expected an integer, got '--5'"),
        ("    skip_header_lines: -1\n", "in.parser: skip_header_lines must be 0 or more"),
        ("    allow_extra_columns: maybe\n", "in.parser.allow_extra_columns: expected true or false, got 'maybe'"),
        ("    delimiter: ''\n", "in.parser: delimiter must not be empty"),
        ("    delimiter: '\"'\n", "in.parser: delimiter '\"' cannot also be the quote or escape character"),
        ("    quote: \"\\n\"\n", "in.parser: quote cannot be a line break"),
        ("    charset: klingon\n", "in.parser.charset: unknown charset 'klingon'"),
        ("    charset: utf-16\n", "in.parser.charset: charset 'utf-16' is not supported"),
        ("    null_string: [a]\n", "in.parser.null_string: expected a string, got a list"),
    ],
)
def test_wrong_parser_option(tmp_path: Path, extra: str, expected: str) -> None:
    path = write(tmp_path, "c.yml", config_text().replace("    type: csv\n", "    type: csv\n" + extra, 1))

    stderr = config_error(path)

    assert stderr.startswith(f"error: {path}: {expected}"), stderr


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ("    columns: user_id\n", "in.parser.columns: expected a list, got 'user_id'"),
        ("    columns: []\n", "in.parser: columns: declare at least one column"),
        ("    columns: [{name: a}, {name: a}]\n", "in.parser.columns[1].name: column 'a' is declared twice"),
        ("    columns: [{name: a, format: '%Y'}]\n", "in.parser.columns[0].format: 'format' is only for timestamp columns"),
    ],
)
def test_wrong_columns(tmp_path: Path, columns: str, expected: str) -> None:
    path = write(tmp_path, "c.yml", config_text(parser="  parser:\n    type: csv\n" + columns))

    stderr = config_error(path)

    assert stderr == f"error: {path}: {expected}\n"


@pytest.mark.parametrize(
    ("exec_", "expected"),
    [
        ("exec: {max_errors: lots}\n", "exec.max_errors: expected an integer, got 'lots'"),
        ("exec: {max_errors: -1}\n", "exec: max_errors must be 0 or more"),
        ("exec: {max_error_rate: 1.5}\n", "exec: max_error_rate must be between 0 and 1"),
        ("exec: {batch_rows: 0}\n", "exec: batch_rows must be at least 1"),
        ("exec: [1]\n", "exec: expected a mapping of options, got a list"),
    ],
)
def test_wrong_exec_option(tmp_path: Path, exec_: str, expected: str) -> None:
    path = write(tmp_path, "c.yml", config_text(exec_=exec_))

    stderr = config_error(path)

    assert stderr == f"error: {path}: {expected}\n"


def test_numbers_as_strings_are_accepted_where_they_are_meant(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text(exec_="exec: {max_errors: '7', max_error_rate: '0.25'}\n"))

    job = load_job(path)

    assert (job.exec.max_errors, job.exec.max_error_rate) == (7, 0.25)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    type: csv\n", "    type: cvs\n", "in.parser.type: unknown parser plugin type 'cvs' (did you mean 'csv'?); known: avro, csv, json, jsonl"),
        ("  type: file\n  path_prefix: /tmp/never-read", "  type: fiel\n  path_prefix: /tmp/never-read", "in.type: unknown in plugin type 'fiel' (did you mean 'file'?); known: file, kafka, s3"),
        ("  type: file\n  path_prefix: /tmp/never-written", "  type: kafak\n  path_prefix: /tmp/never-written", "out.type: unknown out plugin type 'kafak' (did you mean 'kafka'?); known: file, kafka, null, s3, stdout"),
        ("  type: file\n  path_prefix: /tmp/never-written", "  type: bigquery\n  path_prefix: /tmp/never-written", "out.type: unknown out plugin type 'bigquery'; known: file, kafka, null, s3, stdout"),
        ("out:\n", "filters: [{type: renam}]\nout:\n", "filters[0].type: unknown filter plugin type 'renam' (did you mean 'rename'?); known: add_columns, keep_columns, remove_columns, rename, validate"),
        ("  parser:\n", "  decoders: [{type: gz}]\n  parser:\n", "in.decoders[0].type: unknown decoder plugin type 'gz' (did you mean 'gzip'?); known: bzip2, gzip, none, zstd"),
        ("  parser:\n", "  decoders: [{type: lzma}]\n  parser:\n", "in.decoders[0].type: unknown decoder plugin type 'lzma'; known: bzip2, gzip, none, zstd"),
        ("    type: csv\n", "    type: 3\n", "in.parser.type: expected a plugin type name (avro, csv, json, jsonl), got 3"),
    ],
)
def test_unknown_plugin_type(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = config_text()
    assert old in text
    path = write(tmp_path, "c.yml", text.replace(old, new, 1))

    stderr = config_error(path)

    assert stderr == f"error: {path}: {expected}\n"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            "filters:\n  - {type: keep_columns, keep: [user_id, contry]}\n",
            "filters[0].keep[1]: no column 'contry' (did you mean 'country'?); columns here: user_id, country, score",
        ),
        (
            "filters:\n  - {type: remove_columns, remove: [scor]}\n",
            "filters[0].remove[0]: no column 'scor' (did you mean 'score'?); columns here: user_id, country, score",
        ),
        ("filters:\n  - {type: rename, columns: {userid: id}}\n", "filters[0].columns.userid: no column 'userid' to rename (did you mean 'user_id'?)"),
        ("filters:\n  - {type: rename, columns: {country: score}}\n", "filters[0].columns: renaming makes two columns named 'score'"),
        (
            "filters:\n  - {type: validate, columns: [{name: user_id, required: true}, {name: age, required: true}]}\n",
            "filters[0].columns[1].name: no column 'age'; columns here: user_id, country, score",
        ),
        (
            # the second filter sees the first one's output: user_id is gone
            "filters:\n  - {type: rename, columns: {user_id: id}}\n  - {type: keep_columns, keep: [user_id]}\n",
            "filters[1].keep[0]: no column 'user_id'; columns here: id, country, score",
        ),
        ("filters:\n  - {type: add_columns, columns: [{name: country, value: FR}]}\n", "filters[0].columns[0].name: column 'country' already exists"),
        ("filters:\n  - {type: keep_columns, keep: []}\n", "filters[0]: no column would be left"),
        ("filters:\n  - {type: remove_columns, remove: [user_id, country, score]}\n", "filters[0]: no column would be left"),
        ("filters:\n  - {type: validate, columns: [{name: user_id, regex: '[a-'}]}\n", "filters[0].columns[0].regex: invalid regular expression"),
        ("filters: {type: rename}\n", "filters: expected a list of filters"),
    ],
)
def test_filter_errors_name_the_filter_and_the_column(tmp_path: Path, filters: str, expected: str) -> None:
    path = write(tmp_path, "c.yml", config_text(filters=filters))

    stderr = config_error(path)

    assert stderr.startswith(f"error: {path}: {expected}"), stderr


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("{name: seg, type: long, value: abc}", "filters[0].columns[0].value: 'abc' is not a valid long"),
        (f"{{name: seg, env: {UNSET}}}", f"filters[0].columns[0].env: environment variable {UNSET} is not set"),
        ("{name: seg}", "filters[0].columns[0]: column 'seg': set exactly one of 'value' or 'env'"),
        ("{name: seg, value: a, env: HOME}", "filters[0].columns[0]: column 'seg': set exactly one of 'value' or 'env'"),
    ],
)
def test_add_columns_errors(tmp_path: Path, column: str, expected: str) -> None:
    path = write(tmp_path, "c.yml", config_text(filters=f"filters:\n  - {{type: add_columns, columns: [{column}]}}\n"))

    stderr = config_error(path)

    assert stderr == f"error: {path}: {expected}\n"


KAFKA_OUT = "out:\n  type: kafka\n  brokers: ['localhost:9092']\n  topic: audience\n  key_column_name: {key}\n"


def test_kafka_key_column_name_must_be_a_column(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text(out=KAFKA_OUT.format(key="userid")))

    stderr = config_error(path)

    assert stderr == (
        f"error: {path}: out.key_column_name: no column 'userid' (did you mean 'user_id'?); "
        "columns here: user_id, country, score\n"
    )


def test_kafka_key_column_removed_by_a_filter_is_not_a_column(tmp_path: Path) -> None:
    filters = "filters:\n  - {type: remove_columns, remove: [user_id]}\n"
    path = write(tmp_path, "c.yml", config_text(filters=filters, out=KAFKA_OUT.format(key="user_id")))

    stderr = config_error(path)

    assert f"error: {path}: out.key_column_name: no column 'user_id'; columns here: country, score" in stderr


def test_kafka_key_column_present_validates(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", config_text(out=KAFKA_OUT.format(key="user_id")))

    result = invoke("validate", path)

    assert result.exit_code == 0, result.stderr


def test_kafka_ignore_columns_must_be_columns(tmp_path: Path) -> None:
    out = KAFKA_OUT.format(key="user_id") + "  ignore_columns: [score, scores]\n"
    path = write(tmp_path, "c.yml", config_text(out=out))

    stderr = config_error(path)

    assert f"error: {path}: out.ignore_columns[1]: no column 'scores' (did you mean 'score'?)" in stderr


def test_error_in_a_liquid_config_names_the_liquid_file(tmp_path: Path) -> None:
    text = config_text().replace("type: double}", "type: {{ var.SCORE_TYPE }}}")
    path = write(tmp_path, "c.yml.liquid", text)

    stderr = config_error(path, "--var", "SCORE_TYPE=float")

    assert stderr.startswith(f"error: {path}: in.parser.columns[2].type: expected one of")


# ---------------------------------------------------------------- render masks secrets


SECRET_CONFIG = """\
out:
  type: kafka
  brokers: ["{{ env.KAFKA_BOOTSTRAP }}"]
  topic: audience
  other_producer_configs:
    security.protocol: SASL_SSL
    sasl.username: alice
    sasl.password: {password}
"""


def test_render_masks_a_value_under_a_secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")
    path = write(tmp_path, "c.yml.liquid", SECRET_CONFIG.replace("{password}", "hunter2-very-secret"))

    result = invoke("render", path)

    assert result.exit_code == 0, result.stderr
    assert "hunter2-very-secret" not in result.stdout
    assert f'    sasl.password: "{MASK}"\n' in result.stdout  # quoted: the output stays valid YAML
    assert "sasl.username: alice" in result.stdout  # not a secret
    assert 'brokers: ["broker:9092"]' in result.stdout
    assert parse_yaml(result.stdout, "masked")["out"]["other_producer_configs"]["sasl.password"] == MASK


@pytest.mark.parametrize(
    "written",
    ["'it''s-a-secret'", '"quote\\"d-secret"', "0012345670", "|\n      multi-line\n      secret-text"],
    ids=["single-quoted", "double-quoted-escape", "octal-looking", "block-scalar"],
)
def test_render_masks_secrets_written_differently_from_their_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")
    path = write(tmp_path, "c.yml.liquid", SECRET_CONFIG.replace("{password}", written) + "exec: {max_errors: 0}\n")

    result = invoke("render", path)

    assert result.exit_code == 0, result.stderr
    for fragment in ("secret", "12345", "multi-line"):
        assert fragment not in result.stdout
    data = parse_yaml(result.stdout, "masked")
    assert data["out"]["other_producer_configs"]["sasl.password"] == MASK
    assert data["exec"] == {"max_errors": 0}  # the rest of the text is intact


def test_render_masks_a_secret_env_var_wherever_it_is_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cr3t-from-env")
    monkeypatch.setenv("PIPE_TEST_VALUE", "visible-value")
    path = write(
        tmp_path,
        "c.yml.liquid",
        textwrap.dedent(
            """\
        # password is {{ env.KAFKA_SASL_PASSWORD }}
        out:
          other_producer_configs:
            sasl.jaas.config: 'PlainLoginModule required username="u" password="{{ env.KAFKA_SASL_PASSWORD }}";'
          description: "uses {{ env.KAFKA_SASL_PASSWORD }} and {{ env.PIPE_TEST_VALUE }}"
        """
        ),
    )

    result = invoke("render", path)

    assert result.exit_code == 0, result.stderr
    assert "s3cr3t-from-env" not in result.stdout
    assert f"# password is {MASK}" in result.stdout
    assert f'description: "uses {MASK} and visible-value"' in result.stdout


def test_render_masks_a_secret_passed_with_var(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", 'auth: "Bearer {{ var.API_TOKEN }}"\nname: "{{ var.NAME }}"\n')

    result = invoke("render", path, "--var", "API_TOKEN=tok-123456", "--var", "NAME=plain-name")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f'auth: "Bearer {MASK}"\nname: "plain-name"\n'


def test_render_keeps_anchor_of_a_masked_value(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", "password: &pw long-secret-value\ncopy: *pw\n")

    result = invoke("render", path)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f'password: &pw "{MASK}"\ncopy: *pw\n'


def test_render_reports_template_errors_like_validate(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml.liquid", f'a: "{{{{ env.{UNSET} }}}}"\n')

    result = invoke("render", path)

    assert result.exit_code == EXIT_CONFIG
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: line 1: undefined template variable: env.{UNSET}")


# ---------------------------------------------------------------- registry


def test_registry_refuses_a_second_registration_under_the_same_name() -> None:
    before = registry.load("filter", "rename", "test")

    with pytest.raises(ValueError, match="a filter plugin named 'rename' is already registered"):
        registry.register("filter", "rename", "somewhere.else:Other")

    assert registry.load("filter", "rename", "test") is before  # the first registration stands


def test_registry_registers_a_new_name_once() -> None:
    name = "pipelines_test_only"
    try:
        registry.register("filter", name, "pipelines.plugins.column_filters:RenameFilter")
        assert name in registry.names("filter")
        assert registry.load("filter", name, "test").__name__ == "RenameFilter"
        with pytest.raises(ValueError, match="already registered"):
            registry.register("filter", name, "pipelines.plugins.column_filters:KeepColumnsFilter")
    finally:
        registry._PLUGINS.pop(("filter", name), None)
    assert name not in registry.names("filter")


def test_registry_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown plugin kind 'sink'"):
        registry.register("sink", "x", "a:B")


def test_registry_plugin_that_cannot_be_imported_is_a_config_error() -> None:
    name = "pipelines_test_broken"
    try:
        registry.register("out", name, "pipelines.no_such_module:Out")
        with pytest.raises(ConfigError, match=f"the out plugin '{name}' cannot be loaded"):
            registry.load("out", name, "c.yml: out.type")
    finally:
        registry._PLUGINS.pop(("out", name), None)


def test_render_shows_the_rendered_text_when_its_yaml_is_invalid(tmp_path: Path) -> None:
    config = tmp_path / "broken.yml.liquid"
    config.write_text("in: {type: file\n  x: {{ var.where }}\n")

    result = CliRunner().invoke(cli, ["render", str(config), "--var", "where=here"])

    assert result.exit_code == 2
    assert result.stdout == "in: {type: file\n  x: here\n"
    assert result.stderr.startswith(f"error: {config}: invalid YAML at line 2")


def test_params_from_the_environment_are_variables_and_var_overrides_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "p.yml.liquid"
    config.write_text("in: {{ var.A }}-{{ env.B }}-{{ var.C }}\n")
    monkeypatch.setenv("PIPELINES_PARAMS", '{"A": "from-params", "B": 7, "C": true}')

    result = CliRunner().invoke(cli, ["render", str(config), "--var", "A=from-var"])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "in: from-var-7-true\n"


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '{"A": {"nested": 1}}'])
def test_bad_params_in_the_environment_are_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "p.yml"
    config.write_text("in: {}\n")
    monkeypatch.setenv("PIPELINES_PARAMS", text)

    result = CliRunner().invoke(cli, ["validate", str(config)])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: $PIPELINES_PARAMS: ")


# ---------------------------------------------------------------- exec defaults from the deployment


@pytest.mark.parametrize(
    ("exec_", "env", "expected"),
    [
        ("", {}, ("pipelines-work", "pipelines-errors/")),  # no config value, no deployment: the local defaults
        ("", {"PIPELINES_WORK_DIR": "s3://b/_jobs", "PIPELINES_ERROR_OUTPUT": "s3://b/_errors/"}, ("s3://b/_jobs", "s3://b/_errors/")),
        ("", {"PIPELINES_WORK_DIR": "  ", "PIPELINES_ERROR_OUTPUT": ""}, ("pipelines-work", "pipelines-errors/")),  # blank: unset
        ("exec:\n  max_threads: 2\n", {"PIPELINES_WORK_DIR": "s3://b/_jobs"}, ("s3://b/_jobs", "pipelines-errors/")),
        (
            "exec:\n  work_dir: s3://mine/work\n  error_output: s3://mine/bad/\n",
            {"PIPELINES_WORK_DIR": "s3://b/_jobs", "PIPELINES_ERROR_OUTPUT": "s3://b/_errors/"},
            ("s3://mine/work", "s3://mine/bad/"),  # the config wins
        ),
        ("exec:\n  error_output: bad-rows/\n", {"PIPELINES_WORK_DIR": "s3://b/_jobs", "PIPELINES_ERROR_OUTPUT": "s3://b/_errors/"}, ("s3://b/_jobs", "bad-rows/")),
    ],
)
def test_work_dir_and_error_output_default_to_the_deployments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exec_: str, env: dict[str, str], expected: tuple[str, str]
) -> None:
    for name in ("PIPELINES_WORK_DIR", "PIPELINES_ERROR_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    job = load_job(write(tmp_path, "c.yml", config_text(exec_=exec_)))
    assert (job.exec.work_dir, job.exec.error_output) == expected
    assert job.exec.error_policy.location == expected[1]


def test_the_defaults_are_read_when_the_config_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not when the module is imported: the Lambda and the shard tasks load configs with the environment they have."""
    from pipelines.engine.config import ExecSettings
    from pipelines.engine.run import default_plan_uri

    path = write(tmp_path, "c.yml", config_text())
    monkeypatch.setenv("PIPELINES_WORK_DIR", "s3://first/_jobs")
    first = load_job(path)
    monkeypatch.setenv("PIPELINES_WORK_DIR", "s3://second/_jobs")
    assert (first.exec.work_dir, load_job(path).exec.work_dir, ExecSettings().work_dir) == ("s3://first/_jobs", "s3://second/_jobs", "s3://second/_jobs")
    assert default_plan_uri(first, "job-1") == "s3://first/_jobs/job-1/plan.json"
