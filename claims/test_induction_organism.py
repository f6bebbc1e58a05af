"""The classic induction-head result (Olsson et al. 2022; the thesis' §3.3 head scores) on the
induction organism trained here (mechcheck.organisms): a 2-layer attention-only transformer
trained on repeated random segments at random offsets.

This is the regression use on real checkpoints: the claims run over the organism's training
series (fixtures/organisms/induction-series, every 250 steps) and the report's "Checkpoint
series" table shows the step at which each claim flips (the phase change). Point it at your own
series or checkpoint with --mc-model mechcheck/induction-organism=DIR_OR_FILE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mechcheck import organisms, series
from mechcheck.claim import Source, at_least
from mechcheck.metrics import head_scores
from mechcheck.models import INDUCTION_ORGANISM, LoadedModel, sha256_of
from mechcheck.stats import bootstrap_ci
from mechcheck.plugin import run_state

SRC = Source("thesis-ioi-circuits-tinystories-8M.txt", "§3.3 head scores; Olsson et al. 2022 (cited there)")


def _checkpoints(override: Path | None) -> list[tuple[str, Path]]:
    if override is None:
        return [(f"step{step:04d}", path) for step, path in organisms.series()]
    if override.is_dir():
        return [(f"step{step:04d}", path) for step, path in organisms.series(override)]
    return [("checkpoint", override)]


def pytest_generate_tests(metafunc):
    if "checkpoint" in metafunc.fixturenames and not series.given(metafunc.config, INDUCTION_ORGANISM):
        found = _checkpoints(run_state(metafunc.config).overrides.get(INDUCTION_ORGANISM))
        metafunc.parametrize("checkpoint", [p for _, p in found], ids=[i for i, _ in found], scope="module")


@pytest.fixture(scope="module")
def checkpoint(mc_series_step):  # with --mc-series mechcheck/induction-organism=DIR
    return mc_series_step.path


@pytest.fixture(scope="module")
def scores(checkpoint, mc_device):
    model = organisms.load(Path(checkpoint), organisms.INDUCTION)
    bridge = organisms.bridge(model, device=mc_device)
    loaded = LoadedModel(INDUCTION_ORGANISM, bridge, str(checkpoint), sha256_of([Path(checkpoint)]), mc_device)
    return loaded, {k: v.cpu().numpy() for k, v in head_scores.head_scores(bridge, batch=16, half=24).items()}


@pytest.mark.claim(
    id="O1", model=INDUCTION_ORGANISM,
    statement="A 2-layer attention-only model trained on repeated segments has an induction head in layer 1",
    source=SRC, published="induction heads form (phase change)", expect=at_least(0.3),
    tolerance="max induction score in layer 1 >= 0.3 (the IOI claims' induction-head threshold)",
)
def test_o1_induction_head(scores, measure):
    _record_best_in_layer(measure, scores, "induction", layer=1)


def _record_best_in_layer(measure, scores, score: str, layer: int):
    """The best head of `layer` for `score`, with its CI over the random sequences."""
    loaded, s = scores
    measure.model = loaded
    per_seq = s[score][layer]  # [batch, heads]
    head = int(per_seq.mean(0).argmax())
    measure.record(per_seq.mean(0).max(), ci=bootstrap_ci(per_seq[:, head]), n=per_seq.shape[0],
                   head=f"L{layer}H{head}", head_map=s[score].mean(1))


@pytest.mark.claim(
    id="O2", model=INDUCTION_ORGANISM,
    statement="... and a previous-token head in layer 0 (the K-composition partner)",
    source=SRC, published="previous-token head in layer 0", expect=at_least(0.5),
    tolerance="max previous-token score in layer 0 >= 0.5",
)
def test_o2_previous_token_head(scores, measure):
    _record_best_in_layer(measure, scores, "previous_token", layer=0)
