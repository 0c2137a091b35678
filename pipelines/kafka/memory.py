"""Bounded memory next to librdkafka's threads.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and librdkafka's
broker threads allocate fetched and decompressed batches, so freed memory scatters over arenas and
the resident size grows far past what is in use: a 1M-record read peaked at 200 MB with the default,
75 MB with two arenas, at the same speed. `limit_malloc_arenas` sets that limit (M_ARENA_MAX) once,
before the first Kafka client starts its threads; MALLOC_ARENA_MAX in the environment wins.
"""

from __future__ import annotations

import os

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2
_done = False


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """True if the limit was set (glibc only; elsewhere, or when MALLOC_ARENA_MAX is set, nothing happens)."""
    global _done
    if _done:
        return False
    _done = True
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def release_free_memory() -> bool:
    """Gives the heap's free pages back to the system (glibc's malloc_trim), e.g. after a Kafka client
    is closed: its fetched batches were freed in librdkafka's threads' arenas, and without this the
    next client's buffers come on top (an export of six partitions, one client each, went from 166 to
    260 MB in steps). True if it ran (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False
