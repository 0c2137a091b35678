"""Embulk's csv, json and jsonl parser options and the bzip2 decoder, read in this process (no stack):
the rows and bad records each option gives, the compiled paths stepping aside where an option changes
the reading, and both paths giving the same rows where they may both read. The runs against the
local stack are in tests/test_embulk_input.py."""

from __future__ import annotations

import bz2
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import Errors

from pipelines.engine.config import build_job
from pipelines.engine.errors import ConfigError, DataError
from pipelines.engine.records import Source
from pipelines.native.encoded import RecordLayout

SOURCE = Source("s3://b/k", 1)


def job_of(parser: dict[str, Any], exec_: dict[str, Any] | None = None) -> Any:
    data = {"in": {"type": "file", "path_prefix": "/tmp/never-read/", "parser": parser}, "out": {"type": "null"}}
    if exec_ is not None:
        data["exec"] = exec_
    return build_job(data, Path("embulk.yml"))


def parse(parser: dict[str, Any], data: bytes, batch_rows: int = 3) -> tuple[list[list[Any]], list[tuple[Any, ...]]]:
    """The rows and the bad records (line, reason, raw) of `data` read by the parser."""
    job, errors = job_of(parser), Errors()
    rows = []
    for batch, _ in job.parser.batches(io.BytesIO(data), SOURCE, errors, batch_rows):
        rows += batch.rows
    return rows, errors.seen


def csv(columns: list[Any] | None = None, **options: Any) -> dict[str, Any]:
    return {"type": "csv", "columns": columns or [{"name": "id", "type": "long"}, {"name": "name"}], **options}


# --- the csv parser's tokenizer options


def test_trim_if_not_quoted_trims_unquoted_values_only() -> None:
    rows, bad = parse(csv(trim_if_not_quoted=True), b' 1 ,  ann  \n2,"  bob  "\n 3 ,  "c,d"  \n')
    assert rows == [[1, "ann"], [2, "  bob  "], [3, "c,d"]] and bad == []


def test_without_trim_unquoted_spaces_are_kept() -> None:
    rows, _ = parse(csv(), b"1,  ann  \n")
    assert rows == [[1, "  ann  "]]


def test_comment_line_marker_skips_comment_lines_and_keeps_line_numbers() -> None:
    rows, bad = parse(csv(comment_line_marker="#"), b"# a comment\n1,ann\n#2,gone\nx,bob\n")
    assert rows == [[1, "ann"]]
    assert bad == [(4, "column 'id' (long): cannot parse 'x'", "x,bob")]


def test_newline_cr_reads_lines_ended_by_cr() -> None:
    rows, _ = parse(csv(newline="CR"), b'1,ann\r2,"b\rob"\r3,cy')
    assert rows == [[1, "ann"], [2, "b\nob"], [3, "cy"]]  # a CR inside quotes is read as a line break


def test_line_delimiter_recognized_cr_reads_lines_ended_by_cr() -> None:
    rows, _ = parse(csv(line_delimiter_recognized="CR"), b"1,ann\r2,bob\r")
    assert rows == [[1, "ann"], [2, "bob"]]
    assert job_of(csv(line_delimiter_recognized="CR")).parser.split_mode is None  # ranges start after an LF


def test_cr_lines_read_without_newline_cr_fail_at_a_bound_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.engine import textio

    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(textio, "CHUNK_BYTES", 256)
    with pytest.raises(DataError, match=r"s3://b/k: line 1: no line break \(LF\) in .* set the parser's newline: CR"):
        parse(csv(), b"1,ann\r" * 1000)


@pytest.mark.parametrize("options", [{}, {"escape": "\\"}, {"trim_if_not_quoted": True}])  # compiled, csv module, tokenizer
def test_cr_lines_read_as_a_header_fail_instead_of_skipping_every_row(options: dict[str, Any]) -> None:
    with pytest.raises(DataError, match=r"s3://b/k: line 1: a header line holds a CR before its end: .* newline: CR"):
        parse(csv(skip_header_lines=1, **options), b"id,name\r1,ann\r2,bob\r")
    assert parse(csv(skip_header_lines=1, newline="CR", **options), b"id,name\r1,ann\r2,bob\r")[0] == [[1, "ann"], [2, "bob"]]


def test_newline_joins_the_lines_of_a_quoted_value_in_the_tokenizer() -> None:
    rows, _ = parse(csv(newline="LF", trim_if_not_quoted=True), b'1,"a\r\nb"\n')
    assert rows == [[1, "a\nb"]]
    rows, _ = parse(csv(trim_if_not_quoted=True), b'1,"a\nb"\n')  # Embulk's default newline: CRLF
    assert rows == [[1, "a\r\nb"]]


def test_stray_quotes_are_read_as_text_when_accepted() -> None:
    data = b'1,"say "hi" now"\n'
    rows, bad = parse(csv(quotes_in_quoted_fields="ACCEPT_STRAY_QUOTES_ASSUMING_NO_DELIMITERS_IN_FIELDS"), data)
    assert rows == [[1, 'say "hi" now']] and bad == []
    rows, bad = parse(csv(comment_line_marker="#"), data)  # RFC 4180 only: a bad record
    assert rows == [] and bad[0][0] == 1 and "after the closing quote" in bad[0][1]


def test_max_quoted_size_limit_makes_a_longer_quoted_value_a_bad_record() -> None:
    rows, bad = parse(csv(max_quoted_size_limit=5), b'1,"12345"\n2,"123456"\n3,1234567\n')
    assert rows == [[1, "12345"], [3, "1234567"]]  # an unquoted value is not limited (as in Embulk)
    assert [b[0] for b in bad] == [2] and "max_quoted_size_limit (5" in bad[0][1]


def test_unterminated_quote_in_the_tokenizer_is_a_bad_record() -> None:
    rows, bad = parse(csv(trim_if_not_quoted=True), b'1,ann\n2,"bob\n3,cy\n')
    assert rows == [[1, "ann"]] and bad[0][:2] == (2, "the file ends inside a quoted value")


def test_delimiter_of_several_characters() -> None:
    rows, bad = parse(csv(delimiter="||"), b'1||ann\n2||"b||ob"\n3|| cy\n')
    assert rows == [[1, "ann"], [2, "b||ob"], [3, " cy"]] and bad == []
    assert job_of(csv(delimiter="||")).parser.split_rows is None


def test_escape_without_quoting_in_the_tokenizer() -> None:
    rows, bad = parse(csv(quote="", escape="\\", trim_if_not_quoted=True), b"1, a\\,b \n2,c\n")
    assert rows == [[1, "a,b"], [2, "c"]] and bad == []
    assert parse(csv(quote="", escape="\\"), b"1, a\\,b \n2,c\n")[0] == [[1, " a,b "], [2, "c"]]  # the csv module's reading


def test_header_line_is_skip_header_lines_1() -> None:
    rows, _ = parse(csv(header_line=True), b"id,name\n1,ann\n")
    assert rows == [[1, "ann"]]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_quoted_size_limit": 1 << 30}, "max_quoted_size_limit must be between 1 and 16777216"),
        ({"newline": "CRCR"}, "expected one of CRLF, LF, CR"),
        ({"header_line": True, "skip_header_lines": 2}, "not both"),
        ({"quotes_in_quoted_fields": "ANY"}, "ACCEPT_ONLY_RFC4180_ESCAPED"),
    ],
)
def test_csv_options_checked_when_loaded(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        job_of(csv(**options))


# --- the compiled loop and the fused encoder step aside where an option changes the reading

PLAIN = b'id,name\n1,ann\n2,"b,ob"\n3,"multi\nline"\n\n4,cy\n'


@pytest.mark.parametrize(
    "options",
    [{"trim_if_not_quoted": True}, {"comment_line_marker": "#"}, {"max_quoted_size_limit": 1000},
     {"quotes_in_quoted_fields": "ACCEPT_STRAY_QUOTES_ASSUMING_NO_DELIMITERS_IN_FIELDS"}],
)
def test_tokenizer_and_compiled_loop_give_the_same_rows_where_both_read(options: dict[str, Any]) -> None:
    fast = job_of(csv(skip_header_lines=1))
    assert fast.parser.split_rows is not None  # (the extension is built)
    tokenized = job_of(csv(skip_header_lines=1, newline="LF", **options))
    assert tokenized.parser.split_rows is None
    assert tokenized.parser.fused_encoder(RecordLayout(-1, (), ())) is None
    assert parse(csv(skip_header_lines=1), PLAIN) == parse(csv(skip_header_lines=1, newline="LF", **options), PLAIN)


def test_timestamp_options_keep_the_compiled_loop_but_not_the_fused_encoder() -> None:
    columns = [{"name": "id", "type": "long"}, {"name": "at", "type": "timestamp", "format": "%Y/%m/%d %H:%M"}]
    job = job_of(csv(columns))
    assert job.parser.split_rows is not None and job.parser.fused_encoder(RecordLayout(-1, (), ())) is None
    assert job_of(csv(columns[:1])).parser.fused_encoder(RecordLayout(-1, (), ())) is not None
    zoned = [{"name": "at", "type": "timestamp", "timezone": "Asia/Tokyo"}]
    assert job_of(csv(zoned)).parser.fused_encoder(RecordLayout(-1, (), ())) is None
    assert job_of(csv([{"name": "at", "type": "timestamp"}], default_timezone="+09:00")).parser.fused_encoder(
        RecordLayout(-1, (), ())
    ) is None


# --- timestamps: Embulk's format, timezone, date and the parser's defaults

TOKYO = timezone(timedelta(hours=9))


def test_column_format_timezone_and_date() -> None:
    columns = [
        {"name": "a", "type": "timestamp", "format": "%Y-%m-%d %H:%M:%S.%N %z"},
        {"name": "b", "type": "timestamp", "format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Tokyo"},
        {"name": "c", "type": "timestamp", "format": "%H:%M", "date": "2026-12-06"},
        {"name": "d", "type": "timestamp", "format": "%s"},
    ]
    rows, bad = parse(csv(columns), b"2026-12-06 10:00:00.123456789 +0000,2026-12-06 10:00:00,07:30,1765000000\n")
    assert bad == []
    a, b, c, d = rows[0]
    assert a == datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert b.utcoffset() == timedelta(hours=9) and b.astimezone(timezone.utc).hour == 1
    assert c == datetime(2026, 12, 6, 7, 30, tzinfo=timezone.utc)
    assert d == datetime.fromtimestamp(1765000000, timezone.utc)


def test_default_timestamp_format_and_timezone_apply_to_columns_without_their_own() -> None:
    columns = [{"name": "a", "type": "timestamp"}, {"name": "b", "type": "timestamp", "format": "%Y%m%d", "timezone": "UTC"}]
    parser = csv(columns, default_timestamp_format="%d/%m/%Y %H:%M", default_timezone="+09:00")
    rows, bad = parse(parser, b"06/12/2026 09:00,20261206\n")
    assert bad == []
    assert rows[0][0] == datetime(2026, 12, 6, 9, 0, tzinfo=TOKYO)
    assert rows[0][1] == datetime(2026, 12, 6, tzinfo=timezone.utc)


def test_unknown_timezone_is_refused_when_loaded() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Base'"):
        job_of(csv([{"name": "a", "type": "timestamp", "timezone": "Mars/Base"}]))
    with pytest.raises(ConfigError, match="'timezone' is only for timestamp columns"):
        job_of(csv([{"name": "a", "timezone": "UTC"}]))


# --- stop_on_invalid_record on exec's error threshold


def test_stop_on_invalid_record_sets_the_error_threshold() -> None:
    assert job_of(csv(stop_on_invalid_record=True)).exec.error_policy.error_limit == 0
    lenient = job_of(csv(stop_on_invalid_record=False)).exec.error_policy
    assert lenient.error_limit is None and lenient.max_error_rate == 1.0  # every bad record skipped, and written
    assert job_of(csv(stop_on_invalid_record=False), {"max_errors": 5}).exec.error_policy.error_limit == 5
    assert job_of(csv()).exec.error_policy.error_limit == 0  # absent: exec's threshold alone
    with pytest.raises(ConfigError, match="stop_on_invalid_record: true stops at the first invalid record"):
        job_of(csv(stop_on_invalid_record=True), {"max_errors": 5})


# --- json and jsonl parsers


def test_json_parser_without_columns_gives_one_record_column() -> None:
    job = job_of({"type": "json"})
    assert [(c.name, c.type) for c in job.schema.columns] == [("record", "json")]
    rows, bad = parse({"type": "json"}, b'{"id": 1, "tags": ["a"]}\n[1]\n{"id": 2}\n')
    assert rows == [[{"id": 1, "tags": ["a"]}], [{"id": 2}]]
    assert bad[0][:2] == (2, "expected a JSON object, got list")


@pytest.mark.parametrize("how, name", [("PASSTHROUGH", None), ("UNESCAPE", "a'b"), ("SKIP", "ab")])
def test_json_invalid_string_escapes(how: str, name: str | None) -> None:
    rows, bad = parse({"type": "json", "invalid_string_escapes": how, "columns": [{"name": "name"}]}, b'{"name": "a\\\'b"}\n')
    assert (rows == [[name]]) if name else (rows == [] and "invalid JSON" in bad[0][1])


@pytest.mark.parametrize("option", ["root", "flatten_json_array"])
def test_json_options_that_read_one_whole_value_are_refused(option: str) -> None:
    with pytest.raises(ConfigError, match=f"in.parser.{option}: Embulk's option '{option}' is refused: .*bounded part"):
        job_of({"type": "json", option: "/data" if option == "root" else True})


def test_jsonl_embulk_options() -> None:
    parser = {
        "type": "jsonl", "newline": "CR", "stop_on_invalid_record": False, "default_timezone": "Asia/Tokyo",
        "columns": [{"name": "id", "type": "long"}, {"name": "at", "type": "timestamp", "format": "%Y-%m-%d %H:%M"}],
    }
    rows, bad = parse(parser, b'{"id": 1, "at": "2026-12-06 09:00"}\r{"id": "x"}\r')
    assert rows == [[1, datetime(2026, 12, 6, 9, 0, tzinfo=TOKYO)]] and bad[0][0] == 2
    assert job_of(parser).parser.fused_encoder(RecordLayout(-1, (), ())) is None
    assert job_of(parser).exec.error_policy.max_error_rate == 1.0
    assert job_of(parser).parser.split_mode is None  # byte ranges start after an LF: not for CR lines
    assert job_of({**parser, "newline": "LF"}).parser.split_mode == "lines"


# --- bzip2


def test_bzip2_decoder_streams_several_streams_and_names_a_truncated_object() -> None:
    data = bz2.compress(b"1,ann\n" * 50_000) + bz2.compress(b"2,bob\n")
    parser = csv()
    job = build_job(
        {"in": {"type": "file", "path_prefix": "/tmp/x/", "decoders": [{"type": "bzip2"}], "parser": parser}, "out": {"type": "null"}},
        Path("embulk.yml"),
    )
    stream = job.decoders[0].decode(io.BytesIO(data), SOURCE)
    rows = [row for batch, _ in job.parser.batches(stream, SOURCE, Errors(), 10_000) for row in batch.rows]
    assert len(rows) == 50_001 and rows[-1] == [2, "bob"]
    truncated = job.decoders[0].decode(io.BytesIO(data[: len(data) // 2]), SOURCE)
    with pytest.raises(DataError, match=r"s3://b/k: bzip2 stream is truncated"):
        for _ in job.parser.batches(truncated, SOURCE, Errors(), 10_000):
            pass


def test_bzip2_is_detected_by_its_magic_only() -> None:
    from pipelines.engine.decoding import decoder_for_head
    from pipelines.plugins.decoders import Bzip2Decoder

    assert decoder_for_head(bz2.compress(b"x")[:4]) is Bzip2Decoder
    assert decoder_for_head(b"BZh,") is None  # a CSV that starts with BZh is not bzip2


# --- exec.min_output_tasks


def test_min_output_tasks_is_accepted_with_a_note() -> None:
    from pipelines.engine.notes import job_notes

    job = job_of(csv(), {"min_output_tasks": 4})
    assert any("min_output_tasks is accepted and has no effect" in note for note in job_notes(job))
    assert job_notes(job_of(csv())) == []

