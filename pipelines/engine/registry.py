"""The one registry of plugins: (kind, type name) -> lazily imported class.

Each plugin is a plain class with a `Settings` dataclass; modules are imported
only when a config names them, so `pipelines --help` and a Lambda cold start
stay fast.
"""

from __future__ import annotations

import importlib

from pipelines.engine.errors import ConfigError
from pipelines.engine.settings import did_you_mean

KINDS = ("in", "decoder", "parser", "filter", "out", "formatter", "encoder")

_PLUGINS: dict[tuple[str, str], str] = {}


def register(kind: str, name: str, target: str) -> None:
    """Register `target` ("module:Class") under `name`; a second registration is refused."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}")
    if (kind, name) in _PLUGINS:
        raise ValueError(f"a {kind} plugin named {name!r} is already registered ({_PLUGINS[kind, name]})")
    _PLUGINS[kind, name] = target


def names(kind: str) -> list[str]:
    return sorted(name for k, name in _PLUGINS if k == kind)


def name_of(kind: str, cls: type) -> str | None:
    """The name `cls` is registered under (for manifests and messages), or None."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for (k, name), t in _PLUGINS.items() if k == kind and t == target), None)


def load(kind: str, name: object, where: str) -> type:
    """The class registered as `name`; a ConfigError naming `where` if there is none."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"expected a plugin type name ({', '.join(names(kind))}), got {name!r}", where=where)
    target = _PLUGINS.get((kind, name))
    if target is None:
        known = ", ".join(names(kind))
        raise ConfigError(f"unknown {kind} plugin type '{name}'{did_you_mean(name, names(kind))}; known: {known}", where=where)
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"the {kind} plugin '{name}' cannot be loaded: {exc}", where=where) from exc
    return getattr(module, class_name)


register("in", "file", "pipelines.plugins.file_input:FileInput")
register("in", "s3", "pipelines.plugins.s3_input:S3Input")
register("in", "kafka", "pipelines.plugins.kafka_input:KafkaInput")
register("decoder", "gzip", "pipelines.plugins.decoders:GzipDecoder")
register("decoder", "zstd", "pipelines.plugins.decoders:ZstdDecoder")
register("decoder", "bzip2", "pipelines.plugins.decoders:Bzip2Decoder")
register("decoder", "none", "pipelines.plugins.decoders:NoDecoder")
register("parser", "csv", "pipelines.plugins.csv_parser:CsvParser")
register("parser", "jsonl", "pipelines.plugins.jsonl_parser:JsonlParser")
register("parser", "json", "pipelines.plugins.json_parser:JsonParser")
register("parser", "avro", "pipelines.plugins.avro_parser:AvroParser")
register("filter", "rename", "pipelines.plugins.column_filters:RenameFilter")
register("filter", "remove_columns", "pipelines.plugins.column_filters:RemoveColumnsFilter")
register("filter", "keep_columns", "pipelines.plugins.column_filters:KeepColumnsFilter")
register("filter", "add_columns", "pipelines.plugins.column_filters:AddColumnsFilter")
register("filter", "validate", "pipelines.plugins.validate_filter:ValidateFilter")
register("out", "kafka", "pipelines.plugins.kafka_output:KafkaOutput")
register("out", "file", "pipelines.plugins.file_output:FileOutput")
register("out", "stdout", "pipelines.plugins.stdout_output:StdoutOutput")
register("out", "null", "pipelines.plugins.null_output:NullOutput")
register("out", "s3", "pipelines.plugins.s3_output:S3Output")
register("formatter", "csv", "pipelines.plugins.csv_formatter:CsvFormatter")
register("formatter", "jsonl", "pipelines.plugins.jsonl_formatter:JsonlFormatter")
register("formatter", "avro", "pipelines.plugins.avro_formatter:AvroFormatter")
register("encoder", "gzip", "pipelines.plugins.encoders:GzipEncoder")
register("encoder", "zstd", "pipelines.plugins.encoders:ZstdEncoder")
