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

O1.phase is decided once per series (the rise of O1's score over training), not per checkpoint: by
default on the shipped series (or a --mc-model folder); under --mc-series the plugin gives it one
case per checkpoint, and it is decided at the last one over the whole series (the others skip,
each saying so).
"""

from __future__ import annotations

import hashlib
from functools import partial

import pytest

from mechcheck.studies import induction_organism
from mechcheck.studies.induction_organism import (ABRUPT, LINEAR, NEVER, ONE_LAYER, PATTERN_PLANTED, RANDOM,
                                                  TRAINED)
from mechcheck.models import organisms
from mechcheck.models import series
from mechcheck.pytest_plugin import SERIES_ARG, checkpoint_override, series_given
from mechcheck.core.claim import INTERVENTIONAL, OBSERVATIONAL, Claim, Measure, Source, at_least
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


O2_KCOMP = Claim(
    id="O2.kcomp", model=INDUCTION_ORGANISM,
    statement="Layer 1's induction head reads the layer-0 previous-token head through its keys (K-composition): "
    "removing that head's output from the key input alone removes the induction score",
    source=SRC, published="K-composition with a previous-token head (Olsson et al.; thesis l.458: 'The induction "
    "head keys are made by looking at the information copied in from a previous token head in an earlier layer')",
    expect=at_least(0.0),
    tolerance="'removes' = the best layer-1 head is an induction head (>= 0.3, O1's threshold) and falls below 0.3 "
    "when the best layer-0 previous-token head's output (z @ W_O) is mean-ablated (over the 16 sequences and all "
    "positions) in its key input only, queries and values untouched; value min(s_clean - 0.3, 0.3 - s_k) (both "
    "parts must hold), bootstrap CI over the 16 sequences; the same ablation into the query (Q-composition) and "
    "the value is recorded in details. Olsson et al. give no number",
    measure=Measure(induction_organism.k_composition),
    evidence=INTERVENTIONAL, controls=[TRAINED, RANDOM, PATTERN_PLANTED],
)


@pytest.mark.claim(O2_KCOMP)
def test_o2_k_composition(model, measure):
    measure.run(model)


@pytest.fixture(scope="module")
def phase_series(request, pytestconfig, mc_load):
    """(step, model) of the whole series O1.phase times: --mc-series, a --mc-model folder, or the
    shipped series; the last checkpoint through mc_load (it is the record's model). Under --mc-series
    only its last checkpoint's case measures (the others skip, saying why)."""
    given = pytestconfig.getoption("mc_series", None) or []
    if series_given(pytestconfig, INDUCTION_ORGANISM):
        cps = series.parse([v for v in given if v.partition("=")[0] == INDUCTION_ORGANISM])[INDUCTION_ORGANISM]
    else:
        override = checkpoint_override(pytestconfig, INDUCTION_ORGANISM)
        if override is not None and not override.is_dir():
            pytest.skip("a phase change needs a checkpoint series: give --mc-series "
                        f"{INDUCTION_ORGANISM}=DIR (or --mc-model {INDUCTION_ORGANISM}=DIR)")
        cps = series.discover(override or organisms.SERIES_DIR, INDUCTION_ORGANISM)
    return cps


O1_PHASE = Claim(
    id="O1.phase", model=INDUCTION_ORGANISM,
    statement="The layer-1 induction score of the induction organism rises abruptly during training (phase change): "
    "at least 80% of its total rise happens within a quarter of training",
    source=SRC, published="induction heads form in a phase change (a narrow window of training; no share given)",
    expect=at_least(0.8),
    tolerance="Olsson et al. describe a phase change confined to a narrow window of training and give no share. "
    "'Abrupt' = at least 80% of the rise of the layer-1 induction score (best head, O1's measure) from the first to "
    "the last checkpoint falls inside one window of a quarter of training (a linear rise puts 25% in any quarter, "
    "so the check requires more than 3x the concentration of a gradual rise); the window is converted to the "
    "checkpoint intervals of the series it spans (shipped: every 250 of 2000 steps, 2 intervals); a series with "
    "fewer than 5 checkpoints or an interval longer than a quarter of training is one error ('series too coarse'). "
    "The induction head must have formed (last score >= 0.3, O1's threshold). Bootstrap CI over the 16 sequences, "
    "the same ones resampled at every checkpoint. The loss bump that accompanies the phase change is not checked "
    "(no per-step loss is shipped)",
    measure=Measure(induction_organism.phase_change, on=induction_organism.series_scores),
    evidence=OBSERVATIONAL, controls=[ABRUPT, LINEAR, NEVER],
)


@pytest.mark.claim(O1_PHASE)
def test_o1_phase_change(request, phase_series, mc_load, mc_device, measure):
    step = getattr(request.node, "callspec", None) and request.node.callspec.params.get(SERIES_ARG)
    if step is not None and step.path != phase_series[-1].path:
        pytest.skip(f"O1.phase is decided once over the whole series, at its last checkpoint ({phase_series[-1].id})")
    models = [(cp.step, organisms.load_induction(cp.path, mc_device)) for cp in phase_series[:-1]]
    last = mc_load(INDUCTION_ORGANISM, checkpoint=phase_series[-1].path)
    measure.model = last
    pairs = models + [(phase_series[-1].step, last)]
    digest = hashlib.sha256(" ".join(m.sha256 for _, m in pairs).encode()).hexdigest()
    measure.run(induction_organism.Series(pairs, sha256=f"series:{digest}"))
