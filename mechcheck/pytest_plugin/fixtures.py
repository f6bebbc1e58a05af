"""The fixtures a claim file uses: `measure`, the device, the data directory, the session-shared
computation store, the tokenizer and the model loader (registered by mechcheck.pytest_plugin.hooks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mechcheck import models as _models
from mechcheck.data import DataError, gpt2_tokenizer, ioi_prompts
from mechcheck.models import finite, organisms, toy, trained
from mechcheck.pytest_plugin import series as _series
from mechcheck.pytest_plugin.records import Measurement
from mechcheck.pytest_plugin.state import LOADED, MEASUREMENT, claim_of, model_name, run_state


@pytest.fixture
def measure(request) -> Measurement:
    """Record the measured value(s) of this claim; pass/fail is decided by the plugin."""
    m = Measurement()
    m.claim = claim_of(request.node)
    if m.claim is not None and m.claim.measure is not None:
        m.shared = request.getfixturevalue("mc_shared")
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
def mc_series_step(request):
    """The checkpoint (mechcheck.models.series.Checkpoint) of a series this test runs on: the
    parametrization `--mc-series` or a claim file adds (indirect, session scope: one checkpoint
    loaded at a time). A module-level fixture: pytest deprecates session fixtures on plugin objects."""
    return request.param


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
    """load(name, compat=True, checkpoint=None) -> LoadedModel, once per session, name, mode and
    checkpoint. The checkpoint is `checkpoint`, else the series step this test runs on, else the
    `--mc-model` override, else (hub models) the hub/HF cache; unreachable: the test skips with one
    reason. When `name` is the model the running claim measures, the loaded model is that claim's
    measured model (its identity goes into the record; no claim file sets it). compat=True gives
    HookedTransformer numerics (folded LayerNorm, centred writing weights); compat=False the raw
    HF weights. Any hub id or local HF folder loads (with its own tokenizer), and any name may be
    given a checkpoint mechcheck trained (a .safetensors file with its sidecar). HF checkpoints run
    in the `--mc-dtype` dtype. NaN/inf in any activation of a loaded model is watched from here on."""
    cache: dict[tuple, object] = {}
    state = run_state(pytestconfig)

    def resolve(name: str, compat: bool, checkpoint, step_path):
        want = _models.spec(name)
        kind = want.kind
        path = checkpoint or step_path or state.overrides.get(name)
        if kind == "hf" and not want.registered and path is not None and Path(path).is_file():
            return trained.load(name, Path(path), mc_device)  # a checkpoint trained here, under the user's name
        if kind == "hf":
            path = _models.resolve_hf(name, path)
            # the registered models share GPT-2's tokenizer (from --mc-data offline); any other its own
            tokenizer = request.getfixturevalue("mc_tokenizer") if want.registered else _models.own_tokenizer(path)
            return _models.load_hf(name, path, mc_device, tokenizer, compat=compat, dtype=state.dtype)
        if path is None:
            raise _models.CheckpointError(f"{name}: give its checkpoint (mc_load({name!r}, checkpoint=...) or --mc-model)")
        if kind == "toy":
            return toy.load(path, mc_device)
        return organisms.load_induction(path, mc_device)

    def load(name: str, compat: bool = True, checkpoint: Path | None = None) -> _models.LoadedModel:
        step_path = _series.checkpoint_for(request, name)  # the series checkpoint of this test, if any
        key = (name, compat, step_path, None if checkpoint is None else str(checkpoint))
        if key not in cache:
            for old in [k for k in cache if step_path and k[0] == name and k[2]]:
                del cache[old]  # one checkpoint of a series in memory at a time
            try:
                cache[key] = resolve(name, compat, checkpoint, step_path)
            except (_models.ModelError, DataError) as exc:
                cache[key] = exc
            else:
                finite.watch(cache[key].bridge, name)  # the one place a model is watched
        got = cache[key]
        if isinstance(got, _models.CheckpointUnavailable):
            pytest.skip(str(got))
        if isinstance(got, Exception):
            raise got
        item = state.current
        c = claim_of(item) if item is not None else None
        if c is not None and model_name(item, c) == name:
            item.stash[LOADED] = got
        return got

    return load
