"""The interface of the places an output's files go (a local disk, an S3 bucket)."""

from __future__ import annotations

MIB = 1 << 20  # the unit of S3 part sizes and of the writer's chunks


class FileStore:
    """Where an output's files go, by name (a local path or an S3 key).

    A shard writes its files one at a time (`begin`, `write`*, `end`); none is visible before
    `commit`, and `abort` removes them all. `finish` uses the listing and whole-file methods.
    """

    def uri(self, name: str) -> str:
        raise NotImplementedError

    def name(self, uri: str) -> str:
        """The name of a file given by its URI; a RunError if it is not in this store."""
        raise NotImplementedError

    def clear_shard(self, shard_prefix: str) -> int:
        """Removes the invisible files an earlier, killed attempt of the shard left; returns how many."""
        raise NotImplementedError

    def begin(self, name: str) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self) -> None:
        """Ends the current file: all its bytes are stored, still invisible."""
        raise NotImplementedError

    def commit(self) -> None:
        """Makes every file ended since the last commit visible."""
        raise NotImplementedError

    def abort(self) -> None:
        """Removes every file of this attempt (best effort: what stays is removed by the next attempt or `finish`)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def listing(self, folder: str) -> dict[str, int]:
        """Visible files directly in `folder` (ending with '/'): name -> size."""
        raise NotImplementedError

    def clear_incomplete(self, folder: str) -> int:
        """Removes the invisible files of every shard under `folder`; returns how many."""
        raise NotImplementedError

    def delete(self, names: list[str]) -> None:
        raise NotImplementedError

    def read(self, name: str) -> bytes | None:
        raise NotImplementedError

    def put(self, name: str, data: bytes) -> None:
        """Writes a whole file at once; it appears complete or not at all."""
        raise NotImplementedError
