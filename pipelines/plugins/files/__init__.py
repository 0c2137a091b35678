"""The files of file and object outputs: rows -> formatter -> encoders -> a store, rotated by size.

Names are deterministic, so a rerun of a shard writes (and overwrites) the same ones:

    {path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{file_ext}[.gz][.zst]
    {path_prefix}{job_id}/_manifest.json        written by `finish`, last

`path_prefix` is a plain prefix, as in Embulk: `exports/audience/` puts the job's folder under
`exports/audience/`, `out/audience_` makes it `out/audience_{job_id}/`. `file_ext` defaults to the
formatter's (csv, jsonl, avro); each encoder adds its own (gz, zst). Every shard writes at least
one file (seq 00000, with only the CSV header if it got no rows), then a new one each time the
current one reaches `max_rows_per_file` rows or `max_bytes_per_file` stored (encoded) bytes.
A file of 0 rows is valid (a header-only CSV, an empty gzip or zstd stream, a zero-record Avro file)
and its shard report lists it, but the manifest lists only files with rows: an export of no rows (an
empty snapshot) has a manifest that lists no files.

A shard's files stay invisible until it commits: on S3 each is a multipart upload left incomplete
(one part buffer per shard, sent as soon as it fills), completed on commit; on a local disk each is a
hidden temporary file, renamed on commit. Abort removes them; the next attempt of a killed shard
removes what it left. `finish` checks the files the shard reports list, deletes other part files of
the job (a killed attempt's), and writes the manifest (pipelines.engine.manifest).

The modules:

    names.py        FileNames, file_names, PART_FILE, is_part_file, check_job_id
    store.py        FileStore, the interface of the places files go (and MIB)
    local_store.py  LocalFileStore: temporary files, fsync, atomic renames
    s3_store.py     S3FileStore: multipart uploads (PartBody, the part sizes)
    writer.py       RotatingFileWriter, WrittenFile: formatter + encoders, rotation by rows or bytes
    output.py       FileWritingOutput, the OutputPlugin base of file_output and s3_output; plain_settings
    finish.py       finish_files: the files checked against the shard reports, the manifest

This package re-exports their names; the plugins import the modules themselves.
"""

from pipelines.plugins.files.finish import finish_files
from pipelines.plugins.files.local_store import LocalFileStore
from pipelines.plugins.files.names import PART_FILE, FileNames, check_job_id, file_names, is_part_file
from pipelines.plugins.files.output import FileWritingOutput, plain_settings
from pipelines.plugins.files.s3_store import DEFAULT_PART_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, PartBody, S3FileStore
from pipelines.plugins.files.store import MIB, FileStore
from pipelines.plugins.files.writer import CHUNK_BYTES, MIN_CHUNK_BYTES, PROBE_ROWS, RotatingFileWriter, WrittenFile

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIB",
    "MIN_CHUNK_BYTES",
    "MIN_PART_SIZE",
    "PART_FILE",
    "PROBE_ROWS",
    "FileNames",
    "FileStore",
    "FileWritingOutput",
    "LocalFileStore",
    "PartBody",
    "RotatingFileWriter",
    "S3FileStore",
    "WrittenFile",
    "check_job_id",
    "file_names",
    "finish_files",
    "is_part_file",
    "plain_settings",
]
