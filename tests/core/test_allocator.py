"""release_large_blocks: freed model-sized blocks go back to the system (glibc on Linux), measured
in fresh processes so the allocator's state is each test's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pruning_core.allocator import release_large_blocks

ROOT = Path(__file__).resolve().parents[2]

# Free one 4 MB tensor (glibc then serves blocks below 4 MB from its heap), allocate 60 blocks of
# 1.5 MB each followed by a 64 KB tensor that stays, free the blocks: what RSS keeps of them.
SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import torch
from pruning_core.allocator import release_large_blocks
if sys.argv[1] == "release":
    assert release_large_blocks()

def rss_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

first = torch.ones(1 << 20)
del first
before = rss_mb()
blocks, pins = [], []
for _ in range(60):
    blocks.append(torch.ones(3 << 17))  # 1.5 MB, every page written
    pins.append(torch.ones(1 << 14))  # 64 KB, from the heap after the block
del blocks
print(rss_mb() - before)
"""


def _kept_mb(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT)), mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_large_blocks_leave_the_process():
    assert _kept_mb("release") < 15  # of the 90 MB freed


def test_a_threshold_must_be_positive():
    with pytest.raises(ValueError, match="positive number of bytes"):
        release_large_blocks(0)
