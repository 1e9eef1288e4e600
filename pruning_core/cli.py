"""Command line: ``python -m pruning_core models | methods | sweep | study ...``.

Every mistake a user can make on the command line ends in one line on stderr that names the bad
value and the valid choices, and exit status 2; never a traceback. Commands that take a sample's
``--model NAME`` take the user's own ``--model-file PATH`` instead (see ``cli_own``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import sample_models
from pruning_core import cli_help, cli_output
from pruning_core.allocator import release_large_blocks
from pruning_core.choice import Calibration
from pruning_core.masks import SCOPES, check_sparsity
from pruning_core.methods import METHODS, get_method
from pruning_core.sweep import choice_at, sweep

if TYPE_CHECKING:
    from pruning_core.cli_own import Subject


class UsageError(Exception):
    """A bad command-line value; its message is printed as the one error line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block
        raise UsageError(f"{message} (see: {self.prog} --help)")


def parse_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise UsageError(f"malformed {what} list {text!r}: give comma-separated values with no empty items")
    return items


def parse_sparsities(text: str, option: str = "--sparsities") -> list[float]:
    values = []
    for item in parse_list(text, "sparsity"):
        try:
            values.append(check_sparsity(item))
        except ValueError:
            example = "0,0.5,0.9" if option == "--sparsities" else "0.9"
            raise UsageError(f"bad sparsity {item!r} in {option}: give a number in [0, 1), e.g. {example}") from None
    return values


def parse_methods(text: str) -> list[str]:
    names = parse_list(text, "method")
    for name in names:
        try:
            get_method(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return names


def emit_table(table, args, summary: tuple[str, ...] = ()) -> None:
    """Write ``table`` in ``--format`` (default: table on a terminal, csv otherwise) with ``--columns``
    (default: the ``summary`` columns in the table format, every column in csv and json)."""
    fmt = getattr(args, "format", None) or cli_output.default_format(output=getattr(args, "output", None))
    try:
        table = cli_output.table_view(table, fmt, getattr(args, "columns", None), summary)
    except cli_output.ColumnError as exc:
        raise UsageError(str(exc)) from None
    write_text(cli_output.render(table, fmt), getattr(args, "output", None))


def cmd_models(args) -> int:
    import pandas as pd

    rows = []
    for name in sample_models.available():
        spec = sample_models.get_spec(name)
        rows.append({"name": name, "n_classes": spec.n_classes, "description": spec.description})
    emit_table(pd.DataFrame(rows), args)
    return 0


def cmd_methods(args) -> int:
    import pandas as pd

    rows = [
        {"name": name, "granularity": method.granularity, "description": method.description}
        for name, method in METHODS.items()
    ]
    rows.append({"name": "nm-N:M", "granularity": "n:m", "description": "any other N:M pattern, e.g. nm-1:8"})
    emit_table(pd.DataFrame(rows), args)
    return 0


def cmd_layers(args) -> int:
    from pruning_core import cli_own

    subject = cli_own.subject(args, args.model)
    emit_table(cli_output.layer_table(subject.model, subject.example_input), args)
    return 0


def check_model(name: str) -> str:
    if name not in sample_models.available():
        raise UsageError(f"unknown model {name!r}; valid models: {', '.join(sample_models.available())}")
    return name


def problem_list(heading: str, problems: list[str]) -> str:
    """One problem: one line. Several: the heading, then one ``  - problem`` line each."""
    if len(problems) == 1:
        return f"{heading}: {problems[0]}"
    return f"{heading}:\n" + "\n".join(f"  - {problem}" for problem in problems)


def read_recipe(path: str):
    from pruning_core.recipe import RecipeError, load

    try:
        return load(path)
    except RecipeError as exc:
        raise UsageError(problem_list(f"invalid recipe {path!r}", exc.problems)) from None


def cmd_sweep(args) -> int:
    from pruning_core import cli_own

    if args.recipe:
        recipe = read_recipe(args.recipe)
        methods, sparsities, exclude = recipe_request(args, recipe)
        subject = cli_own.subject(args, None if recipe.is_own_model else recipe.model, recipe)
        print_notes(own_source_notes(recipe, subject, args.recipe))
    else:
        recipe = None
        cli_own.check_model_options(args, args.model)
        if not args.model and not args.model_file:
            raise UsageError("give --model NAME, --model-file PATH or --recipe FILE")
        methods = parse_methods(args.methods)
        sparsities = parse_sparsities(args.sparsities)
        exclude = parse_list(args.exclude, "layer") if args.exclude else []
        subject = cli_own.subject(args, args.model)
    subject.require_data("sweep", "measures accuracy at each sparsity")
    print_exclude_notes(subject, methods, exclude)
    calibration = recipe.calibration_object if recipe is not None else Calibration()
    try:
        schedule = schedule_from_args(args, recipe.schedule_object if recipe is not None and recipe.trains else None)
        for method in methods:  # the sweep resolves each choice the same way: say what it adjusts
            for level in sparsities:
                choice = choice_at(method, args.scope, level, exclude, args.seed, schedule, calibration)
                print_notes(choice.resolved()[1])
        subject.check_schedule(schedule)
        with cli_output.make_progress(f"sweep {subject.label}", args.quiet) as progress:
            table = sweep(
                subject.model, subject.data, methods, sparsities, scope=args.scope, exclude=exclude, seed=args.seed,
                schedule=schedule, workers=args.workers, init_state=subject.init_state(), reinit=subject.reinit,
                calibration=calibration, progress=progress,
            )  # fmt: skip
    except ValueError as exc:  # e.g. an excluded layer the model lacks
        raise UsageError(str(exc)) from None
    table.insert(0, "model", subject.label)
    warn_about_results(table, subject, schedule)
    emit_table(table, args, cli_output.SWEEP_TABLE_COLUMNS)
    return 0


def recipe_request(args, recipe) -> tuple[list[str], list, list[str]]:
    """The methods, sparsities and exclusions of ``sweep --recipe``; the recipe sets the scope and
    seed (a note says which given flags it overrides) and names the model (``--model`` may repeat
    it; a recipe for a user's model needs that file as ``--model-file``)."""
    if recipe.is_own_model:
        if args.model:
            raise UsageError(f"--model {args.model!r} contradicts the recipe, which is for {own_recipe_model(recipe)}")
        if not args.model_file:
            raise UsageError(give_own_files(recipe))
    elif args.model_file:
        raise UsageError(f"--model-file is for a recipe made for your own model; this one is for {recipe.model!r}")
    elif args.model and args.model != recipe.model:
        raise UsageError(f"--model {args.model!r} contradicts the recipe's model {recipe.model!r}; give one of them")
    print_notes(recipe_override_notes(args, recipe))
    args.scope, args.seed = recipe.scope, recipe.seed
    if recipe.scope == "per-layer":
        sparsities: list = [recipe.sparsity_argument]
    elif args.sparsities_given:
        sparsities = parse_sparsities(args.sparsities)
    else:
        sparsities = sorted({0.0, recipe.sparsity})  # the dense reference and the recipe's level
    return [recipe.method], sparsities, list(recipe.exclude)


def own_recipe_model(recipe) -> str:
    """How a message names the user's model a recipe was made for: format and SHA-256."""
    return f"your own {recipe.model_file['format']} model file (SHA-256 {recipe.model_file['sha256']})"


def give_own_files(recipe) -> str:
    """What to pass for a recipe made for the user's model."""
    data = recipe.data_file
    with_data = f", and its {data['format']} data (SHA-256 {data['sha256']}) with --data PATH" if data else ""
    return f"the recipe is for {own_recipe_model(recipe)}: give it with --model-file PATH{with_data}"


def own_source_notes(recipe, subject: Subject, path: str) -> list[str]:
    """Check the user's files are those ``recipe`` was made for (refused with both SHA-256 digests
    when not); a note when only the measured metrics will differ."""
    from pruning_core.export import check_own_sources

    if subject.own is None:
        return []
    try:
        return check_own_sources(recipe, subject.own)
    except ValueError as exc:
        raise UsageError(f"cannot use {path!r} with these files: {exc}") from None


def warn_about_results(table, subject: Subject, schedule) -> None:
    """``warning:`` lines for rows near chance (or below the majority class of the test split) and
    for a fine-tuning budget far below the sample's own training."""
    if subject.data is None:
        return
    y_test = subject.data.y_test
    majority_rate = float(y_test.bincount().max()) / len(y_test)
    warnings = cli_output.chance_warnings(table, subject.n_classes, majority_rate)
    cli_output.print_warnings(warnings + budget_warnings(subject.sample, schedule))


def budget_warnings(model: str | None, schedule) -> list[str]:
    """The short-training warning for a schedule that trains far less than the sample model did
    (none for a user's model, whose training PruneLab does not know)."""
    if model is None or schedule is None or schedule.finetune is None:
        return []
    sample_epochs = sample_models.get_spec(model).training.epochs
    budget = cli_output.budget_warning(schedule.finetune_epochs, sample_epochs, True)  # total over rounds
    return [budget] if budget else []


def recipe_override_notes(args, recipe) -> list[str]:
    """A note for each sweep flag the recipe overrides (given, not the default, and not the recipe's)."""
    recipe_values = {
        "methods": recipe.method,
        "scope": recipe.scope,
        "seed": recipe.seed,
        "exclude": ",".join(recipe.exclude),
    }
    defaults = {"methods": "magnitude", "scope": "global", "seed": 0, "exclude": ""}
    return [
        f"--{flag} {getattr(args, flag)!r} is ignored: the recipe sets {flag} to {value!r}"
        for flag, value in recipe_values.items()
        if getattr(args, flag) != defaults[flag] and getattr(args, flag) != value
    ]


def print_exclude_notes(subject: Subject, methods: list[str], exclude: list[str]) -> None:
    """Say when an --exclude is ignored (an output layer, which structured methods never prune)."""
    from pruning_core.graph import output_layers

    if not exclude:
        return
    granularities: dict[str, str] = {name: get_method(name).granularity for name in methods}
    outputs = output_layers(subject.model, subject.example_input)
    print_notes(cli_output.ignored_exclude_notes(granularities, exclude, outputs))


def print_notes(notes: list[str]) -> None:
    """Each adjustment ``PruningChoice.resolved`` made to a request, one line on stderr (once)."""
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)


def schedule_from_args(args, base=None):
    """The Schedule the --schedule/--finetune-epochs/--lr/--rounds flags describe (over ``base``),
    or None for one-shot pruning without training."""
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import SCHEDULES, Schedule

    given = {
        k: getattr(args, k) for k in ("schedule", "finetune_epochs", "lr", "rounds") if getattr(args, k) is not None
    }
    if not given:
        return base
    kind = given.get("schedule", base.kind if base else "oneshot")
    if kind not in SCHEDULES:
        raise UsageError(f"unknown schedule {kind!r}; valid schedules: {', '.join(SCHEDULES)}")
    base_ft = base.finetune if base and base.finetune else FineTuneConfig(epochs=0)
    epochs = given.get("finetune_epochs", base_ft.epochs if base_ft.epochs else (0 if kind == "oneshot" else 2))
    try:
        finetune = FineTuneConfig(**{**base_ft.to_dict(), "epochs": epochs, "lr": given.get("lr", base_ft.lr)})
        schedule = Schedule(
            kind=kind, finetune=finetune if epochs else None, rounds=given.get("rounds", base.rounds if base else 3)
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return schedule if schedule.finetune_epochs or kind != "oneshot" else None


def cmd_sensitivity(args) -> int:
    from pruning_core import cli_own
    from pruning_core.sensitivity import layer_sensitivity, propose

    cli_own.check_model_options(args, args.model)
    (method,) = parse_methods(args.method)
    sparsities = parse_sparsities(args.sparsities)
    exclude = parse_list(args.exclude, "layer") if args.exclude else []
    subject = cli_own.subject(args, args.model)
    subject.require_data("sensitivity", "measures each layer's accuracy drop on the validation split")
    try:
        with cli_output.make_progress(f"sensitivity {subject.label}", args.quiet) as progress:
            table = layer_sensitivity(
                subject.model, subject.data, method, sparsities, exclude=exclude, seed=args.seed, progress=progress
            )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    table.insert(0, "model", subject.label)
    fmt = args.format or cli_output.default_format(output=args.output)
    if fmt != "table":
        text = cli_output.render(select_or_fail(table, args.columns), fmt)
    else:
        wide = table.pivot(index="layer", columns="sparsity", values="accuracy_drop")
        wide = wide.reindex(table["layer"].unique())
        wide.columns = [f"{c:.0%}" for c in wide.columns]
        split = table["split"].iloc[0] if len(table) else "validation"
        text = (
            f"{split.capitalize()} accuracy drop (points) with one layer pruned alone by {method}, {subject.label}:\n"
        )
        text += (wide * 100).round(2).to_string() + "\n"
    if args.target is not None:
        (target,) = parse_sparsities(args.target, "--target")
        proposal = propose(subject.model, subject.data, table, target, args.budget / 100, method, exclude, args.seed)
        per_layer = ", ".join(f"{k}={v:g}" for k, v in proposal.layer_sparsities.items())
        meets = "meets" if proposal.meets_target else "below"
        text += (
            f"Proposal for {target:.0%} within {args.budget:g} points: {per_layer}; "
            f"overall {proposal.overall_sparsity:.1%} ({meets} the target), "
            f"measured drop {proposal.measured_drop * 100:.2f} points on {proposal.split}"
            f" (test: {proposal.test_drop * 100:.2f})\n"
        )
    write_text(text, args.output)
    return 0


def select_or_fail(table, columns: str | None):
    try:
        return cli_output.select_columns(table, columns)
    except cli_output.ColumnError as exc:
        raise UsageError(str(exc)) from None


def write_text(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write --output {output!r}: {exc.strerror}") from None
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def cmd_recipe(args) -> int:
    from pruning_core.export import recipe_for
    from pruning_core.recipe import dumps

    if args.schema:
        from pruning_core.recipe_schema import recipe_schema

        write_text(json.dumps(recipe_schema(), indent=2) + "\n", args.output)
        return 0
    missing = [f"--{k}" for k in ("model", "method", "sparsity") if getattr(args, k) is None]
    if args.model_file is not None:
        missing = [m for m in missing if m != "--model"]
    elif "--model" in missing:
        missing[0] = "--model NAME (or --model-file PATH)"
    if missing:
        raise UsageError(f"recipe needs {', '.join(missing)} (or --schema)")
    from pruning_core import cli_own

    cli_own.check_model_options(args, args.model)
    if args.model:
        check_model(args.model)
    methods = parse_methods(args.method)
    if len(methods) != 1:
        raise UsageError(f"--method takes one method, not {args.method!r}")
    method = methods[0]
    sparsities = parse_sparsities(args.sparsity, "--sparsity")
    if len(sparsities) != 1:
        raise UsageError(f"--sparsity takes one fraction, not {args.sparsity!r}")
    sparsity = sparsities[0]
    exclude = parse_list(args.exclude, "layer") if args.exclude else []
    try:
        schedule = schedule_from_args(args)
        choice = choice_at(method, args.scope, sparsity, exclude, args.seed, schedule, Calibration())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    subject = cli_own.subject(args, args.model)
    subject.check_schedule(schedule)
    if subject.own is not None and subject.data is None:
        check_data_free(choice)
    try:
        recipe, notes = recipe_for(subject.source, choice)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_notes(notes)
    cli_output.print_warnings(budget_warnings(subject.sample, schedule))
    write_text(dumps(recipe, args.format), args.output)
    return 0


def check_data_free(choice) -> None:
    """Refuse a choice that needs data for a user's model given without ``--data``; else a note
    that only the sizes are measured."""
    from pruning_core import cli_own
    from pruning_core.export import data_needed

    needed = data_needed(choice.resolved()[0])
    if needed:
        raise UsageError(f"{needed}: {cli_own.DATA_HINT}")
    print_notes(["no --data: the recipe records sparsity and sizes, not accuracy"])


def cmd_apply(args) -> int:
    from pruning_core import cli_own
    from pruning_core.export import apply_recipe, write_outputs

    recipe = read_recipe(args.recipe)
    if recipe.is_own_model and not args.model_file:
        raise UsageError(give_own_files(recipe))
    if not recipe.is_own_model and args.model_file:
        raise UsageError(f"--model-file is for a recipe made for your own model; this one is for {recipe.model!r}")
    cli_own.check_model_options(args, None)
    check_out_dir(args.out, args.force)
    schedule = schedule_from_args(args, recipe.schedule_object if recipe.trains else None)
    if schedule is not None:
        from dataclasses import replace

        recipe = replace(
            recipe,
            schedule={k: v for k, v in schedule.to_dict().items() if k != "finetune"},
            finetune=schedule.finetune.to_dict() if schedule.finetune else None,
        )
    if recipe.is_own_model and args.data is None:
        refuse_without_data(recipe)
    subject = cli_own.subject(args, None, recipe) if recipe.is_own_model else cli_own.Subject.of_sample(recipe.model)
    subject.check_schedule(recipe.schedule_object if recipe.trains else None)
    try:
        applied = apply_recipe(recipe, subject.own)
        report = write_outputs(applied, args.out)
    except ValueError as exc:
        raise UsageError(f"cannot apply {args.recipe!r}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot write to --out {args.out!r}: {exc.strerror}") from None
    print_notes(applied.notes)
    measured = report["measured"]
    print(
        f"{applied_summary(recipe, measured, subject.label)}; wrote {', '.join(report['files_bytes'])} and "
        f"report.json to {args.out}"
    )
    warn_about_applied(subject, recipe, measured)
    if report.get("matches_recorded") is False:
        print(
            "warning: the measured metrics differ from those recorded in the recipe (see report.json)", file=sys.stderr
        )
    return 0


def refuse_without_data(recipe) -> None:
    """Refuse a recipe for a user's model that reads data (a data-driven method, training) when
    ``--data`` is missing, naming the data it was made with."""
    from pruning_core.export import data_needed

    needed = data_needed(recipe.to_choice().resolved()[0])
    if needed:
        data = recipe.data_file
        made_with = f" (the recipe was made with a {data['format']} file, SHA-256 {data['sha256']})" if data else ""
        raise UsageError(f"{needed}: give it with --data PATH{made_with}")


def applied_summary(recipe, measured: dict, label: str) -> str:
    """One line with the names and precision the app's Export page uses for the same numbers."""
    accuracy = (
        f"test accuracy {measured['accuracy']:.2%}" if "accuracy" in measured else "accuracy not measured (no --data)"
    )
    return (
        f"{label} · {recipe.method} · {recipe.scope}: {accuracy}, "
        f"effective sparsity {measured['effective_sparsity']:.1%} (direct {measured['actual_sparsity']:.1%})"
    )


def warn_about_applied(subject: Subject, recipe, measured: dict) -> None:
    """The sweep's warnings for one applied recipe: near chance, or a far too short fine-tuning."""
    import pandas as pd

    if "accuracy" not in measured:
        return
    row = {"method": recipe.method, "target_sparsity": recipe.sparsity, "accuracy": measured["accuracy"]}
    warn_about_results(pd.DataFrame([row]), subject, recipe.schedule_object)


def check_out_dir(out: str, force: bool) -> None:
    """Refuse to write into an existing file or a non-empty directory unless ``--force``: an earlier
    run's outputs (or anything else there) are not silently mixed with or replaced by this one's."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out!r} is a file, not a directory")
    if not force and path.is_dir() and any(path.iterdir()):
        raise UsageError(f"--out {out!r} is not empty; give an empty or new directory, or --force to write into it")


def cmd_script(args) -> int:
    from pruning_core.script import generate_script

    recipe = read_recipe(args.recipe)
    try:
        script = generate_script(recipe)
    except ValueError as exc:
        raise UsageError(f"cannot write a script for {args.recipe!r}: {exc}") from None
    write_text(script, args.output)
    if args.masks:
        from pruning_core.script import generate_mask_file

        try:
            Path(args.masks).write_bytes(generate_mask_file(recipe))
        except ValueError as exc:
            raise UsageError(f"cannot write a masks file for {args.recipe!r}: {exc}") from None
        except OSError as exc:
            raise UsageError(f"cannot write --masks {args.masks!r}: {exc.strerror}") from None
        print(f"wrote {args.masks}", file=sys.stderr)
    return 0


def cmd_schedules(args) -> int:
    from pruning_core.schedules import SCHEDULES

    width = max(len(n) for n in SCHEDULES)
    for name, schedule in SCHEDULES.items():
        print(f"{name:<{width}}  {schedule.description}")
    return 0


def cmd_app(streamlit_args: list[str]) -> int:
    """Start the Streamlit app the way ``make run`` does (``ui.serve``); other options go to Streamlit."""
    from ui import serve

    serve.main(streamlit_args)
    return 0


MODEL_HELP = "sample model, one of: %(choices)s"
METHOD_HELP = f"one of: {', '.join(METHODS)}, or any nm-N:M pattern (e.g. nm-1:8)"
SCOPE_HELP = "how sparsity is spread over layers (default: %(default)s; choices: %(choices)s)"


def _output_flags(p: argparse.ArgumentParser, progress: bool = False) -> None:
    p.add_argument(
        "--format",
        choices=cli_output.FORMATS,
        help="table (rounded, for reading), csv or json (full precision); default: table on a terminal, csv otherwise",
    )
    p.add_argument(
        "--columns",
        metavar="A,B,C",
        help="comma-separated columns to show, in this order (default: all; a sweep's table shows a summary)",
    )
    p.add_argument("--output", metavar="FILE", help="write to this file instead of standard output")
    if progress:
        p.add_argument(
            "--quiet",
            action="store_true",
            help=f"no progress bar on stderr (shown on a terminal; {cli_output.PROGRESS_ENV}=1 forces it, =0 hides it)",
        )


def _schedule_flags(p: argparse.ArgumentParser) -> None:
    from pruning_core.schedules import SCHEDULES

    p.add_argument(
        "--schedule", choices=list(SCHEDULES), help="pruning schedule (default: one-shot; choices: %(choices)s)"
    )
    p.add_argument(
        "--finetune-epochs",
        type=int,
        metavar="N",
        help="epochs of masked fine-tuning (per round for iterative/lottery)",
    )
    p.add_argument("--lr", type=float, metavar="X", help="fine-tuning learning rate (default: 0.001)")
    p.add_argument("--rounds", type=int, metavar="K", help="rounds for iterative and lottery schedules (default: 3)")


def _choice_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scope", default="global", choices=[s for s in SCOPES if s != "per-layer"], help=SCOPE_HELP)
    p.add_argument("--exclude", default="", metavar="L1,L2", help="comma-separated layers to leave dense, e.g. fc3")
    p.add_argument("--seed", type=int, default=0, help="seed of random methods and calibration (default: %(default)s)")


def _add_listings(sub) -> None:
    from pruning_core import cli_own

    for name, help_text, run in (
        ("models", "list the sample models", cmd_models),
        ("methods", "list the pruning methods", cmd_methods),
    ):
        p = cli_help.add_command(sub, name, help_text)
        _output_flags(p)
        p.set_defaults(run=run)
    cli_help.add_command(sub, "schedules", "list the pruning schedules").set_defaults(run=cmd_schedules)
    p = cli_help.add_command(sub, "layers", "list a model's prunable layers: shapes, parameters, output layers")
    p.add_argument("model", nargs="?", choices=sample_models.available(), metavar="MODEL", help=MODEL_HELP)
    _output_flags(p)
    cli_own.add_flags(p)
    p.set_defaults(run=cmd_layers)


def _model_flag(p: argparse.ArgumentParser) -> None:
    """``--model``: a sample (or ``--model-file`` for your own model: see ``cli_own.add_flags``)."""
    p.add_argument("--model", metavar="MODEL", help=f"sample model, one of: {', '.join(sample_models.available())}")


def _add_sweep(sub) -> None:
    from pruning_core import cli_own

    p = cli_help.add_command(sub, "sweep", "sweep sparsity levels and print the results table")
    _model_flag(p)
    p.add_argument("--recipe", metavar="FILE", help="sweep what a recipe describes (its level and 0, or --sparsities)")
    p.add_argument("--methods", default="magnitude", help=f"comma-separated; {METHOD_HELP} (default: %(default)s)")
    p.add_argument("--sparsities", help="comma-separated fractions in [0, 1) (default: 0,0.5,0.7,0.8,0.9,0.95)")
    _choice_flags(p)
    _output_flags(p, progress=True)
    _schedule_flags(p)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes for sweeps that train, levels in parallel (default: %(default)s)",
    )
    cli_own.add_flags(p)
    p.set_defaults(run=cmd_sweep)


def _add_recipe(sub) -> None:
    from pruning_core import cli_own

    p = cli_help.add_command(sub, "recipe", "print the recipe (YAML or JSON) for one pruning choice, or its schema")
    _model_flag(p)
    p.add_argument("--method", help=METHOD_HELP)
    p.add_argument("--sparsity", help="fraction of weights to remove, in [0, 1)")
    _choice_flags(p)
    p.add_argument("--format", default="yaml", choices=["yaml", "json"], help="(default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write to this file instead of standard output")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema every recipe file follows, and exit")
    _schedule_flags(p)
    cli_own.add_flags(p)
    p.set_defaults(run=cmd_recipe)


def _add_apply(sub) -> None:
    from pruning_core import cli_own

    p = cli_help.add_command(sub, "apply", "apply a recipe: write pruned weights, report.json and (structured) ONNX")
    p.add_argument("recipe", help="recipe file (.yaml or .json)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty, unless --force)")
    p.add_argument(
        "--force", action="store_true", help="write into a non-empty --out, replacing files of the same name"
    )
    _schedule_flags(p)
    cli_own.add_flags(p)
    p.set_defaults(run=cmd_apply)


def _add_sensitivity(sub) -> None:
    from pruning_core import cli_own

    p = cli_help.add_command(sub, "sensitivity", "per-layer sensitivity table, and a per-layer proposal")
    _model_flag(p)
    p.add_argument("--method", default="magnitude", help=f"{METHOD_HELP} (default: %(default)s)")
    p.add_argument(
        "--sparsities",
        default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95",
        help="comma-separated (default: %(default)s)",
    )
    p.add_argument("--exclude", default="", metavar="L1,L2", help="comma-separated layers to leave out")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--target", help="overall sparsity to propose per-layer sparsities for, e.g. 0.8")
    p.add_argument("--budget", type=float, default=1.0, help="accuracy drop allowed, in points (default: %(default)s)")
    _output_flags(p, progress=True)
    cli_own.add_flags(p)
    p.set_defaults(run=cmd_sensitivity)


def _add_script(sub) -> None:
    p = cli_help.add_command(sub, "script", "print a standalone torch.nn.utils.prune script for a recipe")
    p.add_argument("recipe", help="recipe file (.yaml or .json)")
    p.add_argument("--output", metavar="FILE", help="write to this file instead of standard output")
    p.add_argument(
        "--masks", metavar="FILE", help="also write the engine's masks (safetensors) for the script's --masks"
    )
    p.set_defaults(run=cmd_script)


def build_parser() -> argparse.ArgumentParser:
    import torch

    from pruning_core import __version__, study_cli

    parser = _Parser(prog="prunelab", description="PruneLab: explore and apply neural-network pruning.")
    parser.add_argument(
        "--version", action="version", version=f"prunelab {__version__} (torch {torch.__version__.split('+')[0]})"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    sub.add_parser(
        "app", help="start the web app (extra options go to Streamlit, e.g. --server.port 8600)", add_help=False
    )
    _add_listings(sub)
    for add in (_add_sweep, _add_recipe, _add_apply, _add_sensitivity, _add_script):
        add(sub)
    study_cli.add_parser(sub)
    return parser


_LIST_OPTIONS = {"--sparsities", "--sparsity", "--methods", "--exclude"}


def _join_list_values(argv: list[str]) -> list[str]:
    """``--sparsities -0.1,0.5`` as ``--sparsities=-0.1,0.5``: argparse would take -0.1 for an option."""
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in _LIST_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["app"]:
        return cmd_app(argv[1:])
    try:
        args = build_parser().parse_args(_join_list_values(argv))
        if getattr(args, "command", None) == "sweep":
            args.sparsities_given = args.sparsities is not None
            if args.sparsities is None:
                args.sparsities = "0,0.5,0.7,0.8,0.9,0.95"
        if getattr(args, "model_file", None):
            release_large_blocks()  # the command owns its process: a large model's freed blocks go back
        return args.run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
