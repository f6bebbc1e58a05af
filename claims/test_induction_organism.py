"""The classic induction-head result (Olsson et al. 2022; the thesis' §3.3 head scores) on the
induction organism trained here (mechcheck.organisms): a 2-layer attention-only transformer
trained on repeated random segments at random offsets.

This is the regression use on real checkpoints: the claims run over the organism's training
series (fixtures/organisms/induction-series, every 250 steps) and the report's "Checkpoint
series" table shows the step at which each claim flips (the phase change). Point it at your own
series or checkpoint with --mc-model mechcheck/induction-organism=DIR_OR_FILE.
"""

from __future__ import annotations

import pytest

from mechcheck import induction_organism, organisms, series
from mechcheck.claim import Source, at_least
from mechcheck.models import INDUCTION_ORGANISM, CheckpointError
from mechcheck.plugin import run_state

SRC = Source("thesis-ioi-circuits-tinystories-8M.txt", "§3.3 head scores; Olsson et al. 2022 (cited there)")


def pytest_generate_tests(metafunc):
    if "checkpoint" in metafunc.fixturenames and not series.given(metafunc.config, INDUCTION_ORGANISM):
        try:
            found = organisms.checkpoints_of(run_state(metafunc.config).overrides.get(INDUCTION_ORGANISM))
        except CheckpointError as exc:  # one error per claim, with the reason (never an empty run)
            found = [("checkpoint", exc)]
        metafunc.parametrize("checkpoint", [p for _, p in found], ids=[i for i, _ in found], scope="module")


@pytest.fixture(scope="module")
def checkpoint(mc_series_step):  # with --mc-series mechcheck/induction-organism=DIR
    return mc_series_step.path


@pytest.fixture(scope="module")
def scores(checkpoint, mc_device):
    """(LoadedModel, head scores) of one checkpoint."""
    if isinstance(checkpoint, CheckpointError):
        raise checkpoint
    loaded = organisms.load_induction(checkpoint, mc_device)
    return loaded, induction_organism.scores(loaded.bridge)


@pytest.fixture
def s(scores, measure):
    measure.model = scores[0]
    return scores[1]


@pytest.mark.claim(
    id="O1", model=INDUCTION_ORGANISM,
    statement="A 2-layer attention-only model trained on repeated segments has an induction head in layer 1",
    source=SRC, published="induction heads form (phase change)", expect=at_least(0.3),
    tolerance="max induction score in layer 1 >= 0.3 (the IOI claims' induction-head threshold)",
)
def test_o1_induction_head(s, measure):
    measure.record(**induction_organism.best_in_layer(s, "induction", layer=1))


@pytest.mark.claim(
    id="O2", model=INDUCTION_ORGANISM,
    statement="... and a previous-token head in layer 0 (the K-composition partner)",
    source=SRC, published="previous-token head in layer 0", expect=at_least(0.5),
    tolerance="max previous-token score in layer 0 >= 0.5",
)
def test_o2_previous_token_head(s, measure):
    measure.record(**induction_organism.best_in_layer(s, "previous_token", layer=0))
