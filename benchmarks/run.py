"""``make bench``: every benchmark, printed as ratios measured side by side in one process, then the
room simulator (30 sessions at once, every scenario) against servers it starts."""

from __future__ import annotations

import sys

from benchmarks import app, engine, finetune, own_model, room, sparse, study


def main() -> int:
    print(engine.report(engine.run()), flush=True)
    print(flush=True)
    print(engine.report_lean(engine.run_lean()), flush=True)
    print(flush=True)
    print(finetune.report(finetune.run()), flush=True)
    print(flush=True)
    print(sparse.report(sparse.run()), flush=True)
    print(flush=True)
    print(app.report(app.run()), flush=True)
    print(flush=True)
    print(study.report(study.run()) + "\n", flush=True)
    print(own_model.report(own_model.run()) + "\n", flush=True)
    print(room.report(room.run(sessions=30, after_wait_s=30), after_wait_s=30), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
