"""Configs: render `*.yml.liquid` (strict Liquid), parse YAML, validate into plugins.

    job = load_job(Path("configs/send_audience_to_kafka.yml.liquid"), {"S3_BUCKET": "b"})
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.engine import registry
from pipelines.engine.error_output import DEFAULT_LOCATION, ErrorPolicy
from pipelines.engine.errors import ConfigError
from pipelines.engine.spi import DecoderPlugin, FilterPlugin, InputPlugin, OutputPlugin, ParserPlugin
from pipelines.engine.records import Schema
from pipelines.engine.settings import SettingsBuilder, option

TOP_LEVEL_KEYS = ("in", "filters", "out", "exec")
WORK_DIR_ENV = "PIPELINES_WORK_DIR"  # the deployment's default exec.work_dir (Terraform: s3://<bucket>/_jobs)
ERROR_OUTPUT_ENV = "PIPELINES_ERROR_OUTPUT"  # the deployment's default exec.error_output (s3://<bucket>/_errors/)
DEFAULT_WORK_DIR = "pipelines-work"


def default_work_dir() -> str:
    """exec.work_dir when the config gives none: $PIPELINES_WORK_DIR, else ``pipelines-work``."""
    return os.environ.get(WORK_DIR_ENV, "").strip() or DEFAULT_WORK_DIR


def default_error_output() -> str:
    """exec.error_output when the config gives none: $PIPELINES_ERROR_OUTPUT, else ``pipelines-errors/``."""
    return os.environ.get(ERROR_OUTPUT_ENV, "").strip() or DEFAULT_LOCATION


MIN_OUTPUT_TASKS_NOTE = (
    "exec.min_output_tasks is accepted and has no effect: a shard's rows go to the output in one transaction "
    "(exactly-once), never scattered over several output tasks; the plan's shard count (--shard-size) and "
    "exec.max_threads set the parallelism"
)


@dataclass(frozen=True)
class ExecSettings:
    max_threads: int = 1  # shards run at once, each in its own process
    # Where `run` keeps plans, shard reports and summaries (folder or s3:// prefix), and where bad rows go.
    # The config's value wins; without one, the deployment's ($PIPELINES_WORK_DIR, $PIPELINES_ERROR_OUTPUT).
    work_dir: str = option(factory=default_work_dir)
    batch_rows: int = 10_000
    error_output: str = option(factory=default_error_output)
    max_errors: int | None = None
    max_error_rate: float | None = None
    preview_rows: int = option(20)
    min_output_tasks: int | None = None  # Embulk's; accepted with no effect (MIN_OUTPUT_TASKS_NOTE)

    def __post_init__(self) -> None:
        if self.max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        if self.batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        if self.max_errors is not None and self.max_errors < 0:
            raise ValueError("max_errors must be 0 or more")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise ValueError("max_error_rate must be between 0 and 1")
        if self.min_output_tasks is not None and self.min_output_tasks < 1:
            raise ValueError("min_output_tasks must be at least 1")

    @property
    def notes(self) -> list[str]:
        return [MIN_OUTPUT_TASKS_NOTE] if self.min_output_tasks is not None else []

    @property
    def error_policy(self) -> ErrorPolicy:
        return ErrorPolicy(self.error_output, self.max_errors, self.max_error_rate)


@dataclass
class Job:
    """A validated config: plugins built and checked against each other's schemas."""

    path: Path
    input: InputPlugin
    decoders: list[DecoderPlugin] | None  # None: detected from each object's first bytes
    parser: ParserPlugin | None  # None for record inputs (Kafka)
    filters: list[FilterPlugin]
    output: OutputPlugin
    exec: ExecSettings
    schema: Schema  # what reaches the output


PARAMS_ENV = "PIPELINES_PARAMS"


def params_from_env() -> dict[str, str]:
    """Variables given as one JSON object in $PIPELINES_PARAMS (how the workflow passes a job's params
    to a Fargate task); --var values override them."""
    import json

    text = os.environ.get(PARAMS_ENV)
    if not text:
        return {}
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not a JSON object: {exc}", where=f"${PARAMS_ENV}") from None
    return params_from(params, 'expected a JSON object of strings, like {"S3_KEY": "drops/a.csv.gz"}', where=f"${PARAMS_ENV}")


def params_from(value: object, problem: str, where: str | None = None) -> dict[str, str]:
    """A job's params as template variables: ``value`` must be an object whose values are strings,
    numbers or booleans; each becomes a string (booleans lowercased, as JSON spells them). Anything
    else is a ConfigError saying ``problem`` (at ``where``, if given)."""
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float | bool) for v in value.values()):
        raise ConfigError(problem, where=where)
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


def template_variables(cli_vars: Mapping[str, str]) -> dict[str, Any]:
    """`env` is the environment overlaid with --var values; `var` holds the --var values."""
    return {"env": {**os.environ, **cli_vars}, "var": dict(cli_vars)}


def render(path: Path, cli_vars: Mapping[str, str] | None = None) -> str:
    """The config's text: rendered by Liquid (strict) for *.liquid files, as-is otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config: {exc}", where=str(path)) from None
    if path.suffix != ".liquid":
        return text
    from pipelines.engine.templating import render_liquid

    return render_liquid(text, path, template_variables(cli_vars or {}))


@functools.cache
def _unique_key_loader() -> type:
    """A SafeLoader refusing a key given twice in one mapping (YAML would keep the last one silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[tuple[str, str], Any] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    first = seen.setdefault((key_node.tag, key_node.value), key_node)
                    if first is not key_node:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key '{key_node.value}' (first at line {first.start_mark.line + 1})",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def parse_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if at and where.endswith(".liquid"):  # template tags can add or remove lines
            at += " of the rendered config"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{at}: {problem}", where=where) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with in:, out: and optional filters:, exec:", where=where)
    return data


def load_job(path: Path, cli_vars: Mapping[str, str] | None = None) -> Job:
    return build_job(parse_yaml(render(path, cli_vars), str(path)), path)


def _plugin(builder: SettingsBuilder, kind: str, raw: Any, path: str, ignore: tuple[str, ...] = ("type",)) -> Any:
    where = f"{builder.source}: {path}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping with a 'type:', got {raw!r}", where=where)
    if "type" not in raw:
        raise ConfigError(f"missing required option 'type' ({', '.join(registry.names(kind))})", where=where)
    cls = registry.load(kind, raw["type"], f"{where}.type")
    settings = builder.build(cls.Settings, raw, path, ignore=ignore)
    return cls(settings, where)


def _file_plugins(builder: SettingsBuilder, output: OutputPlugin, raw_out: Mapping[str, Any]) -> None:
    """`out.formatter` and `out.encoders` of file and object outputs, from the registry."""
    if not output.writes_files:
        for key in ("encoders",) if output.takes_formatter else ("formatter", "encoders"):
            if key in raw_out:
                raise builder.error(f"out.{key}", f"the {raw_out['type']} output takes no {key}")
        if output.takes_formatter and raw_out.get("formatter") is not None:
            output.formatter = _plugin(builder, "formatter", raw_out["formatter"], "out.formatter")
        return
    output.formatter = _plugin(builder, "formatter", raw_out.get("formatter") or {"type": "jsonl"}, "out.formatter")
    raw_encoders = raw_out.get("encoders") or []
    if not isinstance(raw_encoders, list):
        raise builder.error("out.encoders", "expected a list like [{type: gzip}]")
    output.encoders = [_plugin(builder, "encoder", e, f"out.encoders[{i}]") for i, e in enumerate(raw_encoders)]
    if output.encoders and output.formatter.compressed:
        raise builder.error("out.encoders", f"the {raw_out['formatter']['type']} formatter compresses its own blocks; remove the encoders")


def build_job(data: Mapping[str, Any], path: Path) -> Job:
    from pipelines.engine.settings import did_you_mean

    builder = SettingsBuilder(str(path))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise builder.error(str(key), "unknown top-level key" + did_you_mean(str(key), TOP_LEVEL_KEYS))
    for key in ("in", "out"):
        if key not in data:
            raise builder.error(key, f"missing required section '{key}:'")
    raw_in = data["in"]
    input_plugin = _plugin(builder, "in", raw_in, "in", ignore=("type", "parser", "decoders"))
    parser, decoders = None, None
    if input_plugin.reads_records:
        for key in ("parser", "decoders"):
            if key in raw_in:
                raise builder.error(f"in.{key}", f"the {raw_in['type']} input reads records, not files: it takes no {key}")
    elif "parser" not in raw_in:
        raise builder.error("in.parser", f"missing required option 'parser' ({', '.join(registry.names('parser'))})")
    else:
        parser = _plugin(builder, "parser", raw_in["parser"], "in.parser")
    if "decoders" in raw_in and parser is not None:
        raw_decoders = raw_in["decoders"] or []
        if not isinstance(raw_decoders, list):
            raise builder.error("in.decoders", "expected a list like [{type: gzip}]")
        decoders = [_plugin(builder, "decoder", d, f"in.decoders[{i}]") for i, d in enumerate(raw_decoders)]
    raw_filters = data.get("filters") or []
    if not isinstance(raw_filters, list):
        raise builder.error("filters", "expected a list of filters")
    filters = [_plugin(builder, "filter", f, f"filters[{i}]") for i, f in enumerate(raw_filters)]
    output = _plugin(builder, "out", data["out"], "out", ignore=("type", "formatter", "encoders"))
    _file_plugins(builder, output, data["out"])
    exec_settings = builder.build(ExecSettings, data.get("exec"), "exec", ignore=())
    if parser is not None:
        exec_settings = parser.adjust_exec(exec_settings)

    schema = parser.schema() if parser is not None else input_plugin.schema()
    for f in filters:
        schema = f.bind(schema)
    output.bind(schema)
    return Job(path, input_plugin, decoders, parser, filters, output, exec_settings, schema)
