"""Claims of the tutorial "From Zero to (Mechanistic) Interpretability"
(../shared/seeds/tutorial-toy-reverse-increment.txt): a 1-layer, d_model=4 transformer trained on
[BOS, x0..x7, y0..y7] with y = reversed(x) + 1 mod 4.

Parametrized over training seeds 0, 1, 2 (checkpoints shipped in fixtures/, retrained and cached
if missing), or over the one checkpoint given with --mc-model mechcheck/toy-reverse-increment=PATH.
"""

from __future__ import annotations

import pytest

from mechcheck import toy, toy_circuit
from mechcheck.claim import Source, at_least
from mechcheck.models import TOY
from mechcheck.plugin import run_state

DOC = "tutorial-toy-reverse-increment.txt"
SEEDS = [0, 1, 2]


def pytest_generate_tests(metafunc):
    if "toy_run" in metafunc.fixturenames:
        override = run_state(metafunc.config).overrides.get(TOY)
        params = [str(override)] if override else SEEDS
        ids = ["checkpoint"] if override else [f"seed{s}" for s in SEEDS]
        metafunc.parametrize("toy_run", params, ids=ids, indirect=True, scope="module")


@pytest.fixture(scope="module")
def toy_run(request, mc_device):
    """(LoadedModel, training seed or None) for a seed's checkpoint or the --mc-model one."""
    if isinstance(request.param, int):
        seed, path = request.param, toy.get_checkpoint(toy.TrainConfig(seed=request.param))
    else:
        seed, path = None, request.param
    return toy.load(path, mc_device), seed


@pytest.fixture
def run(toy_run, measure, mc_shared, mc_device):
    """The holdout forward pass of this checkpoint, shared by every claim on it."""
    loaded, seed = toy_run
    measure.model, measure.seed = loaded, seed
    return mc_shared(("toy", loaded.sha256), lambda: toy_circuit.ToyRun(loaded.bridge, mc_device))


@pytest.mark.claim(
    id="T1", model=TOY,
    statement="The trained toy model reaches 100% accuracy on the 5536 holdout sequences",
    source=Source(DOC, "A Tiny Transformer Configuration; Ablation ('Original accuracy: 100.00%')"),
    published=1.0, expect=at_least(0.99),
    tolerance="published 100.00%; we allow 1 pp (per-token accuracy on y0..y7) for seed-to-seed noise",
)
def test_t1_holdout_accuracy(run, measure):
    measure.record(**toy_circuit.holdout_accuracy(run, seed=measure.seed))


@pytest.mark.claim(
    id="T2", model=TOY,
    statement="Each output position y_i attends mostly to the reversed input x_{7-i}",
    source=Source(DOC, "Peeking Under the Hood: Attention Patterns (attention matrix, y0 -> x7 ... y7 -> x0)"),
    published="diagonal; sample weights 0.63-0.95", expect=at_least(0.5),
    tolerance="'mostly' = more than half of the attention, averaged over holdout sequences and the 8 outputs",
)
def test_t2_attends_to_reversed_input(run, measure):
    measure.record(**toy_circuit.reversed_attention(run))


@pytest.mark.claim(
    id="T3", model=TOY,
    statement="Zeroing the MLP W_out drops holdout accuracy (100.00% -> 17.67% in the tutorial)",
    source=Source(DOC, "Ablation: Verifying Both Parts Matter"),
    published="drop 0.8233 (to 0.1767)", expect=at_least(0.4),
    tolerance="measured as the accuracy drop; the published drops are 82.3 pp (MLP) and 70.8 pp (attention) "
    "on an unshuffled holdout slice, so we require >= 40 pp, about half the smaller one",
)
def test_t3_mlp_ablation(run, measure):
    measure.record(**toy_circuit.ablation_drop(run, "mlp.W_out"))


@pytest.mark.claim(
    id="T4", model=TOY,
    statement="Zeroing the attention W_O drops holdout accuracy (100.00% -> 29.19% in the tutorial)",
    source=Source(DOC, "Ablation: Verifying Both Parts Matter"),
    published="drop 0.7081 (to 0.2919)", expect=at_least(0.4),
    tolerance="as T3: accuracy drop >= 40 pp",
)
def test_t4_attention_ablation(run, measure):
    measure.record(**toy_circuit.ablation_drop(run, "attn.W_O"))


@pytest.mark.claim(
    id="T5", model=TOY,
    statement="The MLP performs the +1: many output positions get the target as argmax only after the MLP",
    source=Source(DOC, "MLP: The Non-Linear Transformation (Before MLP / After MLP, sample 0)"),
    published=0.5, expect=at_least(0.25),
    tolerance="in the tutorial's printed sample 2 of the 4 shown positions (0.5) become right only after "
    "the MLP; we require at least half of that share over the holdout set",
)
def test_t5_mlp_does_increment(run, measure):
    measure.record(**toy_circuit.mlp_increment(run))
