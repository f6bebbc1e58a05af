"""Measurements of the induction-organism claims (O1, O2: Olsson et al. 2022, the thesis' §3.3 head
scores) on one checkpoint of mechcheck.models.organisms' induction organism, the phase change over
a checkpoint series (O1.phase) and K-composition by key-path ablation (O2.kcomp).

Why a module: the claim and its controls in tests/ call the same function. Each function returns
keyword arguments for `measure.record(...)`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from mechcheck.core.claim import ClaimError, fmt_item, negative, positive
from mechcheck.core.result import Result
from mechcheck.metrics import head_scores, path_patching
from mechcheck.metrics.activations import cached
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


INDUCTION_HEAD = 0.3  # O1's threshold (the thesis' induction-head threshold, ioi_circuit.INDUCTION_HEAD)
WINDOW_FRACTION = 0.25  # O1.phase: "abrupt" = most of the rise within a quarter of training
MIN_CHECKPOINTS = 5


class Series(list):
    """(step, model) pairs of a checkpoint series, in step order. `sha256` (a digest of its checkpoints'
    sha256s, when known) keys the preparation the plugin shares, as a single checkpoint's does."""

    def __init__(self, pairs, sha256: str | None = None):
        super().__init__(pairs)
        self.sha256 = sha256


def series_scores(series) -> list[tuple[int, np.ndarray]]:
    """(step, layer-1 induction scores [batch, heads]) per checkpoint of `series` ((step, bridge or
    LoadedModel) pairs, in step order), on the same 16 repeated random sequences at every step."""
    return [(int(step), scores(getattr(m, "bridge", m))["induction"][1]) for step, m in series]


def best_window(steps, per_step: np.ndarray, window_fraction: float = WINDOW_FRACTION,
                formed: float = INDUCTION_HEAD) -> tuple[float, int, int]:
    """(share, first step, last step) of the window of at most `window_fraction` of training (in
    steps, from the first to the last checkpoint) that holds the largest share of the rise of the
    best layer-1 head's score s_t = max over heads of the mean over sequences, from the first to the
    last checkpoint. `per_step`: [checkpoints, batch, heads]. Share 0 when the last score is below
    `formed` (no induction head formed: no phase change to time) or the score does not rise."""
    s = per_step.mean(1).max(-1)
    rise = s[-1] - s[0]
    if s[-1] < formed or rise <= 0:
        return 0.0, int(steps[0]), int(steps[-1])
    steps = np.asarray(steps)
    gain = (s[None, :] - s[:, None]) / rise  # [start, end]
    fits = (steps[None, :] > steps[:, None]) & (steps[None, :] - steps[:, None] <= window_fraction * (steps[-1] - steps[0]))
    gain = np.where(fits, gain, -np.inf)
    i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
    return float(gain[i, j]), int(steps[i]), int(steps[j])


def phase_change(per_step: list[tuple[int, np.ndarray]], window_fraction: float = WINDOW_FRACTION,
                 formed: float = INDUCTION_HEAD) -> Result:
    """O1.phase: the share of the layer-1 induction score's rise (first to last checkpoint) that
    falls inside the best window of `window_fraction` of training; CI: bootstrap over the random
    sequences, the same sequence indices resampled at every checkpoint."""
    steps = np.array([st for st, _ in per_step])
    if len(steps) < MIN_CHECKPOINTS or np.any(np.diff(steps) > window_fraction * (steps[-1] - steps[0])):
        raise ClaimError(f"series too coarse to time a phase change: {len(steps)} checkpoints at steps "
                         f"{steps.tolist()[:12]}; need >= {MIN_CHECKPOINTS}, each interval at most "
                         f"{window_fraction:g} of training")
    x = np.stack([sc for _, sc in per_step])  # [checkpoints, batch, heads]
    share, t0, t1 = best_window(steps, x, window_fraction, formed)
    per_seq = np.moveaxis(x, 1, 0)  # [batch, checkpoints, heads]: the bootstrap resamples sequences
    ci = bootstrap_ci(per_seq, stat=lambda p: best_window(steps, np.moveaxis(p, 0, 1), window_fraction, formed)[0])
    s = x.mean(1).max(-1)
    intervals = np.diff(s) / (s[-1] - s[0]) if s[-1] > s[0] else np.zeros(len(s) - 1)
    return Result.of(value=share, ci=ci, n=x.shape[1], steps=steps, score_per_step=s, window=[t0, t1],
                     window_fraction=window_fraction, window_steps=window_fraction * (steps[-1] - steps[0]),
                     rise=float(s[-1] - s[0]), last_score=float(s[-1]), formed=bool(s[-1] >= formed),
                     best_single_interval_share=float(intervals.max()))


@torch.no_grad()
def k_composition(bridge) -> Result:
    """O2.kcomp: the layer-1 induction head h1 reads the layer-0 previous-token head h0 through its
    keys. h0's output (z @ W_O) is mean-ablated (over sequences and positions) in h1's key input
    only, queries and values untouched; value = min(s_clean - 0.3, 0.3 - s_k): h1 was an induction
    head and is not one once its keys lose h0. The same ablation into the query (Q-composition would
    show there) and the value (the pattern cannot change) is in details. CI: bootstrap over the 16
    sequences of the per-sequence value."""
    if bridge.cfg.n_layers < 2:
        raise ClaimError(f"K-composition needs a layer-0 and a layer-1 (this model has {bridge.cfg.n_layers} layer)")
    tokens = head_scores.repeated_random_tokens(BATCH, HALF, bridge.cfg.d_vocab, None).to(bridge.cfg.device)
    names = ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern", "blocks.0.attn.hook_z"]
    cache = cached(bridge, tokens, names)
    s = {k: v.cpu().numpy() for k, v in head_scores.scores(
        torch.stack([cache[names[0]], cache[names[1]]]), HALF, offset=0).items()}
    h1 = int(s["induction"][1].mean(0).argmax())
    h0 = int(s["previous_token"][0].mean(0).argmax())
    out0 = cache["blocks.0.attn.hook_z"][:, :, h0] @ bridge.W_O[0, h0]
    delta = out0.mean((0, 1), keepdim=True) - out0

    def induction(component: str) -> np.ndarray:
        pattern = path_patching.patched_pattern(bridge, tokens, delta, (1, h1), component)
        return head_scores.scores(pattern[None, :, None], HALF, offset=0)["induction"][0, :, 0].cpu().numpy()

    clean = s["induction"][1][:, h1]
    s_k, s_q, s_v = induction("k"), induction("q"), induction("v")
    per_seq = np.stack([clean, s_k], 1)

    def stat(p):
        return min(p[:, 0].mean() - INDUCTION_HEAD, INDUCTION_HEAD - p[:, 1].mean())

    return Result.of(value=float(stat(per_seq)), ci=bootstrap_ci(per_seq, stat=stat), n=len(clean),
                     s_clean=float(clean.mean()), s_k=float(s_k.mean()), s_q=float(s_q.mean()), s_v=float(s_v.mean()),
                     fraction_removed=float((clean.mean() - s_k.mean()) / max(clean.mean(), 1e-12)),
                     previous_token_head=fmt_item((0, h0)), previous_token_score=float(s["previous_token"][0][:, h0].mean()),
                     induction_head=fmt_item((1, h1)))


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


def _planted_induction(act: torch.Tensor, alpha: float, heads) -> torch.Tensor:
    """`act` (a layer's pattern [batch, heads, q, k] on `r r` sequences) with the exact induction
    pattern mixed into `heads` at strength alpha: second-half queries on the token after their first
    occurrence, first-half queries on themselves."""
    n = act.shape[-1]
    half = n // 2
    planted = torch.eye(n, device=act.device, dtype=act.dtype)
    for q in range(half, n):
        planted[q] = 0.0
        planted[q, q - half + 1] = 1.0
    act = act.clone()
    for h in heads:
        act[:, h] = (1 - alpha) * act[:, h] + alpha * planted
    return act


def with_planted_induction(bridge, alpha: float, heads=(0,)):
    """`bridge` with the exact induction pattern planted into layer-1 `heads` at strength alpha (a hook on
    blocks.1.attn.hook_pattern: it overrides whatever the keys and queries computed)."""
    if alpha > 0:
        bridge.add_hook("blocks.1.attn.hook_pattern", lambda act, hook: _planted_induction(act, alpha, heads))
    return bridge


def planted_series(alphas: str):
    """A series of the shipped organism's step-0 checkpoint (no induction head) at every shipped step,
    with an induction pattern planted into L1H0 at strength alpha(step): "abrupt" 0 up to step 1000 and 1
    from 1250 on (a phase change), "linear" step/2000 (a gradual rise), "none" 0 throughout."""
    shipped = organisms.series()
    first = shipped[0][1]  # step 0: no induction head of its own
    out = []
    for step, _ in shipped:
        alpha = {"abrupt": float(step >= 1250), "linear": step / 2000, "none": 0.0}[alphas]
        out.append((step, with_planted_induction(organisms.load_induction(first).bridge, alpha)))
    return Series(out)


def induction_planted_over_keys():
    """The trained organism with its layer-1 heads' patterns overwritten by the exact induction
    pattern: induction without K-composition (the pattern no longer depends on the keys)."""
    b = trained(2)
    return with_planted_induction(b, 1.0, heads=range(b.cfg.n_heads))


ABRUPT = positive("planted abrupt rise", partial(planted_series, "abrupt"),
                  "step-0 checkpoint at the 9 shipped steps, induction pattern planted into L1H0 from step 1250 on")
LINEAR = negative("planted linear rise", partial(planted_series, "linear"),
                  "step-0 checkpoint at the 9 shipped steps, induction pattern planted into L1H0 at strength step/2000")
NEVER = negative("no induction head", partial(planted_series, "none"),
                 "step-0 checkpoint at the 9 shipped steps, nothing planted (no induction head forms)")
PATTERN_PLANTED = negative("pattern planted over the keys", induction_planted_over_keys,
                           "the trained organism with every layer-1 pattern set to the exact induction pattern "
                           "(induction without K-composition)")
