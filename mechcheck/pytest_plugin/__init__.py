"""mechcheck in pytest: the plugin (hooks, registered through the `pytest11` entry point), its
fixtures, the records it writes, checkpoint series and parallel scheduling.

The public part a claim file may use is here; everything else in this package is the plugin's own.
Fixtures a claim file requests: `measure`, `mc_device`, `mc_data`, `mc_shared`, `mc_tokenizer`,
`mc_load`, `mc_ioi_names`, `mc_series_step` (mechcheck.pytest_plugin.fixtures).
"""

from __future__ import annotations

from pathlib import Path

from mechcheck.pytest_plugin.series import ARG as SERIES_ARG  # noqa: F401  (the parametrization a series adds)
from mechcheck.pytest_plugin.state import run_state


def checkpoint_override(config, name: str) -> Path | None:
    """The checkpoint a user gave with `--mc-model NAME=PATH` for model `name`, or None. For a
    claim file's pytest_generate_tests (which gets no fixtures)."""
    return run_state(config).overrides.get(name)


def series_given(config, name: str) -> bool:
    """Whether `--mc-series` runs model `name` over a checkpoint series (a claim file that
    parametrizes its own checkpoints leaves that to the series then)."""
    plugin = config.pluginmanager.get_plugin("mechcheck-series")
    return plugin is not None and name in plugin.series
