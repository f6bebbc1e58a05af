"""Measurements of the induction-organism claims (O1, O2: Olsson et al. 2022, the thesis' §3.3 head
scores) on one checkpoint of mechcheck.models.organisms' induction organism.

Why a module: the claim and its controls in tests/ call the same function. Each function returns
keyword arguments for `measure.record(...)`.
"""

from __future__ import annotations

import numpy as np

from mechcheck.core.claim import fmt_item
from mechcheck.core.result import Result
from mechcheck.metrics import head_scores
from mechcheck.core.stats import bootstrap_ci

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
