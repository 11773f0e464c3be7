"""Keep the heap from holding on to freed part buffers (glibc only).

A backup allocates and frees buffers of megabytes all the time: parts (8 MiB by default),
their checksummed copies, compressed blocks. glibc serves allocations above its mmap
threshold with their own mappings, returned to the system on free, but it raises that
threshold to the size of any such block once it is freed (up to 32 MiB). From then on parts
come from the heap arenas of whichever threads touched them (the reader, the compressor
workers, the upload workers), where freed space is kept and fragments. Measured on a 892 MB
dump with the defaults, pgbackup's peak RSS went from 149 to 128 MiB when the threshold is
pinned at 4 MiB: parts are always mapped and unmapped, while the 1 MiB blocks and chunks
stay on the fast heap path.

``pin_mmap_threshold`` does that through ``mallopt`` (``M_MMAP_THRESHOLD``). On another C
library, or where ``libc`` cannot be loaded, it does nothing: the bound in docs/performance.md still
holds, with more slack.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD = 4 * 1024 * 1024


def pin_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """Pin glibc's mmap threshold; True when it took effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    try:
        return bool(mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, ctypes.ArgumentError):
        return False
