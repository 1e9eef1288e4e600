"""Deterministic training of the sample models: ``python -m sample_models.train NAME [NAME...]|all``.

Trains on the train split only (validation and test are held out), reports validation and test
accuracy, and writes ``weights/NAME.safetensors`` and ``weights/NAME.json`` (the recorded
accuracy that tests check the shipped weights against).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch
from safetensors.torch import save_file
from torch import nn

from sample_models import available, get_spec


def train_model(model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg) -> nn.Module:
    """Train with Adam and cross-entropy for ``cfg.epochs`` epochs, seeded and deterministic."""
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            optimizer.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            optimizer.step()
    return model.eval()


@torch.inference_mode()
def test_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(X).argmax(1) == y).float().mean())


def train(name: str) -> dict:
    spec = get_spec(name)
    torch.manual_seed(spec.training.seed)
    torch.use_deterministic_algorithms(True)
    data = spec.load_data()
    model = spec.build()
    start = time.perf_counter()
    train_model(model, data.X_train, data.y_train, spec.training)
    seconds = time.perf_counter() - start
    info = {
        "name": name,
        "test_accuracy": test_accuracy(model, data.X_test, data.y_test),
        "val_accuracy": test_accuracy(model, data.X_val, data.y_val),
        "train_accuracy": test_accuracy(model, data.X_train, data.y_train),
        "n_train": len(data.X_train),
        "n_val": len(data.X_val),
        "n_test": len(data.X_test),
        "params": sum(p.numel() for p in model.parameters()),
        "training": dataclasses.asdict(spec.training),
        "torch_version": torch.__version__.split("+")[0],
        "train_seconds": round(seconds, 2),
    }
    spec.weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, spec.weights_path)
    spec.info_path.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_models.train", description=__doc__)
    parser.add_argument("names", nargs="+", help=f"sample names or 'all' ({', '.join(available())})")
    args = parser.parse_args(argv)
    names = available() if args.names == ["all"] else args.names
    for name in names:
        try:
            info = train(name)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"{name}: test accuracy {info['test_accuracy']:.4f}, validation {info['val_accuracy']:.4f}, "
            f"train {info['train_accuracy']:.4f}, "
            f"{info['params']} params, {info['train_seconds']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
