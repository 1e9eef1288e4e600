"""Large blocks from the operating system and back: memory a big model frees is returned, not kept.

glibc's ``malloc`` serves a request from its heap unless the request is at least the "mmap
threshold" (128 KiB to start with). Each time a mapped block is freed, glibc raises that threshold
to the block's size (up to 32 MiB) and keeps up to twice as much free memory at the top of its
heap. A large model (a 25 M-parameter ONNX file holds 16 and 64 MB tensors) therefore moves its
weight-sized temporaries (the parsed file, one evaluation's activations, a level's masks) into the
heap, where freed blocks stay resident and fragment. Measured with ``python -m benchmarks.own_model``
on that model (96 MB of weights, 12 MB of data): without this setting loading peaked at 2.95x the
weights and data instead of 2.8x, and the loaded model kept 1.17x instead of 1.0x (its sweep peaks
at 2.2x either way: the engine reuses its large temporaries).

:func:`release_large_blocks` fixes the threshold (which also turns the raising off): every block of
``threshold`` bytes or more gets its own mapping and goes back to the system when freed. The price
is fresh pages for each such block: a sample model's batch activations (1 to 8 MB) are slower to
get than from the heap, so its sweeps take longer (mnist1d-cnn, 2 methods x 5 levels, best of 15:
0.22 s -> 0.29 s; a 4 MB threshold gave 0.26 s and 8 MB no difference, but the large model's
sweep then peaked at 2.8-2.9x instead of 2.75x). It is a setting of the whole process, so only
processes PruneLab runs as its own and that hold users' models call it, once: the ``prunelab``
command when given ``--model-file``, and the app's server, whose session threads run uploaded
models (the sample models run in its worker processes, which keep the defaults). A program that
imports ``pruning_core`` keeps its allocator as it is unless it calls this itself (or sets
``MALLOC_MMAP_THRESHOLD_`` in the environment).
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
