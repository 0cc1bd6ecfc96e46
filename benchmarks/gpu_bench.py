"""The GPU figures of issue 16, item 4: what ``benchmarks/gpu_check.sh`` runs on a device.

One command (from the repository root)::

    .venv/bin/python benchmarks/gpu_bench.py --device cuda --json out.json   # on a GPU
    .venv/bin/python benchmarks/gpu_bench.py --dry-run                        # CPU, tiny sizes

What is measured:

1. **compiled fake-quant / compiled float forward** on a ResNet-20-size CNN (3 stages of
   3 basic blocks, 16/32/64 channels, BatchNorm, residual adds; 0.27 M parameters) over
   10,000 CIFAR-size inputs (3 x 32 x 32, synthetic: seeded Gaussian noise, labelled
   synthetic; speed does not depend on the values). Both models go through
   ``torch.compile`` (inductor on a GPU); the quantized one is a
   :class:`bitscout.quant.Quantizer` candidate with every conv, linear and add at 8-bit
   fixed point (inputs, weights, biases). Timed after warm-up, median of repeats,
   synchronized. Target: at most 1.1x.
2. **configurations per second for small models, many configurations per launch**:
   :func:`bitscout.evaluation.evaluate_runner_set_exhaustively` on the digits MLP
   (46,656 configurations; inputs of the configurations that share a weight format
   stacked into one layer call, the default on an accelerator), with the number of
   mismatches against trial-by-trial evaluation on sampled configurations.

``--dry-run`` runs the same code on the CPU with tiny sizes (64 inputs, a 64-configuration
space) and the ``aot_eager`` compile backend (no C++ compiler needed), so that the script
is known to work before a device is lent; ``tests/test_gpu_check.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent


# ----- the ResNet-20-size CNN -----------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and ReLU, plus the (1x1-projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20: 3 stages of 3 basic blocks, 16/32/64 channels."""

    def __init__(self, num_classes: int = 10, width: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        layers: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn: Any, device: torch.device, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), times


def compiled_fake_quant(
    device: torch.device, *, inputs: int, batch: int, backend: str, repeats: int, blocks: int = 3, width: int = 16
) -> dict[str, Any]:
    """Compiled quantized candidate vs compiled float model over ``inputs`` samples."""
    from bitscout.graph import trace
    from bitscout.quant import Quantizer, parse_layer_config

    torch.manual_seed(0)
    model = ResNet20(width=width, blocks=blocks).to(device).eval()
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(inputs, 3, 32, 32, generator=generator).to(device)  # synthetic inputs
    traced = trace(model, x[:2], warn=False)
    config = {}
    for layer in traced.table:
        if layer.op in ("conv2d", "linear", "add"):
            raw = {"name": "integer", "data_in_width": 8, "data_in_frac_width": 4,
                   "weight_width": 8, "weight_frac_width": 6, "bias_width": 8, "bias_frac_width": 6}
            config[layer.name] = parse_layer_config(raw, where=layer.name, tensors=layer.tensors, op=layer.op)
    candidate = Quantizer(traced).build(config)
    results: dict[str, Any] = {"inputs": inputs, "batch": batch, "backend": backend, "blocks": blocks, "width": width,
                               "parameters": sum(p.numel() for p in model.parameters()),
                               "quantized_layers": len(config), "layers": len(traced.table)}
    compiled = {}
    for name, module in (("float", traced.gm), ("fake_quant", candidate)):
        start = time.perf_counter()
        fn = torch.compile(module, backend=backend)
        with torch.inference_mode():
            fn(x[:batch])
        _sync(device)
        results[f"{name}_compile_s"] = time.perf_counter() - start
        compiled[name] = fn

    def run(fn: Any) -> Any:
        def go() -> None:
            with torch.inference_mode():
                for start in range(0, inputs, batch):
                    fn(x[start : start + batch])
        return go

    for name, fn in compiled.items():
        run(fn)()  # warm
    # Interleaved, so that both see the same state of the device.
    floats, quants = [], []
    for _ in range(repeats):
        floats.append(_median_ms(run(compiled["float"]), device, 1)[0])
        quants.append(_median_ms(run(compiled["fake_quant"]), device, 1)[0])
    with torch.inference_mode():
        eager_q = candidate(x[:batch])
        comp_q = compiled["fake_quant"](x[:batch])
    results.update(
        float_ms=statistics.median(floats),
        fake_quant_ms=statistics.median(quants),
        ratio=statistics.median(q / f for q, f in zip(quants, floats)),
        # How far the compiled candidate is from the eager one (compilers may fuse and
        # reorder the float arithmetic between the quantizers).
        max_abs_diff_compiled_vs_eager=float((eager_q - comp_q).abs().max()),
    )
    return results


def exhaustive_rate(device: torch.device, *, widths: list[int], sample: int) -> dict[str, Any]:
    """Configurations per second of the exhaustive engine on the digits MLP."""
    from bitscout.data import load_dataset
    from bitscout.evaluation import evaluate_runner_set_exhaustively
    from bitscout.space import SearchSpace
    from speed import digits_mlp_runners  # this folder's speed.py: the shared digits MLP setup

    digits = load_dataset("digits", seed=0)
    traced, runners = digits_mlp_runners(digits, device)
    choices = {
        layer.name: {"name": "integer", "data_in_width": widths, "weight_width": widths, "bias_width": 8}
        for layer in traced.table
        if layer.op == "linear"
    }
    space = SearchSpace(traced.table, choices)
    # Stacked layer calls are the accelerator default; the dry run forces them on the CPU
    # so that the path the device takes is the one exercised.
    stack = None if device.type != "cpu" else 1 << 22
    evaluate_runner_set_exhaustively(space, runners, stack_elements=stack)  # warm
    _sync(device)
    start = time.perf_counter()
    result = evaluate_runner_set_exhaustively(space, runners, stack_elements=stack)
    _sync(device)
    seconds = time.perf_counter() - start
    mismatches = 0
    picks = random.Random(0).sample(range(space.distinct_size), min(sample, space.distinct_size))
    for index in picks:
        expected = runners.run(space.decode(space.distinct_params_at(index)))
        got = result.metrics_at(index)
        mismatches += got.software != expected.software or got.hardware != expected.hardware
    return {
        "configurations": len(result),
        "seconds": seconds,
        "configs_per_s": len(result) / seconds,
        "layer_calls": result.forward_calls,
        "checked": len(picks),
        "mismatches": mismatches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, aot_eager backend")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        inputs, batch, backend, repeats, widths, sample = 64, 32, "aot_eager", 2, [4, 8], 8
        blocks, width = 1, 4  # a ResNet-8 of 4/8/16 channels: the same code, a short compile
        torch.set_num_threads(1)
    else:
        device = torch.device(args.device)
        inputs, batch, backend, repeats, widths, sample = args.inputs, args.batch, args.backend, 7, [2, 3, 4, 5, 6, 8], 60
        blocks, width = 3, 16
        if device.type == "cuda" and not torch.cuda.is_available():
            print("error: --device cuda but torch sees no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
            return 2
    figures: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dry_run": args.dry_run,
        "load_average": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    def verdict(met: bool, target: str) -> str:
        if args.dry_run:
            return f"dry run on the CPU: not checked against the {target} GPU target"
        return f"{target}: {'MET' if met else 'MISSED'}"

    print(f"gpu_bench on {figures['device_name']} (torch {torch.__version__}){' DRY RUN' if args.dry_run else ''}", flush=True)
    cq = compiled_fake_quant(
        device, inputs=inputs, batch=batch, backend=backend, repeats=repeats, blocks=blocks, width=width
    )
    figures["compiled_fake_quant"] = cq
    print(
        f"1. ResNet-{6 * blocks + 2} CNN ({cq['parameters']} parameters), {cq['inputs']} synthetic CIFAR-size inputs in batches of {cq['batch']}, "
        f"torch.compile({backend}): float {cq['float_ms']:.2f} ms, fake-quant {cq['fake_quant_ms']:.2f} ms, "
        f"ratio {cq['ratio']:.3f}x ({verdict(cq['ratio'] <= 1.1, 'target <= 1.1x')}); "
        f"compile {cq['float_compile_s']:.1f} s / {cq['fake_quant_compile_s']:.1f} s; "
        f"compiled vs eager candidate max |diff| {cq['max_abs_diff_compiled_vs_eager']:.3g}",
        flush=True,
    )
    ex = exhaustive_rate(device, widths=widths, sample=sample)
    figures["exhaustive"] = ex
    print(
        f"2. exhaustive, digits MLP: {ex['configurations']} configurations in {ex['seconds']:.3f} s = "
        f"{ex['configs_per_s']:.0f} configurations/s ({ex['layer_calls']} layer calls); "
        f"{ex['mismatches']} mismatches against trial by trial on {ex['checked']} sampled configurations",
        flush=True,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if ex["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
