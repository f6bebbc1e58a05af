"""Measurements of the IOI thesis' claims (../shared/seeds/thesis-ioi-circuits-tinystories-8M.txt,
§3.3-3.5) on one model: one function per claim, each returning keyword arguments for
`measure.record(...)`.

Why a module: the claim and its controls in tests/ (model organisms where the mechanism is present
or absent) call the same function. Inputs are the head scores ({score: [n_layers, batch,
n_heads]}, mechcheck.metrics.head_scores) or an IOIRun (mechcheck.studies.ioi).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from mechcheck.data import ioi_prompts
from mechcheck.studies import ioi
from mechcheck.core.claim import ClaimError, fmt_item
from mechcheck.core.result import Result
from mechcheck.metrics import accuracy, attention, dla
from mechcheck.core.stats import bootstrap_ci, mean_record

INDUCTION_HEAD = 0.3  # a head with induction score >= 0.3 counts as an induction head


# ---------------------------------------------------------------- §3.3 head scores

def top_head_score(scores: dict, score: str) -> Result:
    """I1.8m: the highest mean `score` over all heads, with its CI over the sequences."""
    s = scores[score]
    mean = s.mean(1)
    top = np.unravel_index(mean.argmax(), mean.shape)
    return Result.of(value=mean.max(), ci=bootstrap_ci(s[top[0], :, top[1]]), n=s.shape[1],
                top_head=fmt_item(tuple(int(t) for t in top)), head_map=mean)


def heads_at_least(scores: dict, score: str, threshold: float = INDUCTION_HEAD) -> Result:
    """I1.gpt2: how many heads have a mean `score` >= threshold."""
    mean = scores[score].mean(1)
    heads = [fmt_item((int(l), int(h))) for l, h in zip(*np.nonzero(mean >= threshold))]
    return Result.of(value=len(heads), heads=heads, head_map=mean)


def top_score_difference(scores_a: dict, scores_b: dict, score: str, models: list[str]) -> Result:
    """I2.weaker: max mean `score` of model a minus that of model b."""
    a, b = scores_a[score].mean(1), scores_b[score].mean(1)
    return Result.of(value=a.max() - b.max(), max_8m=a.max(), max_gpt2=b.max(), models=models)


def head_score(scores: dict, score: str, head: tuple[int, int]) -> Result:
    """I2.gpt2_L4H11, I3.8m_weak: one head's mean score with its CI over the random sequences."""
    per_seq = scores[score]
    layer, h = head
    return Result.of(value=per_seq[layer, :, h].mean(), ci=bootstrap_ci(per_seq[layer, :, h]), n=per_seq.shape[1],
                head_map=per_seq.mean(1), claimed_heads=[head])


def head_score_map(scores: dict, score: str, heads) -> Result:
    """I3: every head's mean score (the claim checks which heads lead), with CIs of the named heads."""
    s = scores[score]
    return Result.of(value=s.mean(1), n=s.shape[1], ci_per_head={fmt_item(h): bootstrap_ci(s[h[0], :, h[1]]) for h in heads})


# ---------------------------------------------------------------- §3.4.1 performance

def mean_logit_diff(run: ioi.IOIRun, with_tokens: bool = False) -> Result:
    """I4: mean logit difference IO - S at END over the prompt set."""
    extra = {"prompt_token_ids": run.prompts.tokens[0]} if with_tokens else {}
    return Result.of(mean_record(run.ld.cpu().float().numpy()), **extra)


def paired_logit_diff(run_a: ioi.IOIRun, run_b: ioi.IOIRun, models: list[str]) -> Result:
    """I4.compare: mean paired difference of the logit differences of two models, same prompts."""
    diff = (run_a.ld - run_b.ld).cpu().float().numpy()
    return Result.of(mean_record(diff), models=models)


def correct_probability(run: ioi.IOIRun) -> dict:
    """I12: mean probability of IO at END."""
    with torch.no_grad():
        p = accuracy.correct_probability(run.logits, run.prompts).cpu().float().numpy()
    return mean_record(p)


# ---------------------------------------------------------------- §3.4.2 the circuit

def largest_drop(run: ioi.IOIRun) -> Result:
    """I5: the largest drop of the logit-difference curve through the residual stream. The CI is
    the bootstrap over prompts of the drop at the step where the full set drops most (a bootstrap
    of the maximum itself would be biased upward)."""
    values, labels = dla.accumulated(run.bridge, run.cache, run.prompts)
    curves = values.T.cpu().float().numpy()  # [n, points]
    mean = curves.mean(0)
    step = int(np.argmax(mean[:-1] - mean[1:]))
    drop_at = lambda c: float(c.mean(0)[step] - c.mean(0)[step + 1])  # noqa: E731
    return Result.of(value=drop_at(curves), ci=bootstrap_ci(curves, stat=drop_at), curve=mean, labels=labels,
                drop_after=labels[step])


def _head_dla(run: ioi.IOIRun) -> np.ndarray:
    return dla.head_dla(run.bridge, run.cache, run.prompts).cpu().float().numpy()  # [L, H, n]


def dla_share(run: ioi.IOIRun, head: tuple[int, int]) -> Result:
    """I6: every head's share of the total |mean DLA| (the claim checks which heads lead)."""
    d = _head_dla(run)
    mean = d.mean(-1)
    return Result.of(value=np.abs(mean) / np.abs(mean).sum(), n=d.shape[-1], dla_mean=mean,
                **{f"ci_{fmt_item(head)}_dla": bootstrap_ci(d[head])})


def negative_movers(run: ioi.IOIRun, heads) -> Result:
    """I7.gpt2: the larger (less negative) mean DLA of the named heads."""
    d = _head_dla(run)
    pair = np.stack([d[h] for h in heads])
    return Result.of(value=pair.mean(-1).max(), n=d.shape[-1], **{fmt_item(h): bootstrap_ci(d[h]) for h in heads},
                head_map=d.mean(-1), claimed_heads=list(heads))


def most_negative_dla(run: ioi.IOIRun) -> Result:
    """I7.8m: the most negative head DLA as a fraction of |mean logit difference|."""
    mean = _head_dla(run).mean(-1)
    l, h = np.unravel_index(mean.argmin(), mean.shape)
    return Result.of(value=mean.min() / abs(run.ld.mean().item()), most_negative=fmt_item((int(l), int(h))),
                dla=mean[l, h], head_map=mean)


def head_recovery(run: ioi.IOIRun) -> np.ndarray:
    """Per head and prompt, the logit difference with that head's output patched corrupt-to-clean,
    as a fraction of the mean clean - corrupted gap: [L, H, n] (I8's measurement, per prompt)."""
    _, values = run.head_patching()
    clean, corrupt = run.ld.mean().item(), run.ld_corrupted.mean().item()
    return ((values - corrupt) / (clean - corrupt)).float().numpy()


def head_patching(run: ioi.IOIRun, heads) -> Result:
    """I8: normalised recovery of the logit difference when each head's output is patched
    corrupt-to-clean, with per-prompt CIs of the named heads."""
    recovery, _ = run.head_patching()
    per_prompt = head_recovery(run)  # [L, H, n]
    return Result.of(value=recovery, n=len(run.prompts), ci_per_head={fmt_item(h): bootstrap_ci(per_prompt[h]) for h in heads})


def _example(run: ioi.IOIRun, head: tuple[int, int]) -> dict:
    """The head's pattern on the thesis' clean sentence (or the first prompt), for the report."""
    i = run.prompts.texts.index(ioi_prompts.CLEAN_EXAMPLE) if ioi_prompts.CLEAN_EXAMPLE in run.prompts.texts else 0
    tokens = [run.bridge.tokenizer.decode([t]) for t in run.prompts.tokens[i].tolist()]
    pattern = run.cache[f"blocks.{head[0]}.attn.hook_pattern"][i, head[1]].cpu().float().numpy().round(3)
    return {"head": fmt_item(head), "tokens": tokens, "pattern": pattern}


def _from_end(run, head):
    return {k: v.cpu().float().numpy() for k, v in attention.from_end(run.cache, run.prompts, *head).items()}


def attention_io_over_s(run: ioi.IOIRun, head: tuple[int, int], example: bool = True) -> Result:
    """I9: attention END->IO minus END->(S1+S2) of one head."""
    a = _from_end(run, head)
    extra = {"example_pattern": _example(run, head)} if example else {}
    return Result.of(mean_record(a["IO"] - a["S1"] - a["S2"]), **extra, **{f"mean_{k}": v.mean() for k, v in a.items()})


def attention_s2_over_rest(run: ioi.IOIRun, head: tuple[int, int], example: bool = True) -> Result:
    """I10: attention END->S2 minus max(END->IO, END->S1) of one head."""
    a = _from_end(run, head)
    extra = {"example_pattern": _example(run, head)} if example else {}
    return Result.of(mean_record(a["S2"] - np.maximum(a["IO"], a["S1"])), **extra, **{f"mean_{k}": v.mean() for k, v in a.items()})


def edge_recovery(run: ioi.IOIRun, receiver: tuple[int, int], component: str, sender: tuple[int, int]) -> Result:
    """I11: path-patching recovery of every earlier head into receiver's q or v input, with the
    claimed sender's CI over prompts."""
    per_prompt = run.edges(receiver, component).float().numpy()  # [layer, heads, n]
    return Result.of(value=per_prompt.mean(-1), n=per_prompt.shape[-1], **{f"ci_{fmt_item(sender)}": bootstrap_ci(per_prompt[sender])})


# ---------------------------------------------------------------- absence claims with power (issue #11 item 2)

def max_ci(per_item: np.ndarray, axis: int, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
           sign: float = 1.0) -> tuple[float, float]:
    """Percentile bootstrap CI of the maximum over every head of the mean over items (`axis` of
    `per_item` indexes prompts or sequences), resampling the items jointly for all heads.

    Why: an absence claim ("no head scores above t") is decided on the largest of many heads'
    means; the bootstrap of that maximum is a simultaneous bound over heads (no Bonferroni
    needed), and its upward bias makes the upper end conservative for an absence claim.
    sign=-1 gives the CI of the minimum."""
    x = np.moveaxis(np.asarray(per_item, dtype=float), axis, 0) * sign  # [n, ...]
    n = x.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    maxima = np.array([x[i].mean(0).max() for i in idx]) * sign
    alpha = (1 - level) / 2
    lo, hi = float(np.quantile(maxima, alpha)), float(np.quantile(maxima, 1 - alpha))
    return (min(lo, hi), max(lo, hi))


def _smallest_detected(grid, fails) -> float | None:
    """The smallest grid value at which `fails` (monotone in the grid: once detected, a stronger
    planted head is detected too) is true, by bisection; None when even the last is not."""
    if not fails(grid[-1]):
        return None
    lo, hi = -1, len(grid) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fails(grid[mid]) else (mid, hi)
    return float(grid[hi])


def detectable_mix(per_seq: np.ndarray, threshold: float, grid=np.round(np.arange(0.01, 1.001, 0.01), 2)):
    """The smallest strength a (on a 0.01 grid) of a head planted at the head that scores lowest:
    its attention rows mixed as (1-a)*pattern + a*target, so its per-sequence score becomes
    (1-a)*score + a, at which `absent_head_score` would decide FAIL (the whole max-CI above
    threshold). Planting raises only that head's own score exactly this way (later heads may
    change too, which can only raise the maximum), so the value is an upper bound on the
    smallest detected strength. Returns (strength or None, planted head)."""
    s = np.asarray(per_seq, dtype=float)  # [n_layers, n, n_heads]
    l, h = np.unravel_index(s.mean(1).argmin(), (s.shape[0], s.shape[2]))
    def fails(a):
        planted = s.copy()
        planted[l, :, h] = (1 - a) * s[l, :, h] + a
        return max_ci(planted, axis=1)[0] > threshold

    return _smallest_detected(grid, fails), (int(l), int(h))  # the planted score rises with a


def _absence_summary(scores: dict, score: str, threshold: float) -> Result:
    s = scores[score]  # [n_layers, n, n_heads]
    mean = s.mean(1)
    top = tuple(int(t) for t in np.unravel_index(mean.argmax(), mean.shape))
    effect, planted_at = detectable_mix(s, threshold)
    return Result.of(value=float(mean.max()), ci=max_ci(s, axis=1), n=s.shape[1], top_head=fmt_item(top),
                detectable_effect=effect, detectable_effect_head=fmt_item(planted_at), head_map=mean)


def absent_head_score(scores: dict, score: str, threshold: float, thesis_form: dict | None = None,
                      head: tuple[int, int] | None = None) -> dict:
    """I1.8m, I3.8m_weak: the maximum over every head of the mean `score`, with the bootstrap CI
    of that maximum (simultaneous over heads) and the smallest planted-head strength the check
    detects (`detectable_mix`). `thesis_form`: the same scores on the thesis' uniformly random
    tokens, recorded beside (value, CI, top head, detectable effect) when the decision uses
    another form; `head`: a named head's own mean and CI, recorded beside."""
    out = _absence_summary(scores, score, threshold)
    if thesis_form is not None:
        other = _absence_summary(thesis_form, score, threshold)
        out.update({f"random_tokens_{k}": other[k] for k in ("value", "ci", "top_head", "detectable_effect")})
    if head is not None:
        per = scores[score][head[0], :, head[1]]
        out.update({f"{fmt_item(head)}_value": float(per.mean()), f"{fmt_item(head)}_ci": bootstrap_ci(per)})
    return out


def detectable_shift(per_item: np.ndarray, axis: int, decides_fail, grid, sign: float = -1.0) -> tuple[float | None, tuple]:
    """The smallest shift a on `grid` that, added to every item of the least active head (smallest
    |mean|), makes `decides_fail(ci of the minimum over heads)` true: the strength of a planted
    head (e.g. a negative name mover writing -a logits at END) that the check would detect.
    sign=+1: the shift is +a and the CI is that of the maximum over heads (e.g. a planted sender)."""
    x = np.moveaxis(np.asarray(per_item, dtype=float), axis, -1)  # [..., n]
    head = np.unravel_index(np.abs(x.mean(-1)).argmin(), x.shape[:-1])

    def fails(a):
        planted = x.copy()
        planted[head] = planted[head] + sign * a
        return decides_fail(max_ci(planted, axis=-1, sign=sign))

    return _smallest_detected(grid, fails), tuple(int(i) for i in head)


def no_negative_movers(run: ioi.IOIRun, threshold: float) -> Result:
    """I7.8m: the most negative mean head DLA (logits), with the bootstrap CI of the minimum over
    heads (simultaneous), its fraction of |mean logit difference| beside, and detectable_effect:
    the smallest DLA -a of a negative mover planted at the least active head that the check
    decides FAIL (whole CI below threshold), at the run's final LayerNorm scale (a real planted head
    also enlarges that scale, so it needs a few per cent more; tests/test_ioi.py plants one)."""
    d = _head_dla(run)  # [L, H, n]
    mean = d.mean(-1)
    l, h = np.unravel_index(mean.argmin(), mean.shape)
    effect, at = detectable_shift(d, -1, lambda ci: ci[1] < threshold, np.round(np.arange(0.01, 5.001, 0.01), 2))
    return Result.of(value=float(mean.min()), ci=max_ci(d, axis=-1, sign=-1.0), n=d.shape[-1],
                most_negative=fmt_item((int(l), int(h))), fraction_of_logit_diff=float(mean.min() / abs(run.ld.mean().item())),
                detectable_effect=effect, detectable_effect_head=fmt_item(at), head_map=mean)


def never_decreases(run: ioi.IOIRun, threshold: float) -> Result:
    """I5.8m: the largest mean drop between consecutive points of the logit-lens curve (embed,
    L0 attn, L0 MLP, ...), with the bootstrap CI of that maximum over all steps (simultaneous, so
    the step is not chosen after looking), and detectable_effect: the smallest drop a added at
    the flattest step (a head writing -a logits there; detectable_effect_at names the component
    whose output makes that step) that the check decides FAIL, at the run's final LayerNorm scale."""
    values, labels = dla.accumulated(run.bridge, run.cache, run.prompts)
    curves = values.T.cpu().float().numpy()  # [n, points]
    drops = curves[:, :-1] - curves[:, 1:]  # [n, steps]
    mean = drops.mean(0)
    step = int(np.argmax(mean))
    effect, at = detectable_shift(-drops, 0, lambda ci: -ci[1] > threshold, np.round(np.arange(0.01, 5.001, 0.01), 2))
    return Result.of(value=float(mean.max()), ci=max_ci(drops, axis=0), n=drops.shape[0], curve=curves.mean(0),
                labels=labels, drop_after=labels[step], detectable_effect=effect,
                detectable_effect_at=labels[at[0] + 1])


# ---------------------------------------------------------------- issue #14 item 2 (thesis)

def layer_share(run: ioi.IOIRun, layer: int) -> Result:
    """figs 3.7/3.8: the share of the total rise of the logit-lens curve (embed to the last layer)
    written by one layer (its attention and MLP), with a bootstrap CI over prompts of that ratio
    of means; every layer's share beside."""
    values, labels = dla.accumulated(run.bridge, run.cache, run.prompts)
    curves = values.T.cpu().float().numpy()  # [n, points]
    # the point just before layer L's attention is the one before label "L"
    before = [labels.index(f"{l}") - 1 for l in range(run.bridge.cfg.n_layers)]
    after = before[1:] + [len(labels) - 1]

    def share(c, l=layer):
        m = c.mean(0)
        return float((m[after[l]] - m[before[l]]) / (m[-1] - m[0]))

    shares = [share(curves, l) for l in range(run.bridge.cfg.n_layers)]
    return Result.of(value=shares[layer], ci=bootstrap_ci(curves, stat=share), n=curves.shape[0],
                layer_shares=np.array(shares), largest_layer=int(np.argmax(shares)))


def attention_s2_to_s1(run: ioi.IOIRun, head: tuple[int, int]) -> Result:
    """§3.4.2 hypothesis 1 (H4.0 copies duplicate-name information from S1 to S2): the head's
    attention from S2 to S1 minus from S2 to IO on the IOI prompts, with its CI over prompts."""
    p = run.prompts
    pattern = run.cache[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]]  # [n, q, k]
    rows = torch.arange(len(p), device=pattern.device)
    s1, io = pattern[rows, p.pos_s2, p.pos_s1].cpu().float().numpy(), pattern[rows, p.pos_s2, p.pos_io].cpu().float().numpy()
    return Result.of(mean_record(s1 - io), mean_S2_to_S1=s1.mean(), mean_S2_to_IO=io.mean())


# ---------------------------------------------------------------- issue #14 item 2 (thesis, §3.4.2 / §3.5.1)

def _position_after(run: ioi.IOIRun, anchor: torch.Tensor, word: str, rows=None) -> torch.Tensor:
    """Per prompt, the position right after `anchor` (e.g. S2 -> 'gave'), checked to be the token
    `word` (with its leading space): a template where it is not is one ClaimError line."""
    p = run.prompts
    rows = torch.arange(len(p)) if rows is None else rows
    pos = anchor[rows] + 1
    toks = p.tokens[rows.to(p.tokens.device), pos]
    want = ioi_prompts._encode(run.bridge.tokenizer, " " + word)
    bad = [i for i, t in zip(rows.tolist(), toks.tolist()) if [t] != want]
    if bad:
        raise ClaimError(f"IOI prompt {p.texts[bad[0]]!r} has no {word!r} right where the claim reads it; "
                         f"the claim needs templates with '... {word}' there")
    return pos


def _attention(run: ioi.IOIRun, head: tuple[int, int], queries, keys, rows=None) -> np.ndarray:
    """Per prompt (`rows`, default all), the head's attention from queries[i] to keys[i]."""
    pattern = run.cache[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]]  # [n, q, k]
    rows = torch.arange(len(run.prompts)) if rows is None else rows
    r = rows.to(pattern.device)
    return pattern[r, torch.as_tensor(queries).to(pattern.device), torch.as_tensor(keys).to(pattern.device)].cpu().float().numpy()


def previous_token_baseline(run: ioi.IOIRun, head: tuple[int, int], rows=None) -> np.ndarray:
    """Per prompt, the head's mean attention to the previous token over the query positions 1..END
    that do not follow a name (S1+1, IO+1 and S2+1 are left out). Why: 'gave' follows S2 and the
    'and' follows S1, so a previous-token head puts its weight on exactly the name the 'gave'/'and'
    claims ask about; their values subtract this baseline, so only attention beyond the head's
    usual previous-token habit counts."""
    p = run.prompts
    pattern = run.cache[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]].cpu()  # [n, q, k]
    rows = torch.arange(len(p)) if rows is None else rows
    out = []
    for i in rows.tolist():
        skip = {int(p.pos_s1[i]) + 1, int(p.pos_io[i]) + 1, int(p.pos_s2[i]) + 1}
        qs = [q for q in range(1, int(p.pos_end[i]) + 1) if q not in skip]
        out.append(float(pattern[i, qs, [q - 1 for q in qs]].mean()))
    return np.array(out)


def _and_to_s1(run: ioi.IOIRun, head: tuple[int, int]):
    """(rows, attention and->S1, attention and->BOS) on the prompts whose template reads
    '{S1} and {IO}' (the 'and' right after S1); no such prompt is one ClaimError line."""
    p = run.prompts
    and_id = ioi_prompts._encode(run.bridge.tokenizer, " and")
    nxt = p.pos_s1 + 1
    rows = torch.nonzero((p.tokens[torch.arange(len(p), device=p.tokens.device), nxt] == and_id[0])
                         if len(and_id) == 1 else torch.zeros(len(p), dtype=torch.bool)).flatten().cpu()
    if len(rows) < 2:
        raise ClaimError("no IOI template reads '{S1} and {IO}'; the 'and' claim needs at least two such prompts")
    pos_and = _position_after(run, p.pos_s1, "and", rows)
    s1 = _attention(run, head, pos_and, p.pos_s1[rows], rows)
    bos = _attention(run, head, pos_and, torch.zeros_like(pos_and), rows)
    return rows.numpy(), s1, bos


def attention_io_over_s_heads(run: ioi.IOIRun, heads) -> Result:
    """figs 3.15/3.16: I9's measure (END->IO minus END->(S1+S2)) for several heads; the value is
    the smallest head's mean, with the bootstrap CI over prompts of that minimum (resampled jointly)."""
    per = np.stack([(lambda a: a["IO"] - a["S1"] - a["S2"])(_from_end(run, h)) for h in heads], 1)  # [n, heads]
    return Result.of(value=float(per.mean(0).min()), ci=bootstrap_ci(per, stat=lambda x: x.mean(0).min()), n=per.shape[0],
                **{f"mean_{fmt_item(h)}": float(per[:, i].mean()) for i, h in enumerate(heads)},
                example_pattern=_example(run, heads[0]))


def end_attention_both(run: ioi.IOIRun, head: tuple[int, int]) -> Result:
    """§3.5.1 ('H6.11 moves both the subject and the indirect object into the final "to"
    position'): the smaller of the head's mean attention END->IO and END->(S1+S2), with the
    bootstrap CI over prompts of that minimum; both means and their ratio beside."""
    a = _from_end(run, head)
    per = np.stack([a["IO"], a["S1"] + a["S2"]], 1)  # [n, 2]
    io, s = per.mean(0)
    return Result.of(value=float(min(io, s)), ci=bootstrap_ci(per, stat=lambda x: x.mean(0).min()), n=per.shape[0],
                mean_IO=float(io), mean_S=float(s), ratio_S_over_IO=float(s / io) if io > 0 else float("inf"),
                example_pattern=_example(run, head))


def end_attention_to_names(run: ioi.IOIRun, head: tuple[int, int]) -> Result:
    """§3.5.1 (H6.11 'is also a name mover head'): the head's attention from END to the names
    (IO + S1 + S2), with its CI over prompts."""
    a = _from_end(run, head)
    return Result.of(mean_record(a["IO"] + a["S1"] + a["S2"]), **{f"mean_{k}": v.mean() for k, v in a.items()},
                example_pattern=_example(run, head))


def dla_concentration_gap(run_a: ioi.IOIRun, run_b: ioi.IOIRun, models: list[str]) -> Result:
    """fig 3.9 vs 3.10 ('in GPT2-small the impact is more distributed'): the share of the total
    |mean head DLA| held by model a's top head minus that held by model b's top head, with a
    bootstrap CI over prompts (the same prompts resampled for both models); both shares, the top
    heads and how many heads hold half of the total beside."""
    da, db = _head_dla(run_a), _head_dla(run_b)  # [L, H, n]
    if da.shape[-1] != db.shape[-1]:
        raise ClaimError("dla_concentration_gap: the two runs must share the prompt set")

    def top_share(d):
        m = np.abs(d.mean(-1)).ravel()
        return m.max() / m.sum()

    def half(d):
        m = np.sort(np.abs(d.mean(-1)).ravel())[::-1]
        return int(np.searchsorted(np.cumsum(m) / m.sum(), 0.5) + 1)

    both = np.concatenate([da.reshape(-1, da.shape[-1]), db.reshape(-1, db.shape[-1])]).T  # [n, heads_a + heads_b]
    k = da.shape[0] * da.shape[1]
    gap = lambda x: top_share(x[:, :k].T) - top_share(x[:, k:].T)  # noqa: E731
    top = lambda d: fmt_item(tuple(int(i) for i in np.unravel_index(np.abs(d.mean(-1)).argmax(), d.shape[:2])))  # noqa: E731
    return Result.of(value=float(gap(both)), ci=bootstrap_ci(both, stat=gap), n=both.shape[0], models=models,
                top_share_a=float(top_share(da)), top_share_b=float(top_share(db)), top_head_a=top(da),
                top_head_b=top(db), heads_for_half_a=half(da), heads_for_half_b=half(db))


def top_positive_dla(run: ioi.IOIRun, heads) -> Result:
    """§3.4.2 (GPT-2's H9.9, H9.6, H10.0 'have the largest logit difference attribution'): the
    smallest mean DLA of the named heads minus the largest mean DLA of every other head (> 0: they
    are the top len(heads)), with the bootstrap CI over prompts of that margin."""
    d = _head_dla(run)  # [L, H, n]
    flat = d.reshape(-1, d.shape[-1]).T  # [n, L*H]
    idx = [h[0] * d.shape[1] + h[1] for h in heads]
    rest = np.setdiff1d(np.arange(flat.shape[1]), idx)

    def margin(x):
        m = x.mean(0)
        return m[idx].min() - m[rest].max()

    mean = d.mean(-1)
    runner = np.unravel_index(rest[mean.ravel()[rest].argmax()], mean.shape)
    return Result.of(value=float(margin(flat)), ci=bootstrap_ci(flat, stat=margin), n=flat.shape[0], head_map=mean,
                claimed_heads=list(heads), runner_up=fmt_item(tuple(int(i) for i in runner)),
                **{f"dla_{fmt_item(h)}": float(mean[h]) for h in heads})


def resid_handover(run: ioi.IOIRun) -> Result:
    """figs 3.11/3.12 ('using some information stored in the S2 position in one of the later
    layers to get the performance relevant information into the END position'): corrupt-to-clean
    patching of resid_pre by layer x position (S2 ... END); the value is the hand-over layer, the
    first layer whose patched END recovers more of the logit difference than its patched S2 and
    at least half of it (the number of layers when S2 still holds it entering the last layer),
    with the bootstrap CI over prompts of that layer; the recovery map and the S2 / END curves
    beside. -1 when there is nothing to hand over (neither S2 nor END ever recovers half of the
    logit difference: a model that does not use S2 must fail the claim, not pass it as 'late')."""
    labels, rec = run.resid_patching()  # [L, P, n]
    x = np.moveaxis(rec.float().numpy(), -1, 0)  # [n, L, P]

    def handover(c):
        m = c.mean(0)
        if max(m[:, 0].max(), m[:, -1].max()) < 0.5:
            return -1.0
        later = np.nonzero((m[:, -1] > m[:, 0]) & (m[:, -1] >= 0.5))[0]
        return float(later[0]) if len(later) else float(m.shape[0])

    mean = x.mean(0)
    return Result.of(value=handover(x), ci=bootstrap_ci(x, stat=handover), n=x.shape[0], positions=labels,
                recovery_map=mean, S2_curve=mean[:, 0], END_curve=mean[:, -1])


def _sender_stack(scores: dict) -> tuple[list[str], np.ndarray]:
    names = list(scores)
    return names, np.stack([scores[s].float().numpy() for s in names], 1)  # [n, senders]


def top_senders(run: ioi.IOIRun, receiver: tuple[int, int], component: str, claimed: list[str]) -> Result:
    """fig 3.20 ('H7.7's value matrix reads from the output of MLP0 and Embed'): path patching of
    every earlier component (embedding, heads, MLPs) into the receiver's q or v input; the value
    is the smallest |recovery| of the claimed senders minus the largest |recovery| of any other
    (> 0: they are the top len(claimed) by strength, either sign, as the figure's arrows), with the
    bootstrap CI over prompts of that margin; the five strongest senders beside."""
    names, x = _sender_stack(run.senders([receiver], component))
    missing = [c for c in claimed if c not in names]
    if missing:
        raise ClaimError(f"senders {missing} do not write into {fmt_item(receiver)}'s {component} in this model")
    idx = [names.index(c) for c in claimed]
    rest = [i for i in range(len(names)) if i not in idx]

    def margin(c):
        m = np.abs(c.mean(0))
        return m[idx].min() - m[rest].max()

    mean = x.mean(0)
    order = np.argsort(-np.abs(mean))[:5]
    return Result.of(value=float(margin(x)), ci=bootstrap_ci(x, stat=margin), n=x.shape[0],
                strongest=[f"{names[i]} {mean[i]:+.3f}" for i in order],
                **{f"recovery_{c}": float(mean[names.index(c)]) for c in claimed})


def strongest_sender(run: ioi.IOIRun, receivers, component: str, senders: list[str], claimed: str,
                     absolute: bool = False) -> Result:
    """fig 3.18 ('H8.6 ... which is the strongest S-inhibition head'): path patching of each
    sender into the `component` input of all `receivers` at once (the name movers' queries); the
    value is the claimed sender's mean recovery minus the largest other sender's, with the
    bootstrap CI over prompts of that margin; every sender's recovery beside. absolute: the
    senders are compared by |mean recovery| (strength either sign, as top_senders / fig 3.20)."""
    names, x = _sender_stack(run.senders(receivers, component, senders))
    i = names.index(claimed)
    rest = [j for j in range(len(names)) if j != i]
    size = np.abs if absolute else (lambda v: v)
    margin = lambda c: size(c.mean(0))[i] - size(c.mean(0))[rest].max()  # noqa: E731
    mean = x.mean(0)
    return Result.of(value=float(margin(x)), ci=bootstrap_ci(x, stat=margin), n=x.shape[0],
                recovery={s: float(v) for s, v in zip(names, mean)}, runner_up=names[rest[int(size(mean)[rest].argmax())]])


def no_strong_sender(run: ioi.IOIRun, receiver: tuple[int, int], component: str, threshold: float) -> Result:
    """§3.5.1 ('there's no corresponding S-inhibition head that synergizes with' H6.11): path patching
    of every earlier head into the receiver's q (or v) input (I11.q's measurement, IOIRun.edges); the
    value is the largest mean recovery over those heads (signed: a sender that helps the receiver
    move the right name), with the bootstrap CI of that maximum over prompts (simultaneous over
    heads), and detectable_effect: the smallest recovery a added to the least active head's edge
    that the check decides FAIL (whole CI above threshold). The receiver's own head-patching
    recovery (I8's measurement) and the five strongest senders beside."""
    x = run.edges(receiver, component).float().numpy()  # [layer, heads, n]
    if x.size == 0:
        raise ClaimError(f"{fmt_item(receiver)} has no earlier head")
    mean = x.mean(-1)
    top = tuple(int(i) for i in np.unravel_index(mean.argmax(), mean.shape))
    order = np.argsort(-mean.ravel())[:5]
    effect, at = detectable_shift(x, -1, lambda ci: ci[0] > threshold, np.round(np.arange(0.005, 1.001, 0.005), 3),
                                  sign=1.0)
    return Result.of(value=float(mean.max()), ci=max_ci(x, axis=-1), n=x.shape[-1], top_sender=fmt_item(top),
                     strongest=[f"{fmt_item(np.unravel_index(i, mean.shape))} {mean.ravel()[i]:+.3f}" for i in order],
                     receiver_head_patching=float(head_recovery(run)[receiver].mean()),
                     detectable_effect=effect, detectable_effect_head=fmt_item(at), head_map=mean)


def patching_top_k(run: ioi.IOIRun, heads, k: int = 5) -> Result:
    """fig 3.14 (GPT-2 small head-output patching, no sentence of its own): how many of the named
    heads (Wang et al.'s name movers and S-inhibition heads) are among the k heads with the
    largest recovery (I8's measurement), with the bootstrap CI over prompts of that count; the
    largest single head's share of the total |recovery| beside ('more distributed' than 8M)."""
    per = head_recovery(run)  # [L, H, n]
    flat = per.reshape(-1, per.shape[-1]).T  # [n, L*H]
    idx = {h[0] * per.shape[1] + h[1] for h in heads}

    def count(c):
        top = np.argsort(-c.mean(0))[:k]
        return float(len(idx.intersection(top.tolist())))

    mean = per.mean(-1)
    top = [fmt_item(tuple(int(i) for i in np.unravel_index(j, mean.shape))) for j in np.argsort(-mean.ravel())[:k]]
    return Result.of(value=count(flat), ci=bootstrap_ci(flat, stat=count), n=flat.shape[0], top_heads=top,
                largest_share=float(np.abs(mean).max() / np.abs(mean).sum()), head_map=mean)


def weaker_mover(run: ioi.IOIRun, head: tuple[int, int], reference: tuple[int, int]) -> Result:
    """§3.5.1 (H6.11 is a name mover 'consistent with the head patching in 3.13, although a
    weaker one than H7.7'): with r = head-patching recovery (I8's measurement, a fraction of the
    clean - corrupted logit difference, mean over prompts), the smaller of r(head) (it visibly
    matters) and r(reference) - r(head) (it is weaker), with the bootstrap CI over prompts of that
    minimum. Why not the ratio r(head) / r(reference): where the reference does nothing (a random
    stand-in) the ratio of two means near 0 is unbounded and its bootstrap CI meaningless; the
    ratio is recorded beside when the reference's own CI is above 0."""
    per = head_recovery(run)
    x = np.stack([per[head], per[reference]], 1)  # [n, 2]
    stat = lambda c: min(c[:, 0].mean(), c[:, 1].mean() - c[:, 0].mean())  # noqa: E731
    ref_ci = bootstrap_ci(x[:, 1])
    ratio = float(x[:, 0].mean() / x[:, 1].mean()) if ref_ci[0] > 0 else None
    return Result.of(value=float(stat(x)), ci=bootstrap_ci(x, stat=stat), n=x.shape[0], ratio=ratio,
                **{f"recovery_{fmt_item(head)}": float(x[:, 0].mean()), f"recovery_{fmt_item(reference)}": float(x[:, 1].mean()),
                   f"recovery_{fmt_item(reference)}_ci": ref_ci})


def pattern_similarity(run_a: ioi.IOIRun, run_b: ioi.IOIRun | None = None, *, head_a: tuple[int, int], heads_b,
                       example: bool = False) -> Result:
    """fig 3.17 vs 3.15/3.16 ('the attention pattern of TinyStories-8M's H7.7 is quite similar to those
    of GPT2-small's H9.9 and H9.6'): per prompt, the correlation (cosine after subtracting each row's
    mean) of head_a's END row (model a) and each of heads_b's END rows (model b) on the same prompt
    (both models read the GPT-2 tokenizer, so the prompts are the same tokens); the value is the
    smaller of the heads' mean correlations, with the bootstrap CI over prompts of that minimum.
    Centred, because two near-uniform rows (heads that attend nowhere in particular, as in random
    models) have a cosine near 1 but no correlation.

    run_b None: heads of one model compared (model b is model a: figs 3.15 vs 3.16, H9.9 vs H9.6).
    example: only the thesis' clean sentence (ioi_prompts.CLEAN_EXAMPLE, the input of its figures;
    a statement the author limits to 'this input'): the value is that prompt's correlation, exact
    (no CI: one input), and the prompt-set means are recorded beside as `all_prompts_*` (the
    general reading the author declines, not decided)."""
    run_b = run_a if run_b is None else run_b
    if not torch.equal(run_a.prompts.tokens.cpu(), run_b.prompts.tokens.cpu()):
        raise ClaimError("pattern_similarity: the two models must read the same prompt tokens")
    p = run_a.prompts
    n = torch.arange(len(p))

    def end_rows(run, head):
        pattern = run.cache[f"blocks.{head[0]}.attn.hook_pattern"][:, head[1]]
        rows = pattern[n.to(pattern.device), p.pos_end.to(pattern.device)].cpu().double()  # [n, k]
        keys = (torch.arange(rows.shape[1])[None] <= p.pos_end.cpu()[:, None]).double()  # causal keys
        return (rows - (rows * keys).sum(-1, keepdim=True) / keys.sum(-1, keepdim=True)) * keys

    a = end_rows(run_a, head_a)
    cos = np.stack([torch.nn.functional.cosine_similarity(a, end_rows(run_b, h), dim=-1).numpy() for h in heads_b], 1)
    stat = lambda x: float(x.mean(0).min())  # noqa: E731
    means = {f"mean_correlation_{fmt_item(h)}": float(cos[:, i].mean()) for i, h in enumerate(heads_b)}
    if not example:
        return Result.of(value=stat(cos), ci=bootstrap_ci(cos, stat=stat), n=cos.shape[0], **means)
    if ioi_prompts.CLEAN_EXAMPLE not in p.texts:
        raise ClaimError(f"pattern_similarity: the thesis' example {ioi_prompts.CLEAN_EXAMPLE!r} is not in the prompt set")
    i = p.texts.index(ioi_prompts.CLEAN_EXAMPLE)
    return Result.of(value=stat(cos[i : i + 1]), n=1, prompt=ioi_prompts.CLEAN_EXAMPLE,
                     **{f"correlation_{fmt_item(h)}": float(cos[i, j]) for j, h in enumerate(heads_b)},
                     all_prompts_value=stat(cos), all_prompts_ci=bootstrap_ci(cos, stat=stat),
                     **{f"all_prompts_{k}": v for k, v in means.items()},
                     example_pattern=_example(run_a, head_a),
                     **{f"example_pattern_{fmt_item(h)}": _example(run_b, h) for h in heads_b})


def fewer_heads(run_a: ioi.IOIRun, run_b: ioi.IOIRun, models: list[str], threshold: float = 0.05) -> Result:
    """§3.4.2 ('There's a smaller amount of heads used to perform the task'): the number of heads
    whose head-patching recovery (I8's measurement) is >= threshold in model a minus that in model
    b, with the bootstrap CI over the shared prompts (resampled jointly for both models); both counts
    and heads beside."""
    a, b = (head_recovery(run).reshape(-1, len(run.prompts)).T for run in (run_a, run_b))  # [n, heads]
    if a.shape[0] != b.shape[0]:
        raise ClaimError("fewer_heads: the two runs must share the prompt set")
    k = a.shape[1]
    both = np.concatenate([a, b], 1)
    diff = lambda x: float((x[:, :k].mean(0) >= threshold).sum() - (x[:, k:].mean(0) >= threshold).sum())  # noqa: E731
    return Result.of(value=diff(both), ci=bootstrap_ci(both, stat=diff), n=both.shape[0], models=models,
                count_a=int((a.mean(0) >= threshold).sum()), count_b=int((b.mean(0) >= threshold).sum()))


# ---------------------------------------------------------------- issue #21 (second reading of the thesis)

SENDS = ("END<-S2", "gave<-S2", "and<-S1", "END<-IO", "gave<-IO")


def sends_information(run: ioi.IOIRun, heads, pairs, attend: float = 0.3, margin: float = 0.1) -> Result:
    """One rule for 'the head sends information from X to Y' (figs 3.15-3.19; l.779 decides H5.7
    'like GPT2-small's H8.6'): for each head and each named pair Y<-X, (a) the raw attention Y->X
    (the figure's pattern, BOS included), mean over prompts, minus `attend` (the suite's 'attends
    to'); and (b) where X is the token right before Y in every prompt ('gave' after S2, 'and' after
    S1), the raw attention minus the head's previous-token baseline, minus `margin`, so a plain
    previous-token head does not pass. value = the smallest of these margins over heads and pairs
    (>= 0: every part holds), with the bootstrap CI over prompts of that minimum (resampled
    jointly; the and-pair reads the '{S1} and {IO}' prompts only). The habit-subtracted forms of
    the older claims (minus the other names, minus BOS) are in details."""
    p = run.prompts
    n = len(p)
    cols, details = [], {}
    for pair in pairs:
        if pair not in SENDS:
            raise ClaimError(f"sends_information: pair {pair!r}; use one of {', '.join(SENDS)}")
    for head in heads:
        end = _from_end(run, head)
        gave = _position_after(run, p.pos_s2, "gave") if any(x.startswith("gave") for x in pairs) else None
        for pair in pairs:
            query, key = pair.split("<-")
            raw = np.full(n, np.nan)
            rows = torch.arange(n)
            if query == "END":
                raw[:] = end[key]
                qpos = p.pos_end
            elif query == "gave":
                raw[:] = _attention(run, head, gave, {"S2": p.pos_s2, "IO": p.pos_io}[key])
                qpos = gave
            else:  # and<-S1
                r, s1, bos = _and_to_s1(run, head)
                raw[r] = s1
                rows = torch.as_tensor(r)
                qpos = p.pos_s1 + 1
                details[f"{fmt_item(head)}_{pair}_minus_BOS"] = float(np.mean(s1 - bos))
            name = f"{fmt_item(head)}_{pair}"
            cols.append(raw - attend)
            details[f"{name}_raw"] = float(np.nanmean(raw))
            kpos = {"S2": p.pos_s2, "S1": p.pos_s1, "IO": p.pos_io}[key]
            if bool((kpos[rows] == qpos[rows] - 1).all()):  # the key is the token right before the query
                base = np.full(n, np.nan)
                base[rows.numpy()] = previous_token_baseline(run, head, rows)
                cols.append(raw - base - margin)
                details[f"{name}_minus_previous_token_baseline"] = float(np.nanmean(raw - base))
            if query in ("END", "gave"):
                q = qpos
                others = [k for k in ("IO", "S1", "S2") if k != key]
                o = np.max([_attention(run, head, q, {"S2": p.pos_s2, "S1": p.pos_s1, "IO": p.pos_io}[k]) for k in others], 0)
                details[f"{name}_minus_other_names"] = float(np.nanmean(raw - o))
    per = np.stack(cols, 1)  # [n, parts]
    full = np.nanmean(per, 0)

    def stat(x):  # a resample without any '{S1} and {IO}' prompt keeps the full set's and-part
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(x, 0)
        return float(np.where(np.isnan(m), full, m).min())

    return Result.of(value=stat(per), ci=bootstrap_ci(per, stat=stat), n=n, attend=attend, margin=margin,
                     example_pattern=_example(run, heads[0]), **details)


def absent_in_forms(forms, score: str, threshold: float) -> Result:
    """I1.8m: absent_head_score decided on the first form (repeated TinyStories tokens), the second
    (the thesis' uniformly random tokens) recorded beside."""
    decided, thesis = forms
    return absent_head_score(decided, score, threshold, thesis_form=thesis)


def head_count_ratio(bridges) -> Result:
    """§3.4.2 ('about the same number of heads as GPT2-small'): r = heads(a) / heads(b), heads =
    n_layers x n_heads read from the loaded models' configs; value min(r, 1/r) (1 = the same);
    exact (no CI); both counts and both parameter counts beside."""
    a, b = bridges
    ha, hb = a.cfg.n_layers * a.cfg.n_heads, b.cfg.n_layers * b.cfg.n_heads
    pa, pb = (sum(t.numel() for t in x.parameters()) for x in (a, b))
    r = ha / hb
    return Result.of(value=float(min(r, 1 / r)), heads_a=ha, heads_b=hb, parameters_a=pa, parameters_b=pb,
                     parameter_ratio=pa / pb)
