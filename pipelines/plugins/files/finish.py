"""Finishing a job: its files checked against the shard reports, other part files deleted, the manifest written last."""

from __future__ import annotations

import time
from typing import Any

from pipelines.engine.errors import RunError
from pipelines.engine.manifest import Manifest, ManifestFile
from pipelines.engine.progress import log_event
from pipelines.engine.spi import JobTotals
from pipelines.plugins.files.names import FileNames, check_job_id, is_part_file
from pipelines.plugins.files.store import FileStore


def finish_files(store: FileStore, names: FileNames, totals: JobTotals, description: dict[str, Any]) -> dict[str, Any]:
    """Checks the job's files against the shard reports, deletes part files no report lists, writes the manifest.

    The manifest lists the reported files with rows; a file of 0 rows (what a shard that got no rows
    wrote) is left where it is, unlisted. So an export of no rows (no shard, or shards that got no rows)
    gets a manifest with `total_rows` 0 and an empty `files` list.
    Idempotent: once the manifest exists it is returned as it is.
    """
    job_id = totals.job_id
    manifest_name = names.manifest(job_id)
    manifest_uri = store.uri(manifest_name)
    check_job_id(job_id, manifest_uri)
    files = _files_to_list(totals)
    existing = store.read(manifest_name)
    if existing is not None:
        manifest = Manifest.from_json(existing, manifest_uri)
        if files is not None and [f.to_dict() for f in manifest.files if f.rows] != files:
            raise RunError(
                "the job's manifest lists other files than its shard reports (was a shard rerun after finish?); "
                "delete the manifest to write a new one",
                where=manifest_uri,
            )
        return {"manifest": manifest_uri, "files": len(manifest.files), "already_finished": True}
    if files is None:
        raise RunError("the shard reports list no files (were they written by another output?)", where=manifest_uri)
    folder = names.job_folder(job_id)
    aborted = store.clear_incomplete(folder)
    stale = _check_files(store, folder, files, totals.files or [], totals.total_rows, manifest_uri)
    store.delete(stale)
    manifest = Manifest(
        job_id=job_id,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        total_rows=totals.total_rows,
        shard_count=totals.shard_count,
        format=description["format"],
        formatter=description["formatter"],
        encoders=description["encoders"],
        file_ext=description["file_ext"],
        columns=description["columns"],
        files=[ManifestFile(e["uri"], e["rows"], e["bytes"], e["sha256"]) for e in files],
    )
    store.put(manifest_name, manifest.to_json().encode())
    log_event("manifest_written", manifest=manifest_uri, files=len(manifest.files), deleted=len(stale), aborted=aborted)
    return {"manifest": manifest_uri, "files": len(manifest.files)}


def _files_to_list(totals: JobTotals) -> list[dict[str, Any]] | None:
    """The reported files the manifest lists: those with rows (a shard that got none wrote one file of 0
    rows); [] for a job without shards (an empty snapshot); None when no shard report lists files."""
    if totals.files is None:
        return [] if totals.shard_count == 0 else None
    return [entry for entry in totals.files if entry["rows"] > 0]


def _check_files(
    store: FileStore, folder: str, files: list[dict[str, Any]], reported: list[dict[str, Any]], total_rows: int, manifest_uri: str
) -> list[str]:
    """Every file to list exists with its reported size, and their rows add up to the job's; returns the
    part files in `folder` that no report lists (a killed attempt's), to delete."""
    present = store.listing(folder)
    for entry in files:
        name = store.name(entry["uri"])
        size = present.get(name)
        if size is None:
            raise RunError("a shard report lists this file, but it does not exist", where=entry["uri"])
        if size != entry["bytes"]:
            raise RunError(f"the file has {size} bytes, its shard report says {entry['bytes']}", where=entry["uri"])
    rows = sum(entry["rows"] for entry in files)
    if rows != total_rows:
        raise RunError(f"the files hold {rows} rows, the shards wrote {total_rows}", where=manifest_uri)
    known = {store.name(entry["uri"]) for entry in reported}
    return sorted(n for n in present if n not in known and is_part_file(n, folder))
