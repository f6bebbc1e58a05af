"""Checkpoint series in pytest: `--mc-series NAME=DIR` parametrizes every claim test whose claim
model is NAME once per checkpoint (mechcheck.models.series.discover; ids `step0250`, ...), the
model loader asks `checkpoint_for(request, NAME)` which checkpoint the running test is on, and
each record carries its `step` (the report's series sections: mechcheck.report.series).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mechcheck.core.warning import MechcheckWarning

from mechcheck.models.series import Checkpoint, SeriesError, parse
from mechcheck.pytest_plugin.state import claim_of, run_state

ARG = "mc_series_step"  # the (indirect) parametrization a series adds to a claim test

def checkpoint_for(where, name: str) -> Path | None:
    """The series checkpoint of model `name` that the running test is on, or None (not a series
    run). `where`: the test's item or request; a session-scoped fixture's request also works
    (the test now running is used)."""
    node = getattr(where, "node", where)
    if getattr(node, "callspec", None) is None:
        node = run_state(node.config).current
    cp = _step_of(node)
    return cp.path if cp is not None and cp.name == name else None


def _step_of(item) -> Checkpoint | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    cp = params.get(ARG)
    return cp if isinstance(cp, Checkpoint) else None


class Plugin:
    """The series part of the pytest plugin (registered by mechcheck.pytest_plugin.hooks)."""

    def __init__(self, config):
        with warnings.catch_warnings(record=True) as caught:  # discovery's warnings, shown as pytest shows config-time ones
            warnings.simplefilter("always", MechcheckWarning)
            try:
                self.series = parse(config.getoption("mc_series", None) or [])
            except SeriesError as exc:
                raise pytest.UsageError(str(exc)) from None
        for w in caught:
            config.issue_config_time_warning(w.message, stacklevel=2)
        self.unreachable: set[str] = set()

    def pytest_generate_tests(self, metafunc):
        c = claim_of(metafunc.definition)
        cps = self.series.get(c.model) if c is not None else None
        if cps:
            if "mc_load" not in metafunc.fixturenames and ARG not in metafunc.fixturenames:
                self.unreachable.add(metafunc.definition.nodeid)  # fails at set-up, one line
            # the pytest-repeat way of parametrizing a test by a fixture it does not name;
            # session scope groups the tests by checkpoint, so one checkpoint is loaded at a time
            metafunc.fixturenames.append(ARG)
            metafunc.parametrize(ARG, cps, ids=[c.id for c in cps], indirect=True, scope="session")

    def pytest_itemcollected(self, item):
        cp = _step_of(item)
        if cp is not None:  # one xdist group per (model, checkpoint): mechcheck.pytest_plugin.scheduling
            item.add_marker(pytest.mark.xdist_group(f"{cp.name.replace('/', '_')}:{cp.id}"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        """A claim on a series model that loads its model itself (neither the mc_load loader nor
        the mc_series_step fixture) would silently run on its usual checkpoint: an error instead."""
        cp = _step_of(item)
        if cp is not None and item.nodeid.split("[", 1)[0] in self.unreachable:
            pytest.fail(f"--mc-series {cp.name}: this test loads its model itself (not through mc_load or "
                        "mc_series_step), so it cannot run on the series", pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outside mechcheck.pytest_plugin.hooks's: its record exists
    def pytest_runtest_makereport(self, item, call):
        rep = yield
        cp = _step_of(item)
        if cp is not None and rep.when == "teardown":
            for key, record in rep.user_properties:
                if key == "mechcheck" and record.get("nodeid") == item.nodeid:
                    record["step"] = cp.step
        return rep
