"""The fixtures a claim file uses: `measure`, the device, the data directory, the session-shared
computation store, the tokenizer and the model loader (registered by mechcheck.pytest_plugin.hooks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mechcheck.models import finite
from mechcheck import models as _models
from mechcheck.data import DataError, gpt2_tokenizer, ioi_prompts
from mechcheck.pytest_plugin import series as _series
from mechcheck.pytest_plugin.state import MEASUREMENT, run_state
from mechcheck.pytest_plugin.records import Measurement


@pytest.fixture
def measure(request) -> Measurement:
    """Record the measured value(s) of this claim; pass/fail is decided by the plugin."""
    m = Measurement()
    request.node.stash[MEASUREMENT] = m
    return m


@pytest.fixture(scope="session")
def mc_device(pytestconfig) -> str:
    return run_state(pytestconfig).device


@pytest.fixture(scope="session")
def mc_data(pytestconfig) -> Path | None:
    return run_state(pytestconfig).data


@pytest.fixture(scope="session")
def mc_ioi_names(pytestconfig) -> tuple[str, ...]:
    """The names of the IOI prompt set: `--mc-ioi-names` (validated at start) or the default set."""
    return run_state(pytestconfig).ioi_names or ioi_prompts.NAMES


@pytest.fixture(scope="session")
def mc_shared(pytestconfig):
    """shared(key, build): one computation per key per session (a model's forward pass over an
    input set, read by every claim on it); with --mc-no-shared-cache, build() on every call."""
    store: dict = {}
    off = pytestconfig.getoption("mc_no_shared_cache")

    def shared(key, build):
        if off:
            return build()
        if key not in store:
            store[key] = build()
        return store[key]

    return shared


@pytest.fixture(scope="session")
def mc_tokenizer(mc_data):
    return gpt2_tokenizer(mc_data)


@pytest.fixture(scope="session")
def mc_load(pytestconfig, mc_device, request):
    """load(name, compat=True) -> LoadedModel, once per session, name and mode; skips when the
    checkpoint is unreachable. compat=True gives HookedTransformer numerics (folded LayerNorm,
    centred writing weights); compat=False the raw HF weights."""
    cache: dict[str, object] = {}
    overrides = run_state(pytestconfig).overrides

    def load(name: str, compat: bool = True) -> _models.LoadedModel:
        step_path = _series.checkpoint_for(request, name)  # the series checkpoint of this test, if any
        key = (name, compat, step_path)
        if key not in cache:
            for old in [k for k in cache if step_path and k[0] == name and k[2]]:
                del cache[old]  # one checkpoint of a series in memory at a time
            try:
                path = _models.resolve_hf(name, step_path or overrides.get(name))
                tok = request.getfixturevalue("mc_tokenizer")
                cache[key] = _models.load_hf(name, path, mc_device, tok, compat=compat)
            except (_models.ModelError, DataError) as exc:
                cache[key] = exc
            else:
                finite.watch(cache[key].bridge, name)
        got = cache[key]
        if isinstance(got, _models.CheckpointUnavailable):
            pytest.skip(str(got))
        if isinstance(got, Exception):
            raise got
        return got

    return load
