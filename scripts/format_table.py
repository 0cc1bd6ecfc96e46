"""Accuracy against bits for MASE's fixed point, range-calibrated fixed point and scaled int.

Trains each model briefly (seeded), then quantizes every layer at 8, 6, 4 and 3 bits
(inputs and weights at that width, biases at 8 bits) with three schemes:

* ``integer NA``: MASE's fixed point, frac width = width // 2;
* ``integer auto``: fixed point, frac width fitted to each tensor's range (weights and
  biases from the parameters, inputs from calibration);
* ``int per-channel``: scaled integers, symmetric per-output-channel weight scales,
  asymmetric per-tensor input scales, per-tensor bias scales;

after folding BatchNorm and calibrating the inputs on 256 training samples (min-max),
exactly as ``bitscout quantize`` does, and prints validation accuracy as a Markdown table
(the one in docs/formats.md). Run from the repository root:

    PYTHONPATH=src python scripts/format_table.py            # every model (minutes)
    PYTHONPATH=src python scripts/format_table.py --only digits-cnn
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from bitscout.data import Dataset, load_dataset
from bitscout.models import build_model
from bitscout.quant import Quantizer, parse_layer_config, prepare_ptq
from bitscout.training import evaluate, train

WIDTHS = (8, 6, 4, 3)

#: name -> (dataset, model, model options, epochs)
MODELS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "digits-cnn": ("digits", "cnn", {}, 20),
    "mnist5k-cnn": ("mnist5k", "cnn", {}, 6),
    "digits-cnn-bn": ("digits", "cnn", {"batch_norm": True}, 20),
    "mnist5k-cnn-bn": ("mnist5k", "cnn", {"batch_norm": True}, 6),
}


def integer_na(width: int) -> dict[str, Any]:
    return {"name": "integer", "data_in_width": width, "weight_width": width, "bias_width": 8}


def integer_auto(width: int) -> dict[str, Any]:
    return {**integer_na(width), "data_in_frac_width": "auto", "weight_frac_width": "auto", "bias_frac_width": "auto"}


def int_per_channel(width: int) -> dict[str, Any]:
    return {
        "name": "int",
        "data_in_width": width,
        "data_in_symmetric": False,
        "weight_width": width,
        "weight_granularity": "channel",
        "bias_width": 8,
    }


SCHEMES: dict[str, Callable[[int], dict[str, Any]]] = {
    "integer NA (MASE)": integer_na,
    "integer auto": integer_auto,
    "int per-channel": int_per_channel,
}


def trained(dataset: Dataset, model_name: str, options: dict[str, Any], epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(model_name, dataset.info, options)
    train(model, dataset, epochs=epochs, batch_size=64, learning_rate=3e-3, seed=0, progress=False)
    return model.eval()


def accuracy_table(name: str) -> tuple[float, dict[str, dict[int, float]]]:
    """Float accuracy and scheme -> width -> accuracy on the validation split."""
    dataset_name, model_name, options, epochs = MODELS[name]
    dataset = load_dataset(dataset_name, seed=0)
    model = trained(dataset, model_name, options, epochs)
    val = dataset.val
    prepared = prepare_ptq(model, val.x[:2], dataset.train.x[:256], fold_bn=True)
    quantizer = Quantizer(prepared.traced, calibration=prepared.calibration)
    table = prepared.traced.table
    float_acc = evaluate(model, val.x, val.y, batch_size=256).accuracy
    results: dict[str, dict[int, float]] = {}
    for scheme, make in SCHEMES.items():
        results[scheme] = {}
        for width in WIDTHS:
            config = {
                layer.name: parse_layer_config(make(width), where=scheme, tensors=layer.tensors, op=layer.op)
                for layer in table
            }
            candidate = quantizer.build(config)
            results[scheme][width] = evaluate(candidate, val.x, val.y, batch_size=256).accuracy
    return float_acc, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(MODELS), action="append", help="models to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.only or list(MODELS)
    print("| model | float | scheme | " + " | ".join(f"{w} bits" for w in WIDTHS) + " |")
    print("|---|---|---|" + "---|" * len(WIDTHS))
    for name in names:
        started = time.perf_counter()
        float_acc, results = accuracy_table(name)
        for scheme, by_width in results.items():
            cells = " | ".join(f"{100 * by_width[w]:.1f}" for w in WIDTHS)
            print(f"| {name} | {100 * float_acc:.1f} | {scheme} | {cells} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
