"""File and object outputs against the real moto server: formatters, encoders, rotation, multipart
uploads invisible until the shard commits, abort, a killed attempt's leftovers, the manifest, bounded
memory and secrets; driven through the OutputPlugin API and through `pipelines run`.

Objects are named {path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{ext} (pipelines.plugins.files).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard
from conftest import run_cli, summary_of

from pipelines.engine.config import Job, build_job
from pipelines.engine.error_output import ErrorPolicy, ErrorSink
from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.engine.manifest import Manifest, read_manifest, verify
from pipelines.plugins.files import MIB, FileWritingOutput, LocalFileStore, RotatingFileWriter, file_names
from pipelines.engine.spi import FormatterPlugin, JobTotals
from pipelines.plugins.csv_formatter import CsvFormatter, CsvFormatterSettings
from pipelines.engine.decoding import detect
from pipelines.engine.records import Batch, Column, Schema, Source
from pipelines.engine.settings import SettingsBuilder

ID_NAME = [{"name": "id", "type": "long"}, {"name": "name"}]
TYPED = [
    {"name": "id", "type": "long"}, {"name": "name"}, {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"}, {"name": "at", "type": "timestamp"}, {"name": "extra", "type": "json"},
]


# ---------------------------------------------------------------- helpers


def make_job(tmp_path: Path, out: dict[str, Any], columns: list[dict[str, str]] | None = None) -> Job:
    data = {
        "in": {"type": "file", "path_prefix": f"{tmp_path}/in/", "parser": {"type": "csv", "columns": columns or ID_NAME}},
        "out": out,
        "exec": {"work_dir": str(tmp_path / "work")},
    }
    return build_job(data, tmp_path / "job.yml")


def s3_out(bucket: str, **options: Any) -> dict[str, Any]:
    return {"type": "s3", "bucket": bucket, "path_prefix": "exports/", **options}


def errors_of(tmp_path: Path) -> ErrorSink:
    return ErrorSink(ErrorPolicy(max_errors=0), str(tmp_path / "errors.jsonl"))


def batches(rows: list[list[Any]], size: int) -> list[Batch]:
    return [Batch(rows[i : i + size], list(range(i, i + size)), "test") for i in range(0, len(rows), size)]


def write_shard(job: Job, tmp_path: Path, rows: list[list[Any]], job_id: str = "job", shard: int = 0, batch: int = 1000,
                commit: bool = True) -> list[dict[str, Any]]:
    """One shard through the OutputPlugin API: open, write, flush, commit (or leave it uncommitted)."""
    output = job.output
    output.open(job_id, shard)
    for b in batches(rows, batch):
        output.write(b, errors_of(tmp_path))
    result = output.flush()
    assert result.rows_written == len(rows)
    if commit:
        output.commit("{}")
        output.close()
    assert result.files is not None
    return result.files


def id_rows(n: int, start: int = 0) -> list[list[Any]]:
    return [[i, f"name-{i}"] for i in range(start, start + n)]


def keys(s3, bucket: str, prefix: str = "") -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def uploads(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []))


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def decoded(data: bytes) -> bytes:
    return detect(io.BytesIO(data), Source("test", len(data))).read()


def jsonl_rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in decoded(data).splitlines()]


def totals_of(job_id: str, files: list[list[dict[str, Any]]]) -> JobTotals:
    flat = [f for shard in files for f in shard]
    return JobTotals(job_id, len(files), sum(f["rows"] for f in flat), None, flat)


# ---------------------------------------------------------------- CSV formatter (no S3 needed)

TRICKY = [
    "plain", "with,comma", 'with "quotes"', "line\nbreak", "carriage\rreturn", "crlf\r\nend", "", " spaced ",
    "tab\there", "back\\slash", "ünïcödé ✓", '"', ",", "\n",
]


def csv_formatter(columns: list[dict[str, str]], **options: Any) -> CsvFormatter:
    settings = SettingsBuilder("test").build(CsvFormatterSettings, options, "out.formatter")
    formatter = CsvFormatter(settings, "out.formatter")
    formatter.bind(Schema(tuple(Column(c["name"], c.get("type", "string")) for c in columns)))
    return formatter


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"quote_policy": "ALL"},
        {"newline": "CRLF"},
        {"delimiter": "\t", "quote": "'"},
        {"escape": "\\"},
        {"quote_policy": "ALL", "escape": "\\", "newline": "CR"},
        {"quote_policy": "NONE"},
        {"quote_policy": "NONE", "escape": "^", "delimiter": "|"},
    ],
    ids=["minimal", "all", "crlf", "tab-single-quote", "escape", "all-escape-cr", "none", "none-caret-pipe"],
)
def test_csv_quoting_round_trips_through_pythons_csv_module(options: dict[str, Any]) -> None:
    columns = [{"name": "a"}, {"name": "b"}]
    rows = [[value, TRICKY[(i + 3) % len(TRICKY)]] for i, value in enumerate(TRICKY)]
    formatter = csv_formatter(columns, **options)

    data = formatter.begin() + formatter.rows(rows[:5]) + formatter.rows(rows[5:]) + formatter.end()

    settings = formatter.settings
    quoting = csv.QUOTE_NONE if settings.quote_policy == "NONE" else csv.QUOTE_MINIMAL
    text = io.StringIO(data.decode(), newline="")
    read = list(csv.reader(text, quoting=quoting, **settings.dialect()))
    assert read == [["a", "b"], *rows]


def test_csv_minimal_quotes_only_what_needs_it_and_keeps_null_apart_from_empty() -> None:
    formatter = csv_formatter([{"name": "a"}, {"name": "b"}, {"name": "n", "type": "long"}])
    data = formatter.rows([["x", "y,z", 1], ["", None, 2], [None, 'q"q', None], ["a\nb", "c", 3]])
    assert data == b'x,"y,z",1\n"",,2\n,"q""q",\n"a\nb",c,3\n'


def test_csv_all_quotes_every_value_but_nulls_and_null_string() -> None:
    formatter = csv_formatter([{"name": "a"}, {"name": "n", "type": "long"}], quote_policy="ALL", null_string="NULL")
    assert formatter.begin() == b'"a","n"\n'
    assert formatter.rows([["x", 1], [None, None], ["NULL", 2.5]]) == b'"x","1"\nNULL,NULL\n"NULL","2.5"\n'


def test_csv_null_string_under_minimal_quotes_an_equal_string() -> None:
    formatter = csv_formatter([{"name": "a"}, {"name": "b"}], null_string="\\N", header_line=False)
    assert formatter.begin() == b""
    assert formatter.rows([[None, "\\N"], ["", "x"]]) == b'\\N,"\\N"\n,x\n'


def test_csv_none_escapes_instead_of_quoting() -> None:
    formatter = csv_formatter([{"name": "a"}, {"name": "b"}], quote_policy="NONE", header_line=False)
    assert formatter.rows([['say "hi"', "a,b"], ["line\nbreak", None]]) == b'say "hi",a\\,b\nline\\\nbreak,\n'


def test_csv_values_timestamps_booleans_json() -> None:
    formatter = csv_formatter(TYPED)
    at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    data = formatter.rows([[1, "a", 0.5, True, at, {"k": [1, "x"]}], [2, "b", None, False, None, None]])
    assert data == b'1,a,0.5,true,2024-01-02T03:04:05+00:00,"{""k"":[1,""x""]}"\n2,b,,false,,\n'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": ",,"}, "delimiter must be one character"),
        ({"quote_policy": "SOME"}, "expected one of MINIMAL, ALL, NONE"),
        ({"newline": "\n"}, "expected one of LF, CRLF, CR"),
        ({"delimiter": '"'}, "cannot also be the quote"),
        ({"null_string": "a,b"}, "null_string cannot hold"),
    ],
)
def test_csv_formatter_settings_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        csv_formatter([{"name": "a"}], **options)


def test_csv_round_trips_through_our_csv_parser(tmp_path: Path) -> None:
    from pipelines.plugins.csv_parser import CsvParser, CsvParserSettings

    columns = [{"name": "a"}, {"name": "b"}]
    rows = [[value, f"#{i}"] for i, value in enumerate(TRICKY)]
    formatter = csv_formatter(columns)
    data = formatter.begin() + formatter.rows(rows)
    settings = SettingsBuilder("test").build(CsvParserSettings, {"columns": columns, "skip_header_lines": 1}, "in.parser")
    parser = CsvParser(settings, "in.parser")
    parsed = [r for batch, _ in parser.batches(io.BytesIO(data), Source("x.csv", len(data)), errors_of(tmp_path), 100) for r in batch.rows]
    assert parsed == rows


# ---------------------------------------------------------------- S3: formats and encoders


@pytest.mark.parametrize(
    ("encoders", "ext"),
    [([], "jsonl"), ([{"type": "gzip"}], "jsonl.gz"), ([{"type": "gzip", "level": 0}], "jsonl.gz"),
     ([{"type": "gzip", "level": 9}], "jsonl.gz"), ([{"type": "zstd"}], "jsonl.zst"), ([{"type": "zstd", "level": 19}], "jsonl.zst")],
)
def test_jsonl_with_each_encoder_reads_back(tmp_path, s3, bucket, encoders, ext) -> None:
    job = make_job(tmp_path, s3_out(bucket, encoders=encoders))
    rows = id_rows(5000)

    files = write_shard(job, tmp_path, rows)

    key = f"exports/job/part-00000-00000.{ext}"
    assert [f["uri"] for f in files] == [f"s3://{bucket}/{key}"]
    data = body(s3, bucket, key)
    assert files[0]["bytes"] == len(data) and files[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert files[0]["rows"] == 5000
    assert jsonl_rows(data) == [{"id": i, "name": n} for i, n in rows]
    if ext.endswith("gz"):
        assert gzip.decompress(data) == decoded(data)
    if ext.endswith("zst"):
        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == decoded(data)


def test_csv_gzip_object_round_trips_with_tricky_values(tmp_path, s3, bucket) -> None:
    out = s3_out(bucket, formatter={"type": "csv", "newline": "CRLF"}, encoders=[{"type": "gzip"}], file_ext=".csv")
    job = make_job(tmp_path, out, [{"name": "a"}, {"name": "b"}])
    rows = [[v, w] for v in TRICKY for w in TRICKY]

    write_shard(job, tmp_path, rows, batch=7)

    data = gzip.decompress(body(s3, bucket, "exports/job/part-00000-00000.csv.gz"))
    assert list(csv.reader(io.StringIO(data.decode(), newline=""))) == [["a", "b"], *rows]


def test_names_are_deterministic_and_a_rerun_overwrites_them(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, encoders=[{"type": "gzip"}], max_rows_per_file=300))
    first = write_shard(job, tmp_path, id_rows(700), shard=3)
    again = write_shard(job, tmp_path, id_rows(700), shard=3)

    assert first == again  # same names, same bytes (gzip carries no time)
    assert sorted(keys(s3, bucket)) == [f"exports/job/part-00003-0000{i}.jsonl.gz" for i in range(3)]


# ---------------------------------------------------------------- rotation


def test_rotation_by_rows_splits_batches_exactly(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=1000, formatter={"type": "csv"}))
    rows = id_rows(3500)

    files = write_shard(job, tmp_path, rows, batch=700)

    assert [f["rows"] for f in files] == [1000, 1000, 1000, 500]
    assert [f["uri"].rsplit("/", 1)[1] for f in files] == [f"part-00000-0000{i}.csv" for i in range(4)]
    read = []
    for f in files:
        lines = list(csv.reader(io.StringIO(body(s3, bucket, f["uri"].split("/", 3)[3]).decode())))
        assert lines[0] == ["id", "name"]  # every file has its header
        read += lines[1:]
    assert read == [[str(i), n] for i, n in rows]


@pytest.mark.parametrize("batch", [500, 300, 1000, 7])
def test_no_empty_last_file_when_rows_fill_the_files_exactly(tmp_path, s3, bucket, batch) -> None:
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=500, formatter={"type": "csv"}, encoders=[{"type": "gzip"}]))
    files = write_shard(job, tmp_path, id_rows(1000), batch=batch)
    assert [f["rows"] for f in files] == [500, 500]
    assert len(keys(s3, bucket)) == 2 and uploads(s3, bucket) == []


@pytest.mark.parametrize("encoders", [[], [{"type": "gzip"}], [{"type": "zstd"}]])
def test_rotation_by_stored_bytes(tmp_path, s3, bucket, encoders) -> None:
    limit = 200_000
    job = make_job(tmp_path, s3_out(bucket, max_bytes_per_file=limit, encoders=encoders))
    rows = [[i, f"name-{i}-{hashlib.sha256(str(i).encode()).hexdigest()}"] for i in range(60_000)]

    files = write_shard(job, tmp_path, rows, batch=10_000)

    assert len(files) > 2
    stored = keys(s3, bucket)
    for f in files:
        assert stored[f["uri"].split("/", 3)[3]] == f["bytes"]
    for f in files[:-1]:  # each file ends at the first check past the limit: one small chunk past it at most
        assert limit <= f["bytes"] <= limit + 300_000, [f["bytes"] for f in files]
    assert [r for f in files for r in jsonl_rows(body(s3, bucket, f["uri"].split("/", 3)[3]))] == [
        {"id": i, "name": n} for i, n in rows
    ]


# ---------------------------------------------------------------- multipart uploads, commit and abort


def test_multipart_parts_stream_out_and_stay_invisible_until_commit(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, part_size=5 * MIB), [{"name": "id", "type": "long"}, {"name": "pad"}])
    pad = "x" * 1000
    rows = [[i, pad] for i in range(13_000)]  # about 13 MB of JSON lines: 2 full parts and a last one
    output = job.output
    output.open("job", 0)
    for b in batches(rows, 1000):
        output.write(b, errors_of(tmp_path))

    key = "exports/job/part-00000-00000.jsonl"
    (upload,) = s3.list_multipart_uploads(Bucket=bucket, Prefix="exports/")["Uploads"]
    assert upload["Key"] == key
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])["Parts"]
    assert [p["Size"] for p in parts] == [5 * MIB, 5 * MIB]  # sent while writing, not held in memory
    result = output.flush()
    assert keys(s3, bucket) == {}  # flushed, still invisible

    output.commit()
    output.close()

    assert keys(s3, bucket) == {key: result.files[0]["bytes"]}
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-3")
    assert uploads(s3, bucket) == []
    assert len(jsonl_rows(body(s3, bucket, key))) == 13_000


def test_every_file_of_a_shard_stays_invisible_until_the_shard_commits(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=100))
    files = write_shard(job, tmp_path, id_rows(450), commit=False)

    assert len(files) == 5
    assert keys(s3, bucket) == {}
    assert len(uploads(s3, bucket)) == 5

    job.output.commit()
    assert sorted(keys(s3, bucket)) == sorted(f["uri"].split("/", 3)[3] for f in files)
    assert uploads(s3, bucket) == []


def test_abort_leaves_no_object_and_no_incomplete_upload(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=100))
    output = job.output
    output.open("job", 0)
    output.write(batches(id_rows(350), 350)[0], errors_of(tmp_path))  # 3 files ended, a 4th open

    assert output.abort() == 0
    output.close()

    assert keys(s3, bucket) == {}
    assert uploads(s3, bucket) == []


def test_abort_after_a_commit_failed_halfway_removes_what_it_made_visible(tmp_path, s3, bucket) -> None:
    from botocore.exceptions import ClientError

    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=100))
    files = write_shard(job, tmp_path, id_rows(300), commit=False)
    store = job.output.writer.store
    client = store.client

    class ThirdCompletionFails:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def complete_multipart_upload(self, **kwargs: Any) -> Any:
            if kwargs["Key"].endswith("-00002.jsonl"):
                raise ClientError({"Error": {"Code": "InternalError", "Message": "try again"}}, "CompleteMultipartUpload")
            return client.complete_multipart_upload(**kwargs)

    store.client = ThirdCompletionFails()
    with pytest.raises(TransientRunError, match="InternalError: try again") as failed:
        job.output.commit()
    assert failed.value.where == files[2]["uri"]
    assert len(keys(s3, bucket)) == 2  # the first two were completed
    job.output.abort()

    assert keys(s3, bucket) == {} and uploads(s3, bucket) == []


def test_a_killed_attempts_uploads_are_aborted_at_the_next_open(tmp_path, s3, bucket) -> None:
    killed = make_job(tmp_path, s3_out(bucket, max_rows_per_file=100))
    write_shard(killed, tmp_path, id_rows(250), shard=1, commit=False)  # never commits nor aborts
    other_shard = make_job(tmp_path, s3_out(bucket))
    write_shard(other_shard, tmp_path, id_rows(10), shard=2, commit=False)
    assert len(uploads(s3, bucket)) == 4

    retry = make_job(tmp_path, s3_out(bucket, max_rows_per_file=100))
    retry.output.open("job", 1)

    # the killed attempt's 3 uploads are gone; the retry's first file and the other shard's remain
    assert uploads(s3, bucket) == ["exports/job/part-00001-00000.jsonl", "exports/job/part-00002-00000.jsonl"]
    for b in batches(id_rows(250), 100):
        retry.output.write(b, errors_of(tmp_path))
    retry.output.flush()
    retry.output.commit()
    assert sorted(keys(s3, bucket)) == [f"exports/job/part-00001-0000{i}.jsonl" for i in range(3)]


def read_back(data: bytes, formatter: str) -> list[Any]:
    """The records of a file: CSV lines, JSON lines, or Avro records (encoders undone)."""
    if formatter == "avro":
        import fastavro

        from pipelines.engine.avro.codecs import ensure_zstandard_codec

        ensure_zstandard_codec()
        return list(fastavro.reader(io.BytesIO(data)))
    return decoded(data).decode().splitlines()


@pytest.mark.parametrize(
    ("formatter", "encoders", "records"),
    [({"type": "csv"}, [], ["id,name"]), ({"type": "csv"}, [{"type": "gzip"}], ["id,name"]),
     ({"type": "jsonl"}, [{"type": "gzip"}], []), ({"type": "jsonl"}, [{"type": "zstd"}], []), ({"type": "avro"}, [], [])],
    ids=["csv", "csv-gzip", "jsonl-gzip", "jsonl-zstd", "avro"],
)
def test_a_shard_without_rows_writes_one_valid_file_that_the_manifest_leaves_out(
    tmp_path, s3, bucket, formatter, encoders, records
) -> None:
    """The shard's report lists its one file of 0 rows (a header-only CSV, an empty gzip or zstd stream, a
    zero-record Avro file: each valid, reading back as no row); the manifest lists no file, and finish
    leaves that one where it is (it is not a killed attempt's)."""
    job = make_job(tmp_path, s3_out(bucket, formatter=formatter, encoders=encoders))
    (file,) = write_shard(job, tmp_path, [])
    key = file["uri"].split("/", 3)[3]
    assert file["rows"] == 0 and key.startswith("exports/job/part-00000-00000.")
    assert read_back(body(s3, bucket, key), formatter["type"]) == records

    done = make_job(tmp_path, s3_out(bucket, formatter=formatter, encoders=encoders)).output.finish(totals_of("job", [[file]]))

    assert done == {"manifest": f"s3://{bucket}/exports/job/_manifest.json", "files": 0}
    assert sorted(keys(s3, bucket)) == ["exports/job/_manifest.json", key] and uploads(s3, bucket) == []
    checked = verify(done["manifest"], count_rows=True)
    assert checked.ok and checked.rows_counted == 0 and checked.manifest.files == [], checked.problems
    assert checked.manifest.total_rows == 0
    assert job.output.finish(totals_of("job", [[file]]))["already_finished"]


def test_a_shard_without_rows_among_shards_with_rows_adds_no_file_to_the_manifest(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, formatter={"type": "csv"}, encoders=[{"type": "gzip"}], max_rows_per_file=100))
    shards = [write_shard(job, tmp_path, id_rows(150), shard=0), write_shard(job, tmp_path, [], shard=1),
              write_shard(job, tmp_path, id_rows(100, 150), shard=2)]
    assert [[f["rows"] for f in files] for files in shards] == [[100, 50], [0], [100]]
    assert "exports/job/part-00001-00000.csv.gz" in keys(s3, bucket)

    done = job.output.finish(totals_of("job", shards))

    manifest = read_manifest(done["manifest"])
    assert (manifest.total_rows, manifest.shard_count, done["files"]) == (250, 3, 3)
    assert [f.uri.rsplit("/", 1)[1] for f in manifest.files] == [
        "part-00000-00000.csv.gz", "part-00000-00001.csv.gz", "part-00002-00000.csv.gz"]
    assert set(keys(s3, bucket)) == {f.uri.split("/", 3)[3] for f in manifest.files} | {
        "exports/job/_manifest.json", "exports/job/part-00001-00000.csv.gz"}  # shard 1's header, unlisted
    checked = verify(done["manifest"], count_rows=True)
    assert checked.ok and checked.rows_counted == 250, checked.problems


def test_a_rerun_of_a_shard_that_now_gets_no_rows_leaves_no_stale_file(tmp_path, s3, bucket) -> None:
    """A first attempt committed files but died before its report; the rerun reads no rows (say, the
    records were of another job): finish deletes the first attempt's other files, the manifest lists none."""
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=10))
    write_shard(job, tmp_path, id_rows(25))
    assert len(keys(s3, bucket)) == 3
    files = write_shard(job, tmp_path, [])
    assert [f["rows"] for f in files] == [0]

    done = job.output.finish(totals_of("job", [files]))

    assert sorted(keys(s3, bucket)) == ["exports/job/_manifest.json", "exports/job/part-00000-00000.jsonl"]
    assert body(s3, bucket, "exports/job/part-00000-00000.jsonl") == b"" and read_manifest(done["manifest"]).files == []


# ---------------------------------------------------------------- finish and the manifest


def test_finish_writes_a_manifest_that_matches_the_objects(tmp_path, s3, bucket) -> None:
    out = s3_out(bucket, formatter={"type": "csv"}, encoders=[{"type": "zstd"}], max_rows_per_file=400)
    job = make_job(tmp_path, out)
    shards = [write_shard(job, tmp_path, id_rows(1000, 1000 * i), shard=i) for i in range(3)]

    done = job.output.finish(totals_of("job", shards))

    uri = f"s3://{bucket}/exports/job/_manifest.json"
    assert done == {"manifest": uri, "files": 9}
    manifest = read_manifest(uri)
    assert (manifest.job_id, manifest.total_rows, manifest.shard_count) == ("job", 3000, 3)
    assert (manifest.format, manifest.file_ext) == ("csv", "csv.zst")
    assert manifest.encoders == [{"type": "zstd", "level": 3}]
    assert manifest.formatter["delimiter"] == "," and manifest.formatter["header_line"] is True
    assert manifest.columns == [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]
    stored = keys(s3, bucket)
    assert set(stored) == {f.uri.split("/", 3)[3] for f in manifest.files} | {"exports/job/_manifest.json"}
    for f in manifest.files:
        data = body(s3, bucket, f.uri.split("/", 3)[3])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.bytes, f.sha256)
    checked = verify(uri, count_rows=True)
    assert checked.ok, checked.problems
    assert checked.rows_counted == 3000


def test_finish_is_idempotent(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket))
    totals = totals_of("job", [write_shard(job, tmp_path, id_rows(10))])
    first = job.output.finish(totals)
    etag = s3.head_object(Bucket=bucket, Key="exports/job/_manifest.json")["ETag"]

    again = make_job(tmp_path, s3_out(bucket)).output.finish(totals)

    assert again == {**first, "already_finished": True}
    assert s3.head_object(Bucket=bucket, Key="exports/job/_manifest.json")["ETag"] == etag
    other = JobTotals("job", 1, 10, None, [{**totals.files[0], "sha256": "0" * 64}])
    with pytest.raises(RunError, match="lists other files than its shard reports"):
        job.output.finish(other)


def test_finish_removes_a_killed_attempts_leftovers_and_keeps_what_is_not_ours(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket))
    totals = totals_of("job", [write_shard(job, tmp_path, id_rows(10))])
    s3.put_object(Bucket=bucket, Key="exports/job/part-00000-00001.jsonl", Body=b"{}\n")  # a killed attempt's extra file
    s3.create_multipart_upload(Bucket=bucket, Key="exports/job/part-00001-00000.jsonl")
    s3.put_object(Bucket=bucket, Key="exports/job/notes.txt", Body=b"not ours")
    s3.put_object(Bucket=bucket, Key="exports/job-2/part-00000-00000.jsonl", Body=b"{}\n")  # another job's

    job.output.finish(totals)

    assert sorted(keys(s3, bucket)) == [
        "exports/job-2/part-00000-00000.jsonl", "exports/job/_manifest.json",
        "exports/job/notes.txt", "exports/job/part-00000-00000.jsonl",
    ]
    assert uploads(s3, bucket) == []


def test_finish_leaves_another_jobs_uploads_in_a_folder_below_alone(tmp_path, s3, bucket) -> None:
    """The prefix of job "a" (exports/a/) is also the folder of another job's prefix (exports/a/ + job "b"):
    finishing "a" aborts neither that job's running uploads nor an upload in its folder that is not a part file."""
    job = make_job(tmp_path, s3_out(bucket))
    totals = totals_of("a", [write_shard(job, tmp_path, id_rows(10), job_id="a")])
    inner = make_job(tmp_path, s3_out(bucket, path_prefix="exports/a/"))
    write_shard(inner, tmp_path, id_rows(10), job_id="b", commit=False)  # job "b", still running
    s3.create_multipart_upload(Bucket=bucket, Key="exports/a/notes.txt")  # not ours
    s3.create_multipart_upload(Bucket=bucket, Key="exports/a/part-00003-00000.jsonl")  # a killed attempt's: ours

    job.output.finish(totals)

    assert uploads(s3, bucket) == ["exports/a/b/part-00000-00000.jsonl", "exports/a/notes.txt"]
    inner.output.commit()
    assert sorted(keys(s3, bucket)) == [
        "exports/a/_manifest.json", "exports/a/b/part-00000-00000.jsonl", "exports/a/part-00000-00000.jsonl"]


@pytest.mark.parametrize("prefix", ["exports/ünïcödé ✓/", "exports/a+b %20&c=d/", "exports/日本語_"])
def test_non_ascii_and_special_characters_in_keys(tmp_path, s3, bucket, prefix) -> None:
    job_id = "jöb 1+2"
    job = make_job(tmp_path, s3_out(bucket, path_prefix=prefix, max_rows_per_file=10))
    write_shard(job, tmp_path, id_rows(5), job_id=job_id, commit=False)  # a killed attempt: aborted at the next open
    files = write_shard(job, tmp_path, id_rows(25), job_id=job_id)
    s3.put_object(Bucket=bucket, Key=f"{prefix}{job_id}/part-00000-00007.jsonl", Body=b"{}\n")  # stale

    done = job.output.finish(totals_of(job_id, [files]))

    folder = f"{prefix}{job_id}/"
    assert done == {"manifest": f"s3://{bucket}/{folder}_manifest.json", "files": 3}
    assert sorted(keys(s3, bucket)) == [f"{folder}_manifest.json", *(f"{folder}part-00000-0000{i}.jsonl" for i in range(3))]
    assert uploads(s3, bucket) == []
    checked = verify(done["manifest"], count_rows=True)
    assert checked.ok and checked.rows_counted == 25, checked.problems
    assert checked.manifest.files[0].uri == f"s3://{bucket}/{folder}part-00000-00000.jsonl"
    again = make_job(tmp_path, s3_out(bucket, path_prefix=prefix, max_rows_per_file=10)).output.finish(totals_of(job_id, [files]))
    assert again["already_finished"]


def test_finish_refuses_a_missing_or_changed_file(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, max_rows_per_file=5))
    totals = totals_of("job", [write_shard(job, tmp_path, id_rows(10))])
    s3.put_object(Bucket=bucket, Key="exports/job/part-00000-00001.jsonl", Body=b"changed\n")
    with pytest.raises(RunError, match="its shard report says") as changed:
        job.output.finish(totals)
    assert changed.value.where == f"s3://{bucket}/exports/job/part-00000-00001.jsonl"

    s3.delete_object(Bucket=bucket, Key="exports/job/part-00000-00001.jsonl")
    with pytest.raises(RunError, match="does not exist"):
        job.output.finish(totals)
    assert "exports/job/_manifest.json" not in keys(s3, bucket)


def test_verify_reports_a_file_changed_after_the_manifest(tmp_path, s3, bucket) -> None:
    job = make_job(tmp_path, s3_out(bucket, encoders=[{"type": "gzip"}], max_rows_per_file=5))
    done = job.output.finish(totals_of("job", [write_shard(job, tmp_path, id_rows(10))]))
    key = "exports/job/part-00000-00001.jsonl.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b'{"id":1}\n', mtime=0))
    s3.delete_object(Bucket=bucket, Key="exports/job/part-00000-00000.jsonl.gz")

    checked = verify(done["manifest"], count_rows=True)

    assert not checked.ok
    assert any("part-00000-00000.jsonl.gz: the object does not exist" in p for p in checked.problems), checked.problems
    assert any(key in p and "bytes, the manifest says" in p for p in checked.problems)
    assert any(key in p and "1 rows, the manifest says 5" in p for p in checked.problems)


# ---------------------------------------------------------------- memory, secrets, settings


def test_memory_stays_bounded_while_writing_50_mb(tmp_path, s3, bucket) -> None:
    part = 5 * MIB
    job = make_job(tmp_path, s3_out(bucket, part_size=part, max_bytes_per_file=12 * MIB), [{"name": "id", "type": "long"}, {"name": "pad"}])
    pad = "p" * 2000
    output = job.output
    errors = errors_of(tmp_path)
    output.client.list_buckets()  # botocore loads its service models once per process (~10 MB): not counted
    tracemalloc.start()
    try:
        output.open("job", 0)
        for start in range(0, 26_000, 1000):  # about 52 MB of JSON lines, in 5 files
            output.write(Batch([[i, pad] for i in range(start, start + 1000)], list(range(1000)), "gen"), errors)
        result = output.flush()
        output.commit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        output.close()
    total = sum(f["bytes"] for f in result.files)
    assert total > 50 * 1000 * 1000 and len(result.files) == 5
    assert peak < 2.5 * part, f"peak {peak / MIB:.1f} MiB while writing {total / MIB:.0f} MiB"


def test_secrets_stay_out_of_errors_and_reprs(tmp_path, s3) -> None:
    key_id, secret = "AKIAEXAMPLESECRETID1", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    job = make_job(tmp_path, s3_out("no-such-bucket-here", access_key_id=key_id, secret_access_key=secret))

    with pytest.raises(RunError) as failed:
        job.output.open("job", 0)

    assert failed.value.where == "s3://no-such-bucket-here/exports/job/part-00000-"
    assert "the bucket does not exist" in str(failed.value)
    for text in (str(failed.value), repr(job.output.settings), repr(failed.value)):
        assert key_id not in text and secret not in text


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ({"part_size": 1000}, "part_size must be between 5242880 (5 MiB)"),
        ({"max_rows_per_file": 0}, "max_rows_per_file must be at least 1"),
        ({"access_key_id": "AKIAONLYTHEID"}, "set both access_key_id and secret_access_key"),
        ({"formatter": {"type": "xml"}}, "out.formatter.type: unknown formatter plugin type 'xml'"),
        ({"encoders": [{"type": "bzip2"}]}, "out.encoders[0].type: unknown encoder plugin type 'bzip2'"),
        ({"encoders": [{"type": "gzip", "level": 11}]}, "out.encoders[0]: level must be between 0 and 9"),
        ({"formatter": {"type": "csv", "quote_policy": "some"}}, "out.formatter.quote_policy: expected one of MINIMAL, ALL, NONE"),
    ],
)
def test_s3_output_settings_are_checked(tmp_path, out: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as failed:
        make_job(tmp_path, s3_out("b", **out))
    assert message in str(failed.value)


# ---------------------------------------------------------------- formats with their own compression


class BlockFormatter(FormatterPlugin):
    """Stands in for Avro: compressed blocks of rows, held back until a block fills or the file ends."""

    file_ext = "avro"
    compressed = True

    def bind(self, schema: Schema) -> None:
        self.held: list[bytes] = []

    def begin(self) -> bytes:
        self.held = []
        return b"HEAD"

    def rows(self, rows: list[list[Any]]) -> bytes:
        self.held += [json.dumps(r).encode() + b"\n" for r in rows]
        if len(self.held) < 250:
            return b""
        block, self.held = gzip.compress(b"".join(self.held), mtime=0), []
        return block

    def end(self) -> bytes:
        return gzip.compress(b"".join(self.held), mtime=0) if self.held else b""


def test_writer_takes_a_self_compressing_formatter(tmp_path) -> None:
    formatter = BlockFormatter(None, "out.formatter")
    formatter.bind(Schema((Column("id", "long"),)))
    names = file_names(f"{tmp_path}/", None, formatter, [])
    store = LocalFileStore()
    writer = RotatingFileWriter(store, names, formatter, [], "job", 0, max_rows=600)
    writer.open()
    for start in range(0, 1000, 100):
        writer.write([[i] for i in range(start, start + 100)])
    files = writer.close_files()
    store.commit()

    assert [(Path(f["uri"]).name, f["rows"]) for f in files] == [("part-00000-00000.avro", 600), ("part-00000-00001.avro", 400)]
    for f in files:
        data = Path(f["uri"]).read_bytes()
        assert data.startswith(b"HEAD") and (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])


# ---------------------------------------------------------------- the local file output


def test_file_output_rotates_commits_and_writes_a_manifest(tmp_path) -> None:
    out = {"type": "file", "path_prefix": f"{tmp_path}/out/", "formatter": {"type": "csv"}, "encoders": [{"type": "gzip"}],
           "max_rows_per_file": 40}
    job = make_job(tmp_path, out)
    folder = tmp_path / "out" / "job"
    folder.mkdir(parents=True)
    (folder / ".part-00000-00000.csv.gz.dead.tmp").write_bytes(b"left by a killed attempt")

    output = job.output
    output.open("job", 0)
    assert not (folder / ".part-00000-00000.csv.gz.dead.tmp").exists()
    output.write(batches(id_rows(100), 100)[0], errors_of(tmp_path))
    files = output.flush().files
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == []  # invisible until commit
    output.commit()
    output.close()
    assert sorted(p.name for p in folder.iterdir()) == [f"part-00000-0000{i}.csv.gz" for i in range(3)]

    (folder / "part-00000-00009.csv.gz").write_bytes(b"stale")
    done = output.finish(totals_of("job", [files]))

    assert done == {"manifest": str(folder / "_manifest.json"), "files": 3}
    assert not (folder / "part-00000-00009.csv.gz").exists()
    checked = verify(done["manifest"], count_rows=True)
    assert checked.ok and checked.rows_counted == 100, checked.problems
    assert Manifest.from_json((folder / "_manifest.json").read_text(), "m").files[2].rows == 20


def test_file_output_a_shard_without_rows_is_not_in_the_manifest(tmp_path) -> None:
    job = make_job(tmp_path, {"type": "file", "path_prefix": f"{tmp_path}/out/", "formatter": {"type": "avro"}})
    output = job.output
    output.open("job", 0)
    files = output.flush().files
    output.commit()
    output.close()
    assert [f["rows"] for f in files] == [0] and read_back(Path(files[0]["uri"]).read_bytes(), "avro") == []

    done = output.finish(totals_of("job", [files]))
    assert done == {"manifest": f"{tmp_path}/out/job/_manifest.json", "files": 0}
    assert sorted(p.name for p in (tmp_path / "out" / "job").iterdir()) == ["_manifest.json", "part-00000-00000.avro"]
    checked = verify(done["manifest"], count_rows=True)
    assert checked.ok and checked.manifest.files == [] and checked.manifest.total_rows == 0


def test_file_output_abort_removes_its_files(tmp_path) -> None:
    job = make_job(tmp_path, {"type": "file", "path_prefix": f"{tmp_path}/out/", "max_rows_per_file": 10})
    output = job.output
    output.open("job", 0)
    output.write(batches(id_rows(35), 35)[0], errors_of(tmp_path))
    output.abort()
    output.close()
    assert list((tmp_path / "out").iterdir()) == []


def test_stdout_output_takes_a_formatter_but_no_encoders(tmp_path) -> None:
    assert make_job(tmp_path, {"type": "stdout", "formatter": {"type": "csv"}}).output.formatter is not None
    with pytest.raises(ConfigError, match="the stdout output takes no encoders"):
        make_job(tmp_path, {"type": "stdout", "formatter": {"type": "csv"}, "encoders": [{"type": "gzip"}]})


def test_stdout_output_prints_rows_as_its_formatter_writes_them(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("user_id,score\n" + "".join(f"u{i},{i / 4}\n" for i in range(1000)))
    config = tmp_path / "print.yml"
    config.write_text(yaml.safe_dump({
        "in": {"type": "file", "path_prefix": f"{tmp_path}/in/", "parser": {
            "type": "csv", "skip_header_lines": 1, "columns": [{"name": "user_id"}, {"name": "score", "type": "double"}]}},
        "out": {"type": "stdout", "formatter": {"type": "csv", "delimiter": ";"}},
    }))
    result = run_cli("run", str(config), "--job-id", "printed")
    assert result.returncode == 0, result.stderr
    *printed, summary = result.stdout.splitlines()
    assert printed == ["user_id;score"] + [f"u{i};{i / 4}" for i in range(1000)]
    assert json.loads(summary)["rows_written"] == 1000


def test_outputs_share_the_file_machinery() -> None:
    from pipelines.plugins.file_output import FileOutput
    from pipelines.plugins.s3_output import S3Output

    assert issubclass(S3Output, FileWritingOutput) and issubclass(FileOutput, FileWritingOutput)
    assert S3Output.writes_files and FileOutput.writes_files


# ---------------------------------------------------------------- through the CLI


def test_pipelines_run_exports_local_csv_files_to_s3(tmp_path, s3, bucket) -> None:
    (tmp_path / "in").mkdir()
    expected = []
    for f in range(3):
        lines = ["user_id,score"] + [f"u{f}-{i:05d},{i / 4}" for i in range(2000)]
        (tmp_path / "in" / f"part{f}.csv").write_text("\n".join(lines) + "\n")
        expected += [{"user_id": f"u{f}-{i:05d}", "score": str(i / 4)} for i in range(2000)]
    config = tmp_path / "export.yml"
    config.write_text(yaml.safe_dump({
        "in": {"type": "file", "path_prefix": f"{tmp_path}/in/", "parser": {
            "type": "csv", "skip_header_lines": 1, "columns": [{"name": "user_id"}, {"name": "score", "type": "double"}]}},
        "out": {"type": "s3", "bucket": bucket, "path_prefix": "exports/audience/", "formatter": {"type": "csv"},
                "encoders": [{"type": "gzip"}], "max_rows_per_file": 1500},
        "exec": {"work_dir": str(tmp_path / "work"), "max_threads": 2},
    }))

    result = run_cli("run", str(config), "--job-id", "cli-export", "--shard-size", "40KiB")  # a shard a file

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    manifest_uri = f"s3://{bucket}/exports/audience/cli-export/_manifest.json"
    assert summary["status"] == "succeeded" and summary["rows_written"] == 6000
    assert summary["manifest"] == manifest_uri and summary["shards"] == 3
    manifest = read_manifest(manifest_uri)
    assert summary["files"] == len(manifest.files) == 6  # 2000 rows a shard: 1500 + 500
    checked = verify(manifest_uri, count_rows=True)
    assert checked.ok and checked.rows_counted == 6000, checked.problems
    rows = []
    for f in manifest.files:
        text = gzip.decompress(body(s3, bucket, f.uri.split("/", 3)[3])).decode()
        rows += list(csv.DictReader(io.StringIO(text)))
    assert sorted(rows, key=lambda r: r["user_id"]) == sorted(expected, key=lambda r: r["user_id"])

    stored = keys(s3, bucket, "exports/audience/cli-export/")
    etag = s3.head_object(Bucket=bucket, Key="exports/audience/cli-export/_manifest.json")["ETag"]
    again = run_cli("run", str(config), "--job-id", "cli-export")  # resumes the plan: nothing to redo
    assert again.returncode == 0, again.stderr
    assert summary_of(again)["shards_skipped"] == 3 and summary_of(again)["manifest"] == manifest_uri

    forced = run_cli("run", str(config), "--job-id", "cli-export", "--force")  # every shard again: the same files
    assert forced.returncode == 0, forced.stderr
    assert summary_of(forced)["shards_skipped"] == 0 and summary_of(forced)["files"] == 6
    assert keys(s3, bucket, "exports/audience/cli-export/") == stored, "no file more, none changed in size"
    assert s3.head_object(Bucket=bucket, Key="exports/audience/cli-export/_manifest.json")["ETag"] == etag
    assert verify(manifest_uri, count_rows=True).ok, "the files rewritten are the bytes the manifest lists"
