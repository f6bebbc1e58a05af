"""Uncertainty for sampled measurements.

Why: a measured value over prompts or sequences is an estimate; the report shows it with a
percentile bootstrap CI (seeded, so CPU runs are reproducible)."""

from __future__ import annotations

import numpy as np

from mechcheck.core.result import Result


def bootstrap_ci(samples, stat=np.mean, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap CI of `stat` over the first axis of `samples`: (low, high)."""
    x = np.asarray(samples, dtype=float)
    if x.shape[0] < 2:
        raise ValueError("bootstrap needs at least 2 samples")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))
    stats = np.array([stat(x[i]) for i in idx])
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def mean_ci(samples, **kw) -> tuple[float, tuple[float, float]]:
    """Mean and its bootstrap CI."""
    x = np.asarray(samples, dtype=float)
    return float(x.mean()), bootstrap_ci(x, **kw)


# Per-item values are stored up to this many items: enough for prompt sets (IOI: 120), small
# enough that results.json stays readable (the toy's 5536 holdout sequences are not stored; its
# diffs use the CIs).
PER_ITEM_MAX = 1000


def mean_record(samples, **kw) -> Result:
    """`value`, `ci`, `n` of a mean over items, and the items themselves (`per_item`, when at most
    PER_ITEM_MAX) so that `mechcheck diff` can compare two runs on the same prompts with a paired
    bootstrap rather than by CI overlap (a shared-prompt change is detectable far below the CI width)."""
    x = np.asarray(samples, dtype=float)
    value, ci = mean_ci(x, **kw)
    out = Result(value, ci, int(x.shape[0]))
    if x.ndim == 1 and x.shape[0] <= PER_ITEM_MAX:
        out.details["per_item"] = x
    return out
