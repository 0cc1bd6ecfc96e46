"""A small, real search problem for the loop's tests, independent of the other packages.

Each "layer" holds a fixed weight vector; a configuration picks an integer width per
layer; the runners quantize the weights with the signed fixed-point rule of DESIGN.md
(frac width = width - 1, weights in [-1, 1)) and report an accuracy-like score
(1 - 10 * mean squared quantization error) and the average bitwidth weighted by the
number of weights. Every number can be recomputed independently with numpy.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution

LAYER_SIZES = {"fc1": 24, "fc2": 12, "fc3": 6}


def weights(layer: str) -> np.ndarray:
    rng = np.random.default_rng(sorted(LAYER_SIZES).index(layer))
    return rng.uniform(-1.0, 1.0, LAYER_SIZES[layer])


@dataclass(frozen=True)
class ToyLayerConfig:
    width: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": "integer", "weight_width": self.width, "weight_frac_width": self.width - 1}


class ToySpace:
    """Widths per layer; a layer with one choice is fixed (not searched)."""

    def __init__(self, choices: Mapping[str, Sequence[int]]) -> None:
        self.choices = {k: tuple(v) for k, v in choices.items()}

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.choices.values())

    @property
    def distinct_size(self) -> int:
        return self.size

    def distributions(self) -> dict[str, CategoricalDistribution]:
        return {f"{k}/weight_width": CategoricalDistribution(v) for k, v in self.choices.items() if len(v) > 1}

    def decode(self, params: Mapping[str, Any]) -> dict[str, ToyLayerConfig]:
        out = {}
        for layer, options in self.choices.items():
            width = params.get(f"{layer}/weight_width", options[0]) if len(options) > 1 else options[0]
            if width not in options:
                raise ValueError(f"{layer}: width {width} is not one of {options}")
            out[layer] = ToyLayerConfig(int(width))
        return out

    def key(self, config: Mapping[str, ToyLayerConfig]) -> Hashable:
        return tuple(sorted((k, v.width) for k, v in config.items()))

    def enumerate(self) -> list[dict[str, ToyLayerConfig]]:
        layers = list(self.choices)
        return [
            {layer: ToyLayerConfig(w) for layer, w in zip(layers, combo)}
            for combo in itertools.product(*(self.choices[layer] for layer in layers))
        ]

    def describe(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.choices.items())


def quantize_fixed(x: np.ndarray, width: int) -> np.ndarray:
    frac = width - 1
    return np.clip(np.round(x * 2.0**frac), -(2 ** (width - 1)), 2 ** (width - 1) - 1) / 2.0**frac


@dataclass
class ToyMetrics:
    software: dict[str, float]
    hardware: dict[str, float]


class ToyRunners:
    """Counts its calls; can fail, return NaN, sleep or be interrupted on given widths."""

    def __init__(
        self,
        *,
        fail_on: Sequence[Hashable] = (),
        nan_on: Sequence[Hashable] = (),
        fail_all: bool = False,
        sleep_s: float = 0.0,
        interrupt_at_call: int | None = None,
    ) -> None:
        self.calls: list[Hashable] = []
        self.fail_on = set(fail_on)
        self.nan_on = set(nan_on)
        self.fail_all = fail_all
        self.sleep_s = sleep_s
        self.interrupt_at_call = interrupt_at_call
        self._lock = threading.Lock()

    def run(self, config: Mapping[str, ToyLayerConfig]) -> ToyMetrics:
        key = tuple(sorted((k, v.width) for k, v in config.items()))
        with self._lock:
            self.calls.append(key)
            n = len(self.calls)
        if self.interrupt_at_call is not None and n == self.interrupt_at_call:
            raise KeyboardInterrupt
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_all or key in self.fail_on:
            raise RuntimeError(f"runner broke on {key}")
        return toy_metrics(config, nan=key in self.nan_on)


def toy_metrics(config: Mapping[str, ToyLayerConfig], *, nan: bool = False) -> ToyMetrics:
    errors = [np.mean((weights(k) - quantize_fixed(weights(k), v.width)) ** 2) * LAYER_SIZES[k] for k, v in config.items()]
    total = sum(LAYER_SIZES[k] for k in config)
    mse = float(sum(errors) / total)
    avg_bits = sum(v.width * LAYER_SIZES[k] for k, v in config.items()) / total
    accuracy = float("nan") if nan else 1.0 - 10.0 * mse
    return ToyMetrics(software={"accuracy": accuracy}, hardware={"average_bitwidth": float(avg_bits)})


@dataclass(frozen=True)
class ToyResult:
    values: tuple[float, ...]
    scaled: dict[str, float]


@dataclass
class ToyObjective:
    """accuracy - 0.01 * average_bitwidth (summed) or the two metrics apart (Pareto)."""

    summed: bool = True
    bit_scale: float = 0.01

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.summed else ["maximize", "minimize"]

    @property
    def metric_names(self) -> list[str]:
        return ["accuracy", "average_bitwidth"]

    @property
    def sum_scaled(self) -> bool:
        return self.summed

    def evaluate(self, metrics: ToyMetrics) -> ToyResult:
        acc = metrics.software["accuracy"]
        bits = metrics.hardware["average_bitwidth"]
        if self.summed:
            scaled = {"accuracy": acc, "average_bitwidth": -self.bit_scale * bits}
            return ToyResult((acc - self.bit_scale * bits,), scaled)
        return ToyResult((acc, bits), {"accuracy": acc, "average_bitwidth": bits})
