"""A claim about your own model: it has an induction head in layer 1 (Olsson et al. 2022).

Run it on your checkpoint (a Hugging Face folder, any architecture TransformerLens boots):
    pytest examples/test_induction_head.py --mc-model my-model=/path/to/your/checkpoint
or put a hub id in MODEL (e.g. "EleutherAI/pythia-70m") and run it without --mc-model.
"""

import pytest

from mechcheck.core.claim import Source, at_least
from mechcheck.core.stats import bootstrap_ci
from mechcheck.metrics import head_detection_scores

MODEL = "my-model"  # a hub id, a local folder, or any name you give a checkpoint with --mc-model
LAYER = 1


@pytest.mark.claim(
    id="my.induction", model=MODEL,
    statement=f"Layer {LAYER} has an induction head",
    source=Source("Olsson et al. 2022, In-context Learning and Induction Heads", "definition of induction heads"),
    published="an induction head", expect=at_least(0.3),
    tolerance="best head's induction score (attention on the token after the earlier copy) >= 0.3",
)
def test_induction_head(mc_load, measure):
    bridge = mc_load(MODEL).bridge
    scores = head_detection_scores(bridge, batch=16, half=24)["induction"][LAYER]  # [sequences, heads]
    head = int(scores.mean(0).argmax())
    measure.record(scores[:, head].mean(), ci=bootstrap_ci(scores[:, head].cpu()), n=scores.shape[0],
                   head=f"L{LAYER}H{head}")
