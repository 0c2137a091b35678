"""Files on a local disk: hidden temporary files, fsynced, renamed on commit (and their folder fsynced)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from pipelines.engine.errors import RunError
from pipelines.plugins.files.store import FileStore


class LocalFileStore(FileStore):
    """Files on a local disk, each written as `.{name}.{random}.tmp` beside its final name, renamed on commit."""

    def __init__(self) -> None:
        self.file: Any = None
        self.current: tuple[str, str] | None = None  # (name, temporary path)
        self.pending: list[tuple[str, str]] = []
        self.committed: list[str] = []
        self.created_folders: list[str] = []

    def uri(self, name: str) -> str:
        return name

    def name(self, uri: str) -> str:
        return uri

    @staticmethod
    def _temporary(name: str) -> str:
        folder, base = os.path.split(name)
        return os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")

    def _remove_temporary(self, folder: str, starting: str) -> int:
        try:
            entries = os.listdir(folder or ".")
        except OSError:  # no folder (yet), or not one: begin() says why
            return 0
        removed = 0
        for entry in entries:
            if entry.startswith("." + starting) and entry.endswith(".tmp"):
                try:
                    os.remove(os.path.join(folder, entry))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def clear_shard(self, shard_prefix: str) -> int:
        folder, starting = os.path.split(shard_prefix)
        return self._remove_temporary(folder, starting)

    def begin(self, name: str) -> None:
        folder = os.path.dirname(name)
        tmp = self._temporary(name)
        try:
            if folder and not os.path.isdir(folder):
                try:
                    os.makedirs(folder)
                    self.created_folders.append(folder)
                except FileExistsError:  # made meanwhile by another shard's process
                    pass
            self.file = open(tmp, "wb")
        except OSError as exc:
            raise RunError(f"cannot create the output file: {exc.strerror or exc}", where=name) from None
        self.current = (name, tmp)

    def write(self, data: bytes) -> None:
        assert self.file is not None and self.current is not None
        try:
            self.file.write(data)
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.current[0]) from None

    def end(self) -> None:
        assert self.file is not None and self.current is not None
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.current[0]) from None
        self.file = None
        self.pending.append(self.current)
        self.current = None

    def commit(self) -> None:
        folders = set()
        while self.pending:
            name, tmp = self.pending[0]
            try:
                os.replace(tmp, name)
            except OSError as exc:
                raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=name) from None
            self.pending.pop(0)
            self.committed.append(name)
            folders.add(os.path.dirname(name) or ".")
        for folder in folders:  # the renames themselves are durable
            _fsync_folder(folder)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        leftovers = [tmp for _, tmp in self.pending] + ([self.current[1]] if self.current else []) + self.committed
        for path in leftovers:
            try:
                os.remove(path)
            except OSError:
                pass
        self.pending, self.current, self.committed = [], None, []
        for folder in reversed(self.created_folders):
            try:
                os.rmdir(folder)  # only if empty: another shard's files stay
            except OSError:
                pass
        self.created_folders = []

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def listing(self, folder: str) -> dict[str, int]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return {}
        return {os.path.join(folder, e.name): e.stat().st_size for e in entries if e.is_file() and not e.name.startswith(".")}

    def clear_incomplete(self, folder: str) -> int:
        return self._remove_temporary(folder.rstrip("/") or ".", "part-")

    def delete(self, names: list[str]) -> None:
        for name in names:
            try:
                os.remove(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise RunError(f"cannot delete: {exc.strerror or exc}", where=name) from None

    def read(self, name: str) -> bytes | None:
        try:
            with open(name, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunError(f"cannot read: {exc.strerror or exc}", where=name) from None

    def put(self, name: str, data: bytes) -> None:
        tmp = self._temporary(name)
        try:
            os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name)
        except OSError as exc:
            raise RunError(f"cannot write: {exc.strerror or exc}", where=name) from None


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
