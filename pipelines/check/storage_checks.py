"""Checks of the files a run reads and writes, in S3 or on local disk.

- the input: listed as the run lists it (its first object is enough), then that object opened and
  its first byte read, through the input plugin itself (so its endpoint, credentials and If-Match);
- the outputs, exec.work_dir and exec.error_output: a small probe object written under the prefix
  the run writes to, then deleted (the deployed role may write and delete there).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from typing import Any

from pipelines.check.result import CheckResult, failed, passed, skipped
from pipelines.engine.errors import PipelineError, RunError

PROBE_BODY = b"written and deleted by `pipelines check`\n"


class ByteInputChecks:
    """`input list` then `input read`, for the s3 and file inputs (the read needs what the listing found)."""

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.location = input_location(plugin)
        self.first: Any = None

    def listing(self) -> CheckResult:
        name = "input list"
        try:
            self.first = next(iter(self.plugin.list_sources()))
        except PipelineError as exc:
            return failed(name, str(exc), storage_fix(exc, self.location, "s3:ListBucket on the bucket"))
        return passed(name, f"{self.location} lists; first {self.first.uri} ({self.first.size:,} bytes)")

    def reading(self) -> CheckResult:
        name = "input read"
        if self.first is None:
            return skipped(name, "the listing failed")
        try:
            stream = self.plugin.open(self.first)
            try:
                stream.read(1)
            finally:
                stream.close()
        except PipelineError as exc:
            return failed(name, str(exc), storage_fix(exc, self.first.uri, f"s3:GetObject on {self.location}*"))
        return passed(name, f"{self.first.uri} opens and reads")


def input_location(plugin: Any) -> str:
    s = plugin.settings
    key = getattr(s, "path", None) or s.path_prefix or ""
    return f"s3://{s.bucket}/{key}" if hasattr(s, "bucket") else key


def write_checks(job: Any, output_type: str | None) -> list[Callable[[], CheckResult]]:
    """A probe of each place the run writes files to: the s3 or file output, the work dir, the error output."""
    checks = []
    if output_type in ("s3", "file"):
        s = job.output.settings
        where = f"s3://{s.bucket}/{s.path_prefix}" if output_type == "s3" else s.path_prefix
        client = job.output.client if output_type == "s3" else None
        checks.append(functools.partial(probe, "output write", where, client))
    checks.append(functools.partial(probe, "work dir write", job.exec.work_dir.rstrip("/") + "/", None))
    checks.append(functools.partial(probe, "error output write", error_prefix(job.exec.error_output), None))
    return checks


def error_prefix(location: str) -> str:
    """Where the run's error files go: the folder or S3 prefix of exec.error_output."""
    from pipelines.engine.error_output import error_file_uri

    uri = error_file_uri(location, "probe", 0)
    return uri[: uri.rindex("/") + 1] if "/" in uri else ""


def probe(name: str, prefix: str, client: Any) -> CheckResult:
    """Writes then deletes `prefix`pipelines-check-<random>.probe; `client`: the S3 client (None: the default one)."""
    uri = f"{prefix}pipelines-check-{uuid.uuid4().hex[:12]}.probe"
    try:
        if uri.startswith("s3://"):
            _probe_s3(uri, client)
        else:
            _probe_local(uri)
    except PipelineError as exc:
        return failed(name, str(exc), storage_fix(exc, prefix, f"s3:PutObject and s3:DeleteObject on {prefix}*"))
    return passed(name, f"{prefix} takes a probe object (written and deleted)")


def _probe_s3(uri: str, client: Any) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from pipelines.engine.s3 import s3_client, s3_error

    client = client or s3_client()
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        client.put_object(Bucket=bucket, Key=key, Body=PROBE_BODY)
    except (BotoCoreError, ClientError) as exc:
        raise s3_error(exc, uri) from None
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        error = s3_error(exc, uri)
        raise type(error)(f"written, but cannot delete it: {error.message} (delete it by hand)", where=uri) from None


def _probe_local(path: str) -> None:
    """Writes and deletes the probe file, and removes the folders it had to make (the run makes them too)."""
    folder = os.path.dirname(path) or "."
    made = []
    probe_folder = folder
    while probe_folder and not os.path.isdir(probe_folder):
        made.append(probe_folder)
        probe_folder = os.path.dirname(probe_folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as f:
            f.write(PROBE_BODY)
        os.remove(path)
    except OSError as exc:
        raise RunError(f"cannot write: {exc.strerror or exc}", where=path) from None
    finally:
        for made_folder in made:
            try:
                os.rmdir(made_folder)
            except OSError:
                pass


def storage_fix(exc: PipelineError, where: str, permission: str) -> str:
    """What to do about a failed S3 or file access (the engine's messages, pipelines.engine.s3.s3_error)."""
    message = exc.message
    if "bucket does not exist" in message:
        return f"check the bucket name in {where}, or create the bucket"
    if "access denied" in message:
        return f"allow {permission} to the role that runs the job"
    if "no object matches" in message or "no file matches" in message or "does not exist" in message:
        return f"check the path: nothing is at {where} (path_prefix, path, path_match_pattern)"
    if "is empty" in message:
        return "remove or replace the empty object: a run fails on it"
    if "AWS settings" in message:
        return "set the AWS credentials and region (environment, profile or role)"
    if "cannot reach S3" in message or exc.exit_code == 75:
        return "check the network path to S3, the region, and AWS_ENDPOINT_URL if one is set"
    if "cannot write" in message:
        return f"make {where} writable by the user that runs the job"
    return "see the message"
