"""``python -m pruning_core study STUDY.yaml --out results.parquet [--backend local|ray] ...``.

Kept apart from ``cli.py`` so the study engine adds one subcommand there and nothing else.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    """Register the ``study`` subcommand on ``cli.py``'s subparsers."""
    from pruning_core import cli_help
    from pruning_core.study_runner import BACKENDS

    p = cli_help.add_command(sub, "study", "run a study file (many seeds, a grid of settings) locally or on Ray")
    p.add_argument("study", help="study file (.yaml or .json)")
    p.add_argument("--out", required=True, help="results file, .parquet or .csv (parts are kept in OUT.parts/)")
    p.add_argument(
        "--backend", default="local", choices=list(BACKENDS), help="where cells run (default: %(default)s; %(choices)s)"
    )
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument(
        "--workers", type=int, default=1, help="local worker processes, or CPUs of a local Ray (default: %(default)s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    from pruning_core.cli import UsageError
    from pruning_core.study import StudyError, load
    from pruning_core.study_runner import OUTPUT_FORMATS, ray_available, run_study

    try:
        study = load(args.study)
    except StudyError as exc:
        from pruning_core.cli import problem_list

        raise UsageError(problem_list(f"invalid study {args.study!r}", exc.problems)) from None
    if not args.out.lower().endswith(OUTPUT_FORMATS):
        raise UsageError(f"--out {args.out!r}: give a .parquet or .csv file")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give a positive number")
    if args.backend == "ray" and not ray_available():
        raise UsageError("--backend ray needs Ray: pip install 'ray>=2.60,<3' (see requirements.txt)")
    if args.address and args.backend != "ray":
        raise UsageError("--address is for --backend ray")
    try:
        report = run_study(
            study, args.out, backend=args.backend, workers=args.workers, address=args.address,
            progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"interrupted: finished cells are kept in {args.out}.parts/; run again to resume", file=sys.stderr)
        return 130
    except ConnectionError as exc:  # an OSError too: Ray could not reach the cluster
        where = args.address or "RAY_ADDRESS"
        raise UsageError(
            str(exc) if str(exc).startswith("cannot reach") else f"cannot reach the Ray cluster ({where}): {exc}"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write --out {args.out!r}: {exc.strerror}") from None
    print(
        f"{study.name}: {report.cells} cells, {report.already_done} done before, {report.computed} computed "
        f"({report.failed} failed) in {report.seconds:.1f} s; wrote {args.out}",
        file=sys.stderr,
    )
    for cell_id, error in report.failures:
        print(f"failed cell {cell_id}: {error}", file=sys.stderr)
    return 1 if report.failed else 0
