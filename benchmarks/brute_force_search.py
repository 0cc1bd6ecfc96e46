"""A brute-force search end to end: its trials written from the table, against the loop.

When a brute force visits the whole space with post-training evaluation only, the search
evaluates every configuration at once first (a ``TableEvaluator``) and then records one
trial per configuration. This measures that search, as ``bitscout search`` runs it
(``PreparedSearch.run``: one CPU thread, the journal file in a fresh run folder), two
ways side by side in one process, alternating:

* ``table pass``: the trials are written finished, one journal entry each
  (``run_search(..., table_pass=True)``, the default);
* ``loop``: the same search with ``table_pass=False``, so that every trial goes
  through the ask / record / tell loop (about 14 journal entries a trial).

It checks that both leave the same study (every trial's number, state, parameters,
values, record and constraints) and prints the wall times, their ratio, the journal
entries per trial and the machine's load.

One command::

    .venv/bin/python benchmarks/brute_force_search.py              # 13,824 configurations, 2 rounds
    .venv/bin/python benchmarks/brute_force_search.py --widths 2,3,4,5,6,8 --data-widths 8 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

TOML = textwrap.dedent(
    """
    model = "mlp"
    dataset = "digits"
    seed = 0
    project = "brute-force-bench"

    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "type"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.linear.config]
    name = ["integer"]
    data_in_width = {data_widths}
    weight_width = {widths}
    bias_width = [8]

    [search.strategy]
    name = "brute_force"
    [search.strategy.sw_runner.basic_evaluation]
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 1000000
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    """
)


def _contents(run_dir: Path, name: str) -> list[tuple[Any, ...]]:
    from bitscout.study._index import RECORD_ATTR
    from bitscout.study._worker_storage import open_storage

    store, _ = open_storage(None, run_dir)
    study = optuna.load_study(study_name=name, storage=store)
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = dict(t.user_attrs)
        record = dict(attrs.pop(RECORD_ATTR, {}))
        record.pop("duration_s", None)  # a measured time
        rows.append((t.number, t.state, t.params, t.values, record, attrs, t.constraints))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="2,3,4,5,6,8", help="weight widths of each of the MLP's 3 layers")
    parser.add_argument("--data-widths", default="3,4,6,8", help="input widths of each layer")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two ways")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # the config's MASE-sign advice, printed by `search`

    from bitscout.config import ConfigOverrides, load_config
    from bitscout.study import prepare_search

    widths = [int(w) for w in args.widths.split(",")]
    data_widths = [int(w) for w in args.data_widths.split(",")]
    walls: dict[str, list[float]] = {"table pass": [], "loop": []}
    entries: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "bf.toml"
        config_path.write_text(TOML.format(widths=widths, data_widths=data_widths))
        contents: dict[str, list[tuple[Any, ...]]] = {}
        size = 0
        for r in range(args.rounds):
            order = ("table pass", "loop") if r % 2 == 0 else ("loop", "table pass")
            for way in order:
                run_dir = Path(tmp) / f"{way.replace(' ', '-')}-{r}"
                prepared = prepare_search(load_config(config_path, ConfigOverrides(out=run_dir)))
                size = prepared.space.distinct_size
                start = time.perf_counter()
                result = prepared.run(progress=False, write_outputs=False, table_pass=way == "table pass")
                walls[way].append(time.perf_counter() - start)
                assert result.n_unique == size, (way, result.n_unique, size)
                entries[way] = len((run_dir / "study.journal").read_bytes().splitlines())
                contents.setdefault(way, _contents(run_dir, result.study_name))
        same = contents["table pass"] == contents["loop"]
    load = os.getloadavg()[0]
    print(f"brute-force search of the digits MLP: {size:,} configurations (weight widths {widths}, input widths {data_widths}), "
          f"each way {args.rounds}x, alternating; load average {load:.1f}")
    for way, values in walls.items():
        print(f"  {way:10s}  {statistics.median(values):6.1f} s wall (runs: {', '.join(f'{v:.1f}' for v in values)}); "
              f"{entries[way] / size:.1f} journal entries per trial")
    ratio = statistics.median(walls["loop"]) / statistics.median(walls["table pass"])
    print(f"  loop / table pass: {ratio:.2f}x; the same study both ways: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
