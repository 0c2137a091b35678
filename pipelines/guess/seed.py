"""The seed: a config holding at least `in` (a file or S3 input) and `out`, rendered and parsed as
`validate` does it. Its input plugin is built from `in`, to list and open the objects to sample."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.engine import registry
from pipelines.engine.config import parse_yaml, render
from pipelines.engine.settings import SettingsBuilder
from pipelines.engine.spi import DecoderPlugin, InputPlugin

GUESSED_PARSERS = ("csv", "jsonl")


@dataclass
class Seed:
    path: Path
    text: str  # as written: a Liquid template for *.liquid
    data: dict[str, Any]  # rendered and parsed
    input: InputPlugin
    decoders: list[DecoderPlugin] | None  # the seed's own; None: detected from the bytes

    @property
    def parser(self) -> dict[str, Any]:
        """The parser options the seed sets (they win over the guess)."""
        return dict(self.data["in"].get("parser") or {})

    @property
    def templated(self) -> bool:
        return self.path.suffix == ".liquid"


def load_seed(path: Path, variables: Mapping[str, str]) -> Seed:
    data = parse_yaml(render(path, variables), str(path))
    text = path.read_text(encoding="utf-8")
    builder = SettingsBuilder(str(path))
    for key in ("in", "out"):
        if key not in data:
            raise builder.error(key, f"missing required section '{key}:' (a seed holds at least in: and out:)")
        _plugin_class(builder, key, data[key], key)
    return Seed(path, text, data, _input(builder, data["in"]), _decoders(builder, data["in"]))


def _plugin_class(builder: SettingsBuilder, kind: str, raw: Any, where: str) -> type:
    if not isinstance(raw, Mapping):
        raise builder.error(where, f"expected a mapping with a 'type:', got {raw!r}")
    if "type" not in raw:
        raise builder.error(f"{where}.type", f"missing required option 'type' ({', '.join(registry.names(kind))})")
    return registry.load(kind, raw["type"], f"{builder.source}: {where}.type")


def _input(builder: SettingsBuilder, raw_in: Mapping[str, Any]) -> InputPlugin:
    cls = _plugin_class(builder, "in", raw_in, "in")
    plugin = cls(builder.build(cls.Settings, raw_in, "in", ignore=("type", "parser", "decoders")), f"{builder.source}: in")
    if plugin.reads_records:
        raise builder.error("in.type", f"guess reads files and S3 objects; the {raw_in['type']} input declares its columns itself")
    parser = raw_in.get("parser")
    if parser is not None:
        if not isinstance(parser, Mapping):
            raise builder.error("in.parser", f"expected a mapping like {{type: csv}}, got {parser!r}")
        if parser.get("type", "csv") not in GUESSED_PARSERS:
            raise builder.error("in.parser.type", f"guess reads CSV, TSV and JSON lines ({', '.join(GUESSED_PARSERS)}); got {parser['type']!r}")
    return plugin


def _decoders(builder: SettingsBuilder, raw_in: Mapping[str, Any]) -> list[DecoderPlugin] | None:
    if "decoders" not in raw_in:
        return None
    raw = raw_in["decoders"] or []
    if not isinstance(raw, list):
        raise builder.error("in.decoders", "expected a list like [{type: gzip}]")
    decoders = []
    for i, item in enumerate(raw):
        cls = _plugin_class(builder, "decoder", item, f"in.decoders[{i}]")
        decoders.append(cls(builder.build(cls.Settings, item, f"in.decoders[{i}]"), f"{builder.source}: in.decoders[{i}]"))
    return decoders
