"""Small files (plans, shard reports, summaries) at a local path or an s3:// URI."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from pipelines.engine.errors import RunError, aws_error_code


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _client() -> Any:
    from pipelines.engine.s3 import s3_client

    return s3_client()


def join(base: str, *names: str) -> str:
    """`base`/names..., for a folder path or an s3:// prefix."""
    return "/".join([base.rstrip("/"), *names])


def parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0] if "/" in uri.removeprefix("s3://") else "."


def read_text(uri: str) -> str | None:
    """The file's text, or None if there is none."""
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = _split(uri)
        try:
            return _client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except ClientError as exc:
            if aws_error_code(exc) in ("NoSuchKey", "404"):
                return None
            from pipelines.engine.s3 import s3_error

            raise s3_error(exc, uri) from None
    try:
        with open(uri, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_text(uri: str, text: str) -> None:
    """Writes the whole file at once (a local file appears complete or not at all)."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split(uri)
        try:
            _client().put_object(Bucket=bucket, Key=key, Body=text.encode())
        except (BotoCoreError, ClientError) as exc:
            from pipelines.engine.s3 import s3_error

            raise s3_error(exc, uri) from None
        return
    folder = os.path.dirname(uri) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, uri)
    except OSError as exc:
        raise RunError(f"cannot write: {exc.strerror or exc}", where=uri) from None


def list_names(folder: str, starting: str = "") -> list[str]:
    """Names of the files directly under a folder or s3:// prefix that start with `starting`."""
    if folder.startswith("s3://"):
        bucket, key = _split(folder.rstrip("/") + "/")
        paginator = _client().get_paginator("list_objects_v2")
        return [
            item["Key"][len(key):]
            for page in paginator.paginate(Bucket=bucket, Prefix=key + starting, Delimiter="/")
            for item in page.get("Contents", [])
        ]
    try:
        return sorted(name for name in os.listdir(folder) if name.startswith(starting))
    except FileNotFoundError:
        return []
