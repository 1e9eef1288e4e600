"""Large blocks from the operating system and back: memory a big model frees is returned, not kept.

glibc's ``malloc`` serves a request from its heap unless the request is at least the "mmap
threshold" (128 KiB to start with). Each time a mapped block is freed, glibc raises that threshold
to the block's size (up to 32 MiB) and keeps up to twice as much free memory at the top of its
heap. A large model (a 25 M-parameter ONNX file holds 16 and 64 MB tensors) therefore moves its
weight-sized temporaries (the parsed file, one evaluation's activations, a level's masks) into the
heap, where freed blocks stay resident and fragment, so a process's peak memory grows with each
phase. Measured with ``python -m benchmarks.own_model``: a sweep of that model peaked about 45 MB
higher without this setting, and the loaded model kept about 17 MB more than its weights and data.

:func:`release_large_blocks` fixes the threshold (which also turns the raising off): every block of
``threshold`` bytes or more gets its own mapping and goes back to the system when freed. It is a
setting of the whole process, so only the programs PruneLab runs as their own process call it,
once, when they start: the ``prunelab`` command line, the app's server (``python -m ui.serve``) and
its worker processes. A program that imports ``pruning_core`` as a library keeps its allocator as it
is unless it calls this itself (or sets ``MALLOC_MMAP_THRESHOLD_`` in the environment).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 1 << 20  # 1 MiB: a few pages of zeroing per block, negligible against a forward pass


def release_large_blocks(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve blocks of ``threshold`` bytes or more from their own mappings (glibc on Linux); True when
    the setting took effect, False where there is no glibc ``mallopt`` (other systems: nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    if threshold <= 0:
        raise ValueError(f"threshold must be a positive number of bytes, not {threshold}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
