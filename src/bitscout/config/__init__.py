"""bitscout's config: a TOML file (MASE's search schema, or bitscout's superset) parsed
once into frozen, validated objects.

Typical use::

    from bitscout.config import ConfigOverrides, load_config

    config = load_config("configs/jsc_tiny_lab.toml", ConfigOverrides(n_trials=50))
    config.search.strategy.setup.n_trials   # 50
    config.strategy_name                    # "tpe"
    print(config.to_toml())                 # the resolved config, in MASE's table shape

Every invalid value is reported in one :class:`bitscout.errors.ConfigError`, one line per
problem, naming the file, the TOML path, the rule and the value received. MASE keys that
mean nothing in bitscout (``log_every_n_steps``, ``project_dir``, ``[transform]``, ...)
give one :class:`BitscoutConfigWarning` each and are dropped.
"""

from bitscout.config._loader import (
    BitscoutConfigWarning,
    ConfigOverrides,
    apply_overrides,
    load_config,
    parse_config,
)
from bitscout.config._constraints import SIZE_UNITS, ConstraintSpec, parse_size
from bitscout.config._inputs import (
    CONFIG_MARKER,
    PLOT_SOFTWARE,
    check_compare_outputs_are_ours,
    check_outputs_are_ours,
    check_outputs_spare_inputs,
)
from bitscout.config._mase import IGNORED_KEYS, IGNORED_SETUP_KEYS
from bitscout.config.schema import (
    HARDWARE_RUNNERS,
    SOFTWARE_RUNNERS,
    Config,
    MetricSpec,
    Passes,
    QuantizePass,
    Search,
    SearchSpaceConfig,
    Setup,
    StrategyConfig,
)

__all__ = [
    "Config",
    "Passes",
    "QuantizePass",
    "Search",
    "SearchSpaceConfig",
    "StrategyConfig",
    "Setup",
    "MetricSpec",
    "ConstraintSpec",
    "SIZE_UNITS",
    "parse_size",
    "ConfigOverrides",
    "BitscoutConfigWarning",
    "load_config",
    "parse_config",
    "apply_overrides",
    "check_outputs_spare_inputs",
    "check_outputs_are_ours",
    "check_compare_outputs_are_ours",
    "CONFIG_MARKER",
    "PLOT_SOFTWARE",
    "SOFTWARE_RUNNERS",
    "HARDWARE_RUNNERS",
    "IGNORED_KEYS",
    "IGNORED_SETUP_KEYS",
]
