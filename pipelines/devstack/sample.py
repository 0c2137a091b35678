"""A sample audience: gzip CSV with user_id plus a few attributes, reproducible from a seed."""

from __future__ import annotations

import random
from typing import IO

HEADER = "user_id,country,score,opted_in,updated_at\n"
COUNTRIES = ("JP", "US", "FR", "DE", "BR", "IN", "GB", "KR")


def write_audience_csv(out: IO[bytes], rows: int, seed: int = 7, block: int = 50_000) -> int:
    """Writes `rows` rows (and a header) of CSV text to `out`; returns the bytes written."""
    rng = random.Random(seed)
    written = out.write(HEADER.encode())
    for start in range(0, rows, block):
        count = min(block, rows - start)
        lines = [
            f"u{start + i:09d},{rng.choice(COUNTRIES)},{rng.random() * 100:.3f},"
            f"{'true' if rng.random() < 0.7 else 'false'},2026-11-{1 + (start + i) % 28:02d}T12:00:00Z\n"
            for i in range(count)
        ]
        written += out.write("".join(lines).encode())
    return written


def write_audience_gzip(path: str, rows: int, seed: int = 7) -> None:
    from isal import igzip

    with igzip.open(path, "wb", compresslevel=1) as out:
        write_audience_csv(out, rows, seed)
