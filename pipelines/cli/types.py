"""Click parameter types shared by the `pipelines` commands (click only: imported at CLI start)."""

from __future__ import annotations

from typing import Any

import click


class KeyValue(click.ParamType):
    """KEY=VALUE, for --var and --param."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key.strip(), val


class StorageUri(click.ParamType):
    """Where a file is, or goes: ``s3://bucket/key`` or a local path. ``folder=True`` for a folder or
    an S3 prefix (``s3://bucket/prefix/``), else a file (an S3 key cannot end with ``/``)."""

    name = "URI"

    def __init__(self, folder: bool = False) -> None:
        self.folder = folder

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value).strip()
        if not text:
            self.fail("expected s3://bucket/key or a local path, got an empty value", param, ctx)
        if "://" in text and not text.startswith("s3://"):
            self.fail(f"expected s3://bucket/key or a local path, got {text!r}", param, ctx)
        if text.startswith("s3://"):
            bucket, _, key = text.removeprefix("s3://").partition("/")
            if not bucket or not (key or self.folder):
                self.fail(f"expected s3://bucket/key, got {text!r}", param, ctx)
            if not self.folder and key.endswith("/"):
                self.fail(f"expected the key of a file, not a prefix: {text!r}", param, ctx)
        return text
