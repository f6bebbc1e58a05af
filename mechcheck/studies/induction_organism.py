"""Measurements of the induction-organism claims (O1, O2: Olsson et al. 2022, the thesis' §3.3 head
scores) on one checkpoint of mechcheck.models.organisms' induction organism.

Why a module: the claim and its controls in tests/ call the same function. Each function returns
keyword arguments for `measure.record(...)`.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from mechcheck.core.claim import fmt_item, negative, positive
from mechcheck.core.result import Result
from mechcheck.metrics import head_scores
from mechcheck.core.stats import bootstrap_ci
from mechcheck.models import organisms

BATCH, HALF = 16, 24  # random sequences of 24 tokens repeated once (the organism's n_ctx is 64)


def scores(bridge) -> dict[str, np.ndarray]:
    """{score: [n_layers, batch, n_heads]} of the head scores on repeated random tokens."""
    return {k: v.cpu().numpy() for k, v in head_scores.head_scores(bridge, batch=BATCH, half=HALF).items()}


def best_in_layer(s: dict[str, np.ndarray], score: str, layer: int) -> Result:
    """O1/O2: the best head of `layer` for `score`, with its CI over the random sequences."""
    per_seq = s[score][layer]  # [batch, heads]
    head = int(per_seq.mean(0).argmax())
    return Result.of(value=per_seq.mean(0).max(), ci=bootstrap_ci(per_seq[:, head]), n=per_seq.shape[0],
                head=fmt_item((layer, head)), head_map=s[score].mean(1))


# Control models of O1/O2 (mechcheck.core.claim.Control): bridges the claims' bound measure reads with
# the same repeated random sequences (16 x 24 tokens repeated, the organism's vocabulary).

def trained(n_layers: int):
    """The shipped induction organism (2 layers) or its 1-layer control, trained on the same data."""
    return organisms.bridge(organisms.get(organisms.INDUCTION if n_layers == 2 else organisms.INDUCTION_CONTROL))


def random_weights():
    """The 2-layer organism's architecture with random weights."""
    return organisms.random_bridge(organisms.INDUCTION)


TRAINED = positive("trained organism", partial(trained, 2),
                   "the shipped 2-layer induction organism (trained 2000 steps on repeated segments)")
RANDOM = negative("random weights", random_weights, "the 2-layer organism's architecture with random weights")
ONE_LAYER = negative("1-layer organism", partial(trained, 1),
                     "the 1-layer control organism, trained on the same data (no K-composition partner to need)")
