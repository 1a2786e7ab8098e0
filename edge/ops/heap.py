"""Give the C heap's free pages back to the kernel once the daemon has attached.

    release_free_heap()     # once the daemon has attached to the hub (session handoff)

Attaching, the last step of start-up, imports the session protocol and builds its
models' schemas after everything else is in place, and frees what that took in between.
glibc's `free()` hands memory back to the kernel only from the top of the heap, so those
holes stay resident: ~1.1 MB of an idle gateway's RSS (the footprint benchmark,
docs/benchmarks.md; at ready there is nothing worth trimming). `malloc_trim(0)`
releases every whole free page of the heap, holes included (glibc 2.8 and later). It
walks the heap once (~0.2 ms here), so it runs at that moment only, never on the hot
path.

Without glibc (musl, macOS) there is no `malloc_trim`, and this does nothing.
"""

from __future__ import annotations


def release_free_heap() -> bool:
    """glibc's `malloc_trim(0)`; True when it gave memory back, False if it did not
    or cannot (no glibc)."""
    import ctypes  # here: a process that never trims never loads it

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
