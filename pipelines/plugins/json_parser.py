"""`parser: {type: json}`: Embulk's json parser, on JSON lines.

Each line holds one JSON object. Without `columns`, each object becomes one json column named
`record`, as in Embulk; with them, columns are picked by name and typed as the jsonl parser does.
`invalid_string_escapes` (PASSTHROUGH, SKIP, UNESCAPE) mends a line that is not valid JSON only
because of a backslash escape JSON does not have. `root` and `flatten_json_array` are refused: both
read one JSON value that may be the whole object, which bounded memory cannot hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pipelines.engine.columns import ColumnSettings
from pipelines.engine.newlines import Newline
from pipelines.plugins.jsonl_parser import JsonlParser

RECORD_COLUMN = ColumnSettings("record", "json")
ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})|\\(.)', re.DOTALL)
ONE_VALUE = (
    "reads a JSON value that may be the whole object, and a job holds only a bounded part of an object "
    "in memory; write one JSON object per line instead (JSON lines) and pick its fields with columns"
)


@dataclass(frozen=True)
class JsonParserSettings:
    columns: tuple[ColumnSettings, ...] = (RECORD_COLUMN,)
    charset: str = "UTF-8"
    newline: Newline = "CRLF"
    line_delimiter_recognized: Newline | None = None
    stop_on_invalid_record: bool | None = None
    invalid_string_escapes: Literal["PASSTHROUGH", "SKIP", "UNESCAPE"] = "PASSTHROUGH"
    default_timezone: str | None = None
    default_timestamp_format: str | None = None
    default_date: str | None = None

    refused_options: ClassVar[dict[str, str]] = {
        "root": f"is refused: Embulk's json parser {ONE_VALUE}",
        "flatten_json_array": f"is refused: Embulk's json parser {ONE_VALUE}",
    }

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns: declare at least one column (or leave columns out for one json column 'record')")


class JsonParser(JsonlParser):
    Settings = JsonParserSettings

    def __init__(self, settings: JsonParserSettings, where: str) -> None:
        super().__init__(settings, where)
        if settings.columns == (RECORD_COLUMN,):
            self.to_row = lambda record: [record]

    @property
    def compiled_lines(self) -> bool:  # type: ignore[override]
        return self.settings.columns != (RECORD_COLUMN,)

    def repaired(self, line: str) -> str | None:
        how = self.settings.invalid_string_escapes
        if how == "PASSTHROUGH":
            return None
        keep = (lambda m: m.group(2)) if how == "UNESCAPE" else (lambda m: "")
        return ESCAPE.sub(lambda m: m.group(0) if m.group(1) else keep(m), line)
