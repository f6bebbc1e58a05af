"""Measurements of the tutorial's reverse+increment circuit on one toy checkpoint.

Why a module (not inline in the claim file): the same measurement runs in the claim and in the
controls of tests/, so what is shown to fail on a control is exactly what the claim computes.
Each function returns keyword arguments for `measure.record(...)`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from mechcheck.models import toy
from mechcheck.core.claim import fmt_item, negative, positive
from mechcheck.core.result import Result
from mechcheck.metrics import ablation, accuracy, attention, logit_lens
from mechcheck.core.stats import bootstrap_ci, mean_ci

OUT = slice(toy.N_IN, 2 * toy.N_IN)  # positions 8..15 predict y0..y7
QUERIES = [toy.N_IN + i for i in range(toy.N_IN)]  # position 8+i predicts y_i
KEYS = [toy.N_IN - i for i in range(toy.N_IN)]  # x_{7-i} sits at position 8-i
HOOKS = ("blocks.0.attn.hook_pattern", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post")


def holdout_index() -> torch.Tensor:
    """Rows of `toy.all_sequences()` that `toy.split()` puts in the holdout set (the same fixed shuffle)."""
    perm = torch.randperm(4**toy.N_IN, generator=torch.Generator().manual_seed(toy.SPLIT_SEED))
    return perm[toy.N_TRAIN :]


class ToyRun:
    """One toy model and its forward pass over the holdout set (one cache, shared by every claim on
    it), or over all 4^8 sequences (`whole=True`: the tutorial's 'whole distribution', T7.whole)."""

    def __init__(self, bridge, device: str | None = None, whole: bool = False):
        self.bridge = bridge
        device = device or next(bridge.parameters()).device  # the model's own device
        data = toy.all_sequences() if whole else toy.split()[1]
        self.tokens = data[:, :-1].to(device)
        self.targets = data[:, toy.N_IN + 1 :].to(device)
        with torch.no_grad():
            self.logits, self.cache = bridge.run_with_cache(self.tokens, names_filter=lambda n: n in HOOKS)

    def accuracy(self, fwd_hooks=()):
        logits = ablation.logits_with(self.bridge, self.tokens, fwd_hooks) if fwd_hooks else self.logits
        return accuracy.per_sequence_accuracy(logits[:, OUT], self.targets).cpu().numpy()


def holdout_accuracy(run: ToyRun) -> Result:
    """T1: per-token accuracy on y0..y7 over the 5536 holdout sequences."""
    per_seq = run.accuracy()
    value, ci = mean_ci(per_seq)
    return Result.of(value=value, ci=ci, n=len(per_seq), sequence_accuracy=float((per_seq == 1).mean()))


# The tutorial's printed attention matrix (one holdout sample of its own checkpoint): the weight of
# row y_i on x_{7-i}. Rows run from 0.002 (y4) to 0.953 (y0), mean 0.66; over y1..y7 the mean is 0.62.
PUBLISHED_ROWS = (0.953, 0.935, 0.633, 0.904, 0.00213, 0.0652, 0.904, 0.897)
ROUTED = slice(1, toy.N_IN)  # y1..y7: y0 is predicted at x7's own position, so x7 is read without attention


def reversed_attention(run: ToyRun) -> Result:
    """T2: mean attention from the position predicting y_i to x_{7-i}, over y1..y7.

    Why y0 is left out: y0 is predicted at position 8, which holds x7 itself; the model reads it from
    its own residual stream, and its attention on x7 is about 0 in every seed. Averaging it in caps
    the mean at 0.875 and alone decides marginal seeds; it is reported in details."""
    pattern = run.cache["blocks.0.attn.hook_pattern"]
    att = attention.pattern_at(pattern, 0, QUERIES, KEYS)  # [batch, 8]
    per_seq = att[:, ROUTED].mean(-1).cpu().numpy()
    value, ci = mean_ci(per_seq)
    tokens = ["BOS"] + [f"x{i}" for i in range(8)] + [f"y{i}" for i in range(7)]
    example = {"head": fmt_item((0, 0)), "tokens": tokens, "pattern": pattern[0, 0].cpu().numpy().round(3)}
    return Result.of(value=value, ci=ci, n=len(per_seq), per_output=att.mean(0), y0_on_x7=float(att[:, 0].mean()),
                mean_with_y0=float(att.mean()), example_pattern=example)


def y0_attention(run: ToyRun) -> Result:
    """T2.y0: the tutorial's own example row, y0 -> x7. y0 is predicted at position 8, which holds
    x7, so this is position 8's raw attention on itself (the full row, BOS included, as printed)."""
    pattern = run.cache["blocks.0.attn.hook_pattern"][:, 0]
    q = QUERIES[0]
    per_seq = pattern[:, q, KEYS[0]].cpu().numpy()
    value, ci = mean_ci(per_seq)
    inputs = pattern[:, q, 1 : toy.N_IN + 1]
    renorm = (inputs[:, -1] / inputs.sum(-1).clamp_min(1e-12)).mean()
    top = int(pattern[:, q, : q + 1].mean(0).argmax())
    names = ["BOS"] + [f"x{i}" for i in range(toy.N_IN)]
    return Result.of(value=value, ci=ci, n=len(per_seq), renormalised_over_x0_x7=float(renorm),
                     top_key=names[top], top_key_weight=float(pattern[:, q, top].mean()), published_row_y0=PUBLISHED_ROWS[0])


def routed_focus(run: ToyRun) -> Result:
    """T6: each output y_i (i = 1..7) strongly focuses on precisely one input, x_{7-i}: per output,
    the share of holdout sequences whose attention argmax over x0..x7 is x_{7-i} (h_i) and the mean
    share of the attention on x0..x7 that x_{7-i} holds (m_i, the slice the tutorial plots). The
    value is min over y1..y7 of min(m_i, h_i): every output must route, and route to one input
    (an argmax with a diffuse row does not focus). y0 (read without attention) is in details."""
    inputs = run.cache["blocks.0.attn.hook_pattern"][:, 0, QUERIES, 1 : toy.N_IN + 1]  # keys x0..x7
    keys = torch.tensor(KEYS, device=inputs.device) - 1
    hit = (inputs.argmax(-1) == keys).float()
    raw = inputs.gather(-1, keys.expand(inputs.shape[0], -1)[..., None])[..., 0]
    share = raw / inputs.sum(-1).clamp_min(1e-12)
    both = torch.stack([share, hit], 1).cpu().numpy()[..., ROUTED]  # [n, 2, 7]

    def stat(b):
        return np.minimum(b[:, 0].mean(0), b[:, 1].mean(0)).min()

    m, h = share.mean(0).cpu().numpy(), hit.mean(0).cpu().numpy()
    worst = np.minimum(m, h)[ROUTED]
    return Result.of(value=float(stat(both)), ci=bootstrap_ci(both, stat=stat), n=both.shape[0],
                     share_on_routed=m, argmax_hit=h, raw_weight_on_routed=raw.mean(0),
                     worst_output=f"y{1 + int(worst.argmin())}", y0_share=float(m[0]), y0_hit=float(h[0]))


def ablation_drop(run: ToyRun, component: str, index: int | None = None) -> Result:
    """T3/T4: holdout accuracy lost when `component` (attn.W_O, mlp.W_out) is zeroed."""
    clean = run.accuracy()
    ablated = run.accuracy([ablation.zero_hook(component, 0, index)])
    value, ci = mean_ci(clean - ablated)
    return Result.of(value=value, ci=ci, n=len(clean), clean_accuracy=clean.mean(), ablated_accuracy=ablated.mean())


def ablation_order(run: ToyRun) -> Result:
    """T7: the MLP ablation costs more accuracy than the attention ablation (the tutorial's numbers,
    17.67% vs 29.19% left), paired over holdout sequences: drop(mlp.W_out) - drop(attn.W_O)."""
    clean = run.accuracy()
    mlp = run.accuracy([ablation.zero_hook("mlp.W_out", 0)])
    attn = run.accuracy([ablation.zero_hook("attn.W_O", 0)])
    value, ci = mean_ci((clean - mlp) - (clean - attn))
    return Result.of(value=value, ci=ci, n=len(clean), clean_accuracy=clean.mean(), mlp_drop=(clean - mlp).mean(),
                attention_drop=(clean - attn).mean())


def routed_input_before_mlp(run: ToyRun) -> Result:
    """T5: before the MLP, the residual stream at the position predicting y_i (i = 1..7) carries
    the routed input x_{7-i}: held-out accuracy of one linear probe per position (scikit-learn's
    LogisticRegression on hook_resid_mid, fitted on the first half of the holdout sequences, tested
    on the second half).

    Why a probe and not the logit lens: the tutorial's own printout (sample 0) shows the pre-MLP
    logit lens reading neither x_{7-i} nor the target, and its note says why ("the attention
    mechanism doesn't perfectly extract the pure embedding"); a read-out fitted for x_{7-i} asks
    whether the routed token is there, which is what the mechanism needs. The literal logit-lens
    reading of x_{7-i} is recorded beside it (details.pre_mlp_lens_reads_input)."""
    from sklearn.linear_model import LogisticRegression

    resid = run.cache["blocks.0.hook_resid_mid"][:, OUT].cpu().numpy()  # [n, 8, d_model]
    routed = run.tokens[:, KEYS].cpu().numpy()  # x_{7-i} for y_i
    half = resid.shape[0] // 2
    correct = []
    for i in range(ROUTED.start, toy.N_IN):
        probe = LogisticRegression(max_iter=1000).fit(resid[:half, i], routed[:half, i])
        correct.append(probe.predict(resid[half:, i]) == routed[half:, i])
    per_seq = np.stack(correct, 1).mean(1)
    value, ci = mean_ci(per_seq)
    lens = logit_lens.lens_logits(run.bridge, run.cache["blocks.0.hook_resid_mid"][:, OUT]).argmax(-1).cpu().numpy()
    return Result.of(value=value, ci=ci, n=len(per_seq), per_output={f"y{i}": float(c.mean())
                for i, c in zip(range(ROUTED.start, toy.N_IN), correct)},
                pre_mlp_lens_reads_input=float((lens[:, ROUTED] == routed[:, ROUTED]).mean()),
                chance=0.25)


PRINTED = [0, 3, 5, 7]  # the output positions the tutorial prints (8, 11, 13, 15: y0, y3, y5, y7)


def mlp_increment(run: ToyRun) -> Result:
    """T5.plus1: share of the 8 output positions whose argmax is the target x_{7-i}+1 only after the
    MLP (wrong before it, right after it), read as the tutorial reads them: `resid @ W_U` (no final
    LayerNorm, no bias) over all 5 vocabulary entries, before (resid_mid = attn_out + resid_pre) and
    after (+ mlp_out) the MLP. Why the raw readout: the published 0.5 (2 of 4 printed positions) was
    read that way; the ln_final form, the model's own readout, is in details."""
    mid, post_resid = run.cache["blocks.0.hook_resid_mid"][:, OUT], run.cache["blocks.0.hook_resid_post"][:, OUT]
    t = run.targets
    raw_pre = logit_lens.raw_logits(run.bridge, mid).argmax(-1)
    raw_post = logit_lens.raw_logits(run.bridge, post_resid).argmax(-1)
    pre = logit_lens.lens_logits(run.bridge, mid).argmax(-1)
    post = logit_lens.lens_logits(run.bridge, post_resid).argmax(-1)
    raw_only_after = ((raw_pre != t) & (raw_post == t)).float()
    only_after = raw_only_after.mean(-1).cpu().numpy()
    value, ci = mean_ci(only_after)
    return Result.of(value=value, ci=ci, n=len(only_after),
                     printed_positions_only_after=float(raw_only_after[:, PRINTED].mean()),
                     raw_pre_mlp_accuracy=float((raw_pre == t).float().mean()),
                     raw_post_mlp_accuracy=float((raw_post == t).float().mean()),
                     only_after_ln_final=float(((pre != t) & (post == t)).float().mean()),
                     pre_mlp_accuracy_ln_final=float((pre == t).float().mean()),
                     post_mlp_accuracy_ln_final=float((post == t).float().mean()))


class Holdout:
    """A toy model with the holdout sample T7.whole compares with the whole distribution: `index`
    rows of `toy.all_sequences()` (default the tutorial's holdout, `holdout_index()`). Why a type:
    the claim is about a sample against its population, so its controls swap the sample."""

    def __init__(self, bridge, index: torch.Tensor | None = None):
        self.model = bridge
        self.index = holdout_index() if index is None else index


def whole_run(model) -> tuple[ToyRun, torch.Tensor]:
    """The forward pass over all 4^8 sequences and the holdout rows (a bridge: the tutorial's holdout)."""
    held = model if isinstance(model, Holdout) else Holdout(model)
    return ToyRun(held.model, whole=True), held.index


def ablated_accuracies(run: ToyRun) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence accuracy with the MLP's W_out zeroed and with the attention's W_O zeroed (T3, T4)."""
    return run.accuracy([ablation.zero_hook("mlp.W_out", 0)]), run.accuracy([ablation.zero_hook("attn.W_O", 0)])


def whole_vs_holdout_gap(prepared: tuple[ToyRun, torch.Tensor]) -> Result:
    """T7.whole: the gap |acc(MLP zeroed) - acc(attention zeroed)| over the holdout minus the same gap
    over all 4^8 sequences (the tutorial's guess: 'closer on the whole distribution'). The whole
    distribution's gap is exact; the CI resamples the holdout sequences."""
    run, index = prepared
    mlp, attn = ablated_accuracies(run)
    gap_all = abs(float(mlp.mean() - attn.mean()))
    idx = index.cpu().numpy()
    pair = np.stack([mlp[idx], attn[idx]], 1)

    def stat(p):
        return abs(p[:, 0].mean() - p[:, 1].mean()) - gap_all

    train = np.setdiff1d(np.arange(len(mlp)), holdout_index().numpy())
    return Result.of(value=float(stat(pair)), ci=bootstrap_ci(pair, stat=stat), n=len(idx),
                     holdout_gap=float(stat(pair) + gap_all), whole_gap=gap_all,
                     holdout_mlp_zeroed=float(mlp[idx].mean()), holdout_attention_zeroed=float(attn[idx].mean()),
                     whole_mlp_zeroed=float(mlp.mean()), whole_attention_zeroed=float(attn.mean()),
                     train_set_gap=abs(float(mlp[train].mean() - attn[train].mean())))


# Control models of the toy claims (mechcheck.core.claim.Control): each builder returns a bridge of
# the claim's own shape (1 layer, d_model 4, the tutorial's vocabulary and sequence layout); the claim's
# bound measure then reads it over the same 5536 holdout sequences.

def trained(seed: int):
    """A shipped toy checkpoint (retrained and cached if missing)."""
    return toy.load(toy.get_checkpoint(toy.TrainConfig(seed=seed))).bridge


def random_weights(seed: int):
    """The toy architecture with random weights."""
    return toy.random_bridge(seed=seed)


def planted_routing(seed: int = 0, weight: float = 1.0):
    """Seed `seed`'s weights with the tutorial's routing planted as the attention pattern: y_i
    (i >= 1) attends to x_{7-i} with `weight` and spreads the rest evenly over the other inputs
    x0..x7 (weight < 1: a diffuse row whose argmax is still x_{7-i}), every other query to itself
    (a hook on hook_pattern)."""
    pattern = torch.eye(2 * toy.N_IN)
    for q, k in zip(QUERIES[1:], KEYS[1:]):
        pattern[q] = 0.0
        pattern[q, 1 : toy.N_IN + 1] = (1.0 - weight) / (toy.N_IN - 1)
        pattern[q, k] = weight
    bridge = trained(seed)
    bridge.add_hook("blocks.0.attn.hook_pattern", lambda act, hook: pattern.to(act.device).expand_as(act).clone())
    return bridge


def zeroed(hook_name: str, seed: int = 0):
    """Seed `seed` with the output at `hook_name` zeroed (e.g. the attention output: nothing is routed)."""
    bridge = trained(seed)
    bridge.add_hook(hook_name, lambda act, hook: torch.zeros_like(act))
    return bridge


def frozen(hook_name: str, seed: int = 0):
    """Seed `seed` with the output at `hook_name` frozen to its clean holdout value: ablating that
    component's weights then changes nothing downstream (the component is made redundant)."""
    bridge = trained(seed)
    tokens = ToyRun(bridge).tokens
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n == hook_name)
    value = cache[hook_name].clone()
    bridge.add_hook(hook_name, lambda act, hook: value.clone())
    return bridge


def biased_holdout(seed: int, agree: bool):
    """Seed `seed` with a holdout of the tutorial's size drawn from all 4^8 sequences with a bias:
    `agree=False` the sequences where the two ablations differ most in the direction of the whole
    distribution (the holdout gap inflated: 'closer on the whole distribution' holds), `agree=True`
    the ones where they agree most (the holdout gap shrunk below the population's: it does not)."""
    bridge = trained(seed)
    mlp, attn = ablated_accuracies(ToyRun(bridge, whole=True))
    d = torch.as_tensor(mlp - attn)
    d = d * (1.0 if d.mean() >= 0 else -1.0)
    order = torch.argsort(d.abs() if agree else -d, stable=True)
    return Holdout(bridge, order[: len(holdout_index())])


TRAINED = positive("trained", partial(trained, 0), "the shipped toy checkpoint of training seed 0 (the tutorial's set-up)")
RANDOM = negative("random weights", partial(random_weights, 123), "the toy architecture with random weights (seed 123)")
PLANTED_ROUTING = positive("planted routing", partial(planted_routing, 0),
                           "seed 0 with the routing planted as its attention pattern (y_i -> x_{7-i} weight 1)")
NO_ATTENTION = negative("attention zeroed", partial(zeroed, "blocks.0.hook_attn_out", 0),
                        "seed 0 with the attention output zeroed (nothing routed to the output positions)")
ATTENTION_FROZEN = negative("attention frozen", partial(frozen, "blocks.0.hook_attn_out", 0),
                            "seed 0 with the attention output frozen to its clean value (zeroing W_O is harmless)")
DIFFUSE_ROUTING = negative("diffuse routing", partial(planted_routing, 0, 0.4),
                           "seed 0 with y_i -> x_{7-i} planted at weight 0.4 and 0.6/7 on each other input "
                           "(x_{7-i} is the argmax, but the row does not focus)")
NO_MLP = negative("MLP zeroed", partial(zeroed, "blocks.0.hook_mlp_out", 0),
                  "seed 0 with the MLP output zeroed (nothing changes between before and after the MLP)")
INFLATED_HOLDOUT = positive("inflated holdout gap", partial(biased_holdout, 1, False),
                            "seed 1 with a 5536-sequence holdout where the two ablations differ most (holdout "
                            "gap above the whole distribution's)")
AGREEING_HOLDOUT = negative("agreeing holdout", partial(biased_holdout, 1, True),
                            "seed 1 with a 5536-sequence holdout where the two ablations agree most (holdout gap "
                            "below the whole distribution's)")
MLP_FROZEN = negative("MLP frozen", partial(frozen, "blocks.0.hook_mlp_out", 0),
                      "seed 0 with the MLP output frozen to its clean value (zeroing W_out is harmless)")
