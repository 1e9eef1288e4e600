"""``make bench``: every benchmark, printed as ratios measured side by side in one process."""

from __future__ import annotations

import sys

from benchmarks import app, engine, finetune, sparse


def main() -> int:
    print(engine.report(engine.run()), flush=True)
    print(flush=True)
    print(finetune.report(finetune.run()), flush=True)
    print(flush=True)
    print(sparse.report(sparse.run()), flush=True)
    print(flush=True)
    print(app.report(app.run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
