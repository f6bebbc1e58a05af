"""A claim about your own model: it has an induction head in layer 1 (Olsson et al. 2022).

Run it on your checkpoint (a Hugging Face folder, any architecture TransformerLens boots):
    pytest examples/test_induction_head.py --mc-model my-model=/path/to/your/checkpoint
or put a hub id in MODEL (e.g. "EleutherAI/pythia-70m") and run it without --mc-model.
The controls are mechcheck's 2-layer induction organism (trained: an induction head in layer 1)
and its architecture with random weights (none): they show the measurement can say both at
LAYER = 1. A claim about another layer needs control models with a head there.
"""

from functools import partial

import pytest

from mechcheck.core.claim import OBSERVATIONAL, Claim, Source, at_least
from mechcheck.core.stats import bootstrap_ci
from mechcheck.metrics import head_detection_scores
from mechcheck.studies.induction_organism import RANDOM, TRAINED

MODEL = "my-model"  # a hub id, a local folder, or any name you give a checkpoint with --mc-model
LAYER = 1


def best_induction_head(bridge, layer: int, batch: int, half: int) -> dict:
    """The best head of `layer` by induction score (attention on the token after the earlier copy)
    on `batch` random sequences of `half` tokens repeated once; CI: bootstrap over the sequences."""
    scores = head_detection_scores(bridge, batch=batch, half=half)["induction"][layer]  # [sequences, heads]
    head = int(scores.mean(0).argmax())
    return dict(value=float(scores[:, head].mean()), ci=bootstrap_ci(scores[:, head].cpu()), n=scores.shape[0],
                head=f"L{layer}H{head}")


INDUCTION_HEAD = Claim(
    id="my.induction", model=MODEL,
    statement=f"Layer {LAYER} has an induction head",
    source=Source("Olsson et al. 2022, In-context Learning and Induction Heads", "definition of induction heads"),
    published="an induction head", expect=at_least(0.3),
    tolerance="best head's induction score >= 0.3 (no published number; the IOI thesis' induction-head threshold)",
    measure=partial(best_induction_head, layer=LAYER, batch=16, half=24), evidence=OBSERVATIONAL,
    controls=[TRAINED, RANDOM],
)


@pytest.mark.claim(INDUCTION_HEAD)
def test_induction_head(mc_load, measure):
    measure.run(mc_load(MODEL))
