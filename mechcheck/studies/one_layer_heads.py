"""Measurements of the two blog posts on the one-layer TinyStories model
(../shared/seeds/blog-tinystories-1layer-21m-attention*.{txt,md}): head roles (B1) and the
attention-output statistics (B2), one function per claim family, each returning keyword
arguments for `measure.record(...)`.

Why a module: the claims and their controls in tests/ call the same function.
"""

from __future__ import annotations

import numpy as np

from mechcheck.core.claim import fmt_item
from mechcheck.core.result import Result
from mechcheck.metrics import activation_stats, head_roles
from mechcheck.core.stats import bootstrap_ci

STAT_TOL = 0.001  # the table has 4 decimals; 1e-3 absorbs rounding and float32/kernel differences


def role_leaders(roles: dict, source_input: str, role: str, heads: list[int], bridge=None, prompt: str | None = None) -> Result:
    """B1: every head's mean `role` score over the texts of `source_input` (the claim checks which
    heads lead), CIs of the named heads, and on the prompt its token ids and the first named
    head's pattern (bridge and prompt given)."""
    scores = roles[source_input][role]  # [n_texts, n_heads]
    value = np.nanmean(scores, axis=0)
    usable = scores[~np.isnan(scores).any(axis=1)]
    details = {"role": role, "input": source_input, "n_texts": int(len(usable))}
    if len(usable) >= 2:
        details["ci_per_head"] = {fmt_item(h): bootstrap_ci(usable[:, h]) for h in heads}
    if source_input == "prompt" and bridge is not None:
        details["prompt_token_ids"] = bridge.to_tokens(prompt)[0].tolist()
        pattern, str_tokens, _ = head_roles.patterns(bridge, prompt)
        details["example_pattern"] = {"head": fmt_item(heads[0]), "tokens": str_tokens,
                                      "pattern": pattern[heads[0]].round(3)}
    return Result.of(value=value, n=len(usable), **details)


def head_score(roles: dict, source_input: str, role: str, heads: list[int], minus: list[int] = (),
               report: tuple[str, ...] = ()) -> Result:
    """B1 claims on named heads: per text, the weakest named head's `role` score, less the
    strongest of the `minus` heads' (head 14 against the pivot heads 1 and 2); the value is the
    mean over the texts that have the role's tokens, with a bootstrap CI over texts when there
    are at least 2. `report`: related roles whose per-head means go to the details."""
    scores = roles[source_input][role]  # [n_texts, n_heads]
    usable = scores[~np.isnan(scores).any(axis=1)]
    per_text = usable[:, list(heads)].min(axis=1)
    if len(minus):
        per_text = per_text - usable[:, list(minus)].max(axis=1)
    details = {"role": role, "input": source_input, "n_texts": int(len(usable)),
               "per_head": np.nanmean(scores, axis=0) if len(usable) else scores[0]}
    for other in report:
        details[other] = np.nanmean(roles[source_input][other], axis=0)
    if len(usable) >= 2:
        details["ci"] = bootstrap_ci(per_text)  # the verdict reads it (issue #11 item 1)
    value = float(per_text.mean()) if len(usable) else float("nan")
    return Result.of(value=value, n=len(usable), **details)


def stats_deviation(conventions: dict, which: str, published: dict) -> Result:
    """B2: the largest |measured - published| over the 7 statistics, under the convention that
    reproduces the table best."""
    deviation = {name: activation_stats.max_abs_deviation(c[which], published) for name, c in conventions.items()}
    best = min(deviation, key=deviation.get)
    return Result.of(
        value=deviation[best], best_convention=best,
        reproducing_conventions=[n for n, d in deviation.items() if d <= STAT_TOL],
        deviation_per_convention=deviation,
        stats_per_convention={n: c[which] for n, c in conventions.items()},
        token_ids={n: c["token_ids"] for n, c in conventions.items()},
    )
