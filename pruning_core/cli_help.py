"""What each command's ``--help`` shows below its options: examples to copy. Kept apart from the
parser so the examples are easy to read and review in one place."""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, list[str]] = {
    "models": ["prunelab models", "prunelab models --format json"],
    "methods": ["prunelab methods", "prunelab methods --columns name,granularity --format csv"],
    "schedules": ["prunelab schedules"],
    "layers": [
        "prunelab layers digits-cnn",
        "prunelab layers digits-mlp --format json",
        "prunelab layers --model-file net.onnx   # your own model; no data needed",
    ],
    "sweep": [
        "prunelab sweep --model digits-mlp --methods magnitude,random --sparsities 0,0.5,0.9",
        "prunelab sweep --model digits-mlp --columns method,target_sparsity,accuracy",
        "prunelab sweep --model digits-mlp --format csv --output sweep.csv   # full precision",
        "prunelab sweep --recipe recipe.yaml --sparsities 0,0.5,0.9",
        "prunelab sweep --model digits-mlp --sparsities 0.9 --schedule iterative --finetune-epochs 3",
        "prunelab sweep --model-file net.onnx --data data.csv --label-column label --sparsities 0,0.5,0.9",
        "prunelab sweep --model-file weights.safetensors --model-factory mypackage.models:build --data data.npz",
    ],
    "recipe": [
        "prunelab recipe --model digits-cnn --method structured-l1 --scope layerwise --sparsity 0.5",
        "prunelab recipe --model digits-mlp --method nm-2:4 --sparsity 0.5 --format json --output r.json",
        "prunelab recipe --schema > recipe.schema.json",
        "prunelab recipe --model-file net.onnx --method magnitude --sparsity 0.5 --output own.yaml   # no data: sizes",
    ],
    "apply": [
        "prunelab apply recipe.yaml --out pruned/",
        "prunelab apply recipe.yaml --out pruned/ --force",
        "prunelab apply own.yaml --model-file net.onnx --out pruned/   # writes pruned.onnx: your graph, pruned",
    ],
    "script": ["prunelab script recipe.yaml --output prune_it.py --masks masks.safetensors"],
    "study": [
        "prunelab study study.yaml --out results.parquet",
        "prunelab study study.yaml --out results.parquet --backend ray --workers 4",
    ],
    "sensitivity": [
        "prunelab sensitivity --model digits-mlp",
        "prunelab sensitivity --model digits-mlp --target 0.8 --budget 1",
        "prunelab sensitivity --model-file net.onnx --data data.npz --target 0.5",
    ],
}


def add_command(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its examples, printed as written."""
    examples = EXAMPLES.get(name, [])
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return sub.add_parser(
        name, help=help_text, description=help_text, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
