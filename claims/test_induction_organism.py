"""The classic induction-head result of Olsson et al. 2022 ("In-context Learning and Induction
Heads", Transformer Circuits Thread), restated in the thesis (§2.3.8, §3.3) as context, on the
induction organism trained here (mechcheck.models.organisms): a 2-layer attention-only transformer
trained on repeated random segments at random offsets.

This is the regression use on real checkpoints: by default the claims run over the organism's
shipped training series (fixtures/organisms/induction-series, every 250 steps) as one case of
mechcheck.pytest_plugin.series, as if `--mc-series mechcheck/induction-organism=<that folder>` were given: each
record carries its step, the report's series sections plot the phase change, and the headline
counts the last checkpoint. Point them at your own series with --mc-series (or --mc-model DIR),
or at one checkpoint file with --mc-model mechcheck/induction-organism=FILE.
"""

from __future__ import annotations

from functools import partial

import pytest

from mechcheck.studies import induction_organism
from mechcheck.studies.induction_organism import ONE_LAYER, RANDOM, TRAINED
from mechcheck.models import organisms
from mechcheck.models import series
from mechcheck.pytest_plugin import SERIES_ARG, checkpoint_override, series_given
from mechcheck.core.claim import OBSERVATIONAL, Claim, Measure, Source, at_least
from mechcheck.models import INDUCTION_ORGANISM

SRC = Source("Olsson et al. 2022, In-context Learning and Induction Heads (Transformer Circuits Thread)",
             "Argument 1 (induction heads form in a phase change early in training, also in small attention-only "
             "models) and the definition of induction heads (K-composition with a previous-token head); context: "
             "thesis §2.3.8 and §3.3, which restate it")


def pytest_generate_tests(metafunc):
    """The shipped series (or a --mc-model folder) goes through mechcheck.pytest_plugin.series; a --mc-model
    file is one checkpoint without a step. With --mc-series the series plugin parametrizes."""
    if "checkpoint" not in metafunc.fixturenames or series_given(metafunc.config, INDUCTION_ORGANISM):
        return
    override = checkpoint_override(metafunc.config, INDUCTION_ORGANISM)
    if override is not None and not override.is_dir():
        metafunc.parametrize("checkpoint", [override], ids=["checkpoint"], scope="module")
        return
    try:
        cps = series.discover(override or organisms.SERIES_DIR, INDUCTION_ORGANISM)
    except series.SeriesError as exc:  # one error per claim, with the reason (never an empty run)
        metafunc.parametrize("checkpoint", [exc], ids=["checkpoint"], scope="module")
        return
    metafunc.parametrize(SERIES_ARG, cps, ids=[c.id for c in cps], indirect=True, scope="session")


@pytest.fixture(scope="module")
def checkpoint(mc_series_step):
    return mc_series_step.path


@pytest.fixture
def model(checkpoint, mc_load):
    """One checkpoint (its head scores are computed once and read by both claims: Measure.on)."""
    if isinstance(checkpoint, Exception):
        raise checkpoint
    return mc_load(INDUCTION_ORGANISM, checkpoint=checkpoint)


O1 = Claim(
    id="O1", model=INDUCTION_ORGANISM,
    statement="A 2-layer attention-only model trained on repeated segments has an induction head in layer 1",
    source=SRC, published="induction heads form (phase change)", expect=at_least(0.3),
    tolerance="Olsson et al. give no score threshold; max induction score in layer 1 >= 0.3 (the thesis' "
    "induction-head threshold, used by the IOI claims)",
    measure=Measure(partial(induction_organism.best_in_layer, score="induction", layer=1), on=induction_organism.scores),
    evidence=OBSERVATIONAL, controls=[TRAINED, RANDOM],
)


@pytest.mark.claim(O1)
def test_o1_induction_head(model, measure):
    measure.run(model)


O2 = Claim(
    id="O2", model=INDUCTION_ORGANISM,
    statement="... and a previous-token head in layer 0 (the K-composition partner)",
    source=SRC, published="previous-token head in layer 0", expect=at_least(0.5),
    tolerance="max previous-token score in layer 0 >= 0.5",
    measure=Measure(partial(induction_organism.best_in_layer, score="previous_token", layer=0),
                    on=induction_organism.scores),
    evidence=OBSERVATIONAL, controls=[TRAINED, ONE_LAYER, RANDOM],
)


@pytest.mark.claim(O2)
def test_o2_previous_token_head(model, measure):
    measure.run(model)
