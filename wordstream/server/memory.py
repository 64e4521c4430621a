"""Give freed memory back to the operating system (glibc keeps it otherwise). No grpc here.

Histories are numpy arrays of tens to hundreds of kilobytes; once many sessions close,
glibc's allocator keeps the freed pages for reuse, so the server's resident memory stays
at its peak. ``malloc_trim`` returns what is free. Elsewhere (not glibc) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_libc_name = ctypes.util.find_library("c")
try:
    _malloc_trim = ctypes.CDLL(_libc_name).malloc_trim if _libc_name else None
except (OSError, AttributeError):
    _malloc_trim = None


def trim() -> bool:
    """Return free heap memory to the OS; True if the C library could."""
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
