"""Measurements of "Interpreting Tiny Transformers" (TinyStories-1M POS heads), one per claim.

Why a module (not inline in the claim file): each claim of claims/test_pos_heads_tinystories_1m.py
binds one of these functions with every setting (the head, the layers, the thresholds) and the
PaperText it reads (`Measure(partial(fn, ...), on=PaperText(...))`); the plugin runs that very
object on the claim's model and on its controls (mechcheck.studies.pos_constructed), so what is
shown to pass on a constructed head and to fail without it is exactly what the claim computes.
Each function takes a POSRun and returns a Result; settings have no defaults (one place: the claim).
"""

from __future__ import annotations

import numpy as np

from mechcheck.core.result import Result
from mechcheck.studies.pos_heads import POSRun, ProbeResult, best_head, f1_from_counts

N_BOOT = 1000


def _bootstrap(n: int, stat, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of stat(paragraphs) over `n` paragraphs resampled with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    vals = [stat(rng.integers(0, n, n)) for _ in range(n_boot)]
    return float(np.nanquantile(vals, 0.025)), float(np.nanquantile(vals, 0.975))


def probe_f1_ci(result: ProbeResult, tags, head: tuple[int, int], seed: int = 0) -> tuple[float, float]:
    """CI of the lowest of `tags`' F1s for one head's probe, over held-out paragraphs."""
    counts = [result.counts(t)[head] for t in tags]  # [n_paragraphs, 3] each: tp, fp, fn

    def lowest_f1(draw):
        weights = np.bincount(draw, minlength=counts[0].shape[0])
        return min(float(f1_from_counts(weights @ c)) for c in counts)

    return _bootstrap(counts[0].shape[0], lowest_f1, seed=seed)


def _probe_record(run: POSRun, kind: str, tags, head) -> Result:
    result = run.probe(kind)
    f1 = {t: result.f1(t) for t in tags}
    lowest = np.min(np.stack(list(f1.values())), axis=0)
    base = run.probe(kind, heads=[head], shuffled=True)
    return Result.of(value=lowest[head], ci=probe_f1_ci(result, tags, head), n=len(np.unique(result.paragraph)),
                held_out_tokens=run.held_out_counts(tags), shuffled_label_f1={t: base.f1(t)[head] for t in tags},
                best_head=best_head(lowest), head_map=lowest, claimed_heads=[head], f1=f1)


def quote_key_probe(run: POSRun, *, head) -> Result:
    """P1: the lower of the `` and '' key-probe F1s of `head` (CI over held-out paragraphs)."""
    rec = _probe_record(run, "key", ("``", "''"), head)
    f1 = rec.pop("f1")
    return Result.of(rec, f1_open=f1["``"][head], f1_close=f1["''"][head])


def f1_map_ci(result: ProbeResult, tag: str, stat, seed: int = 0) -> tuple[float, float]:
    """CI of stat(F1 map [L, H] of `tag`) over held-out paragraphs resampled with replacement."""
    counts = result.counts(tag)  # [L, H, n_paragraphs, 3]
    return _bootstrap(counts.shape[2], lambda draw: stat(f1_from_counts(np.einsum(
        "lhpc,p->lhc", counts, np.bincount(draw, minlength=counts.shape[2])))), seed=seed)


LATE = (4, 5, 6, 7)  # "late": the second half of TinyStories-1M's 8 layers
EARLY = (0, 1, 2, 3)


def late_layer_exception(f1: np.ndarray, head, late, margin: float) -> float:
    """How far `head` stands out among the heads of the `late` layers: its F1 minus the larger of
    the best other late head and the other late heads' mean + `margin`; >= 0 means first of the
    late heads and at least `margin` above their mean."""
    others = late_others(f1, head, late)
    return float(f1[tuple(head)] - max(others.max(), others.mean() + margin))


def late_others(f1: np.ndarray, head, late) -> np.ndarray:
    """F1 of every head of the `late` layers except `head`."""
    return np.array([f1[l, h] for l in late for h in range(f1.shape[1]) if (l, h) != tuple(head)])


def past_tense_key_probe(run: POSRun, *, head, late, margin: float, floor: float | None) -> Result:
    """P4: `head`'s VBD key-probe F1 stands out in the late layers (late_layer_exception) and, with
    `floor` (the published F1 less the tolerance), is itself at least `floor`: the value is the
    smaller of the two margins, with a bootstrap CI over held-out paragraphs; the map of all heads
    and per-layer means recorded."""
    result = run.probe("key")
    f1 = result.f1("VBD")

    def stat(m):
        out = late_layer_exception(m, head, late, margin)
        return out if floor is None else min(out, float(m[tuple(head)] - floor))

    others = late_others(f1, head, late)
    late_f1 = f1[list(late)]
    return Result.of(value=stat(f1), ci=f1_map_ci(result, "VBD", stat), stands_out_by=late_layer_exception(f1, head, late, margin),
                **{f"L{head[0]}H{head[1]}": f1[tuple(head)]}, late_layers=list(late), late_runner_up=float(others.max()),
                late_mean_others=float(others.mean()), rank_in_late_layers=int((late_f1 > f1[tuple(head)]).sum()) + 1,
                rank_all_heads=int((f1 > f1[tuple(head)]).sum()) + 1, layer_means=f1.mean(1), best_head=best_head(f1),
                head_map=f1, claimed_heads=[head], held_out_tokens=run.held_out_counts(("VBD",)))


def layer_means_without(f1: np.ndarray, exception) -> np.ndarray:
    """Mean F1 of each layer's heads, `exception` (a head, or None) left out of its layer's mean."""
    m = f1.astype(float).copy()
    if exception is not None:
        m[tuple(exception)] = np.nan
    return np.nanmean(m, 1)


def depth_trend(f1: np.ndarray, exception=None) -> float:
    """Spearman correlation of layer index and per-layer mean F1 (0 when the means are all equal)."""
    from scipy.stats import spearmanr

    means = layer_means_without(f1, exception)
    if np.allclose(means, means[0]):
        return 0.0
    return float(spearmanr(np.arange(len(means)), means).statistic)


def past_tense_depth_trend(run: POSRun, *, exception) -> Result:
    """P4.trend: Spearman correlation of layer and mean VBD key-probe F1 per layer, `exception` left
    out of its layer's mean; bootstrap CI over held-out paragraphs."""
    result = run.probe("key")
    f1 = result.f1("VBD")
    return Result.of(value=depth_trend(f1, exception), ci=f1_map_ci(result, "VBD", lambda m: depth_trend(m, exception)),
                layer_means=layer_means_without(f1, exception), layer_means_with_exception=f1.mean(1),
                best_head=best_head(f1), head_map=f1, held_out_tokens=run.held_out_counts(("VBD",)))


def early_best_heads(f1: np.ndarray, early) -> float:
    """Mean over the `early` layers of each layer's best head's F1: how well probes trained on those
    layers find the tag (a layer-level reading: one layer's heads range widely)."""
    return float(f1[list(early)].max(1).mean())


def past_tense_early_layers(run: POSRun, *, early, late) -> Result:
    """P4.early: VBD key-probe F1 is high in the `early` layers: the mean over those layers of their
    best head's F1 (early_best_heads), bootstrap CI over held-out paragraphs; the heads' plain mean
    per layer, the best head of each layer and the `late` layers' value for comparison recorded."""
    result = run.probe("key")
    f1 = result.f1("VBD")
    stat = lambda m: early_best_heads(m, early)  # noqa: E731
    best = [f"L{l}H{int(np.argmax(f1[l]))}" for l in early]
    return Result.of(value=stat(f1), ci=f1_map_ci(result, "VBD", stat), best_per_layer=f1.max(1), best_early_heads=best,
                     layer_means=f1.mean(1), early_heads_mean=float(f1[list(early)].mean()),
                     late_best_heads=early_best_heads(f1, late), best_head=best_head(f1), head_map=f1,
                     held_out_tokens=run.held_out_counts(("VBD",)))


def good_heads(f1: np.ndarray, threshold: float, layers=None) -> int:
    """Number of heads (of `layers`, default all) whose probe F1 reaches `threshold`."""
    return int(((f1 if layers is None else f1[list(layers)]) >= threshold).sum())


def early_minus_late(f1: np.ndarray, threshold: float) -> int:
    """Heads of layers 0-3 minus heads of layers 4-7 whose F1 reaches `threshold`."""
    return good_heads(f1, threshold, EARLY) - good_heads(f1, threshold, LATE)


def many_mostly_early(f1: np.ndarray, threshold: float, many: int) -> int:
    """'Many heads, mostly in early layers', in heads: the smaller of (heads reaching `threshold`)
    - `many` and (early minus late such heads) - 1; >= 0 when both parts hold. Two parts, as the
    paper's two words: an easy tag read by almost every head is 'many' but not 'mostly early'."""
    return min(good_heads(f1, threshold) - many, early_minus_late(f1, threshold) - 1)


def conjunction_key_probe(run: POSRun, *, threshold: float, many: int) -> Result:
    """P10.cc: CC key-probe F1 of all heads; value: many_mostly_early (at least `many` heads reach
    `threshold`, and more of them in the early layers 0-3 than in the late layers 4-7)."""
    result = run.probe("key")
    f1 = result.f1("CC")
    stat = lambda m: many_mostly_early(m, threshold, many)  # noqa: E731
    return Result.of(value=stat(f1), ci=f1_map_ci(result, "CC", stat), good_heads=good_heads(f1, threshold),
                good_early=good_heads(f1, threshold, EARLY), good_late=good_heads(f1, threshold, LATE),
                good_per_layer=(f1 >= threshold).sum(1), best_head=best_head(f1), head_map=f1,
                held_out_tokens=run.held_out_counts(("CC",)))


def modal_key_probe(run: POSRun, *, threshold: float) -> Result:
    """P10.md: MD key-probe F1 of all heads; value: the number of heads reaching `threshold`."""
    result = run.probe("key")
    f1 = result.f1("MD")
    good = np.argwhere(f1 >= threshold)
    return Result.of(value=good_heads(f1, threshold), ci=f1_map_ci(result, "MD", lambda m: good_heads(m, threshold)),
                good=[f"L{l}H{h}" for l, h in good], best_head=best_head(f1), head_map=f1,
                held_out_tokens=run.held_out_counts(("MD",)))


def possessive_query_probe(run: POSRun, *, head) -> dict:
    """P7: PRP$ query-probe F1 of `head` (CI over held-out paragraphs)."""
    rec = _probe_record(run, "query", ("PRP$",), head)
    rec.pop("f1")
    rec["shuffled_label_f1"] = rec["shuffled_label_f1"]["PRP$"]
    return rec


def activity(run: POSRun, mask: np.ndarray, head) -> Result:
    """P2/P5/P8: activity ratio (mask tokens / other word tokens) of `head`, its CI over paragraphs."""
    ratio = run.activity_ratio(mask)
    n = run.tags.shape[0]
    ci = _bootstrap(n, lambda seqs: run.activity_ratio(mask, seqs)[head], n_boot=200)
    return Result.of(value=ratio[head], ci=ci, n=n, best_head=best_head(ratio), head_map=ratio, claimed_heads=[head])


def quote_activity(run: POSRun, *, head) -> dict:
    """P2: activity inside quotations / outside."""
    return activity(run, run.in_quote, head)


def past_tense_activity(run: POSRun, *, head) -> dict:
    """P5: activity on the token right before a VBD / elsewhere."""
    return activity(run, run.before_vbd(), head)


def definite_noun_activity(run: POSRun, *, head) -> Result:
    """P8: activity on PRP$ and the definite article ("the"/"The") right before a noun / elsewhere;
    the ratio on every DT + PRP$ before a noun (the earlier reading) is recorded beside it."""
    rec = activity(run, run.prp_the_before_noun(), head)
    return Result.of(rec, n_tokens=int(run.prp_the_before_noun().sum()),
                every_dt_ratio=run.activity_ratio(run.prp_dt_before_noun())[tuple(head)])


def quote_attention(run: POSRun, *, head) -> Result:
    """P3: mean attention from in-quote tokens to their opening quote; closing-quote row recorded."""
    att = run.attention_to_opening_quote()
    closing = run.closing_quote_attention()
    return Result.of(value=att[head], n=int(run.in_quote.sum()), best_head=best_head(att), head_map=att,
                claimed_heads=[head], closing_quote_row={k: v[head] for k, v in closing.items()},
                example_pattern=run.example_pattern(*head))


def quote_closing_shift(run: POSRun, *, head) -> Result:
    """P3.closing: the shift to the end mark (POSRun.closing_shift): at the closing quote, `head`'s
    attention on the end mark (the closing-quote token itself) minus its attention on the opening
    quote, less its own self-attention inside quotations; bootstrap CI over paragraphs."""
    shift = run.closing_shift()
    closing = run.closing_quote_attention()
    return Result.of(value=shift[tuple(head)], ci=_bootstrap(run.tags.shape[0], lambda s: run.closing_shift(s)[tuple(head)]),
                n=int(run.classes["closing"].sum()), best_head=best_head(shift), head_map=shift, claimed_heads=[head],
                closing_quote_row={k: v[tuple(head)] for k, v in closing.items()})


def past_tense_attention(run: POSRun, *, head) -> Result:
    """P6: from the token before a VBD, share of the attention on keys other than BOS and self that
    goes to earlier VBD tokens; the raw mass (BOS and self included) is recorded beside it."""
    att = run.attention_to_earlier_vbd("excluded")
    by_tag = run.attention_by_tag("before_vbd", *head)
    return Result.of(value=att[tuple(head)], n=run.earlier_vbd_queries(),
                included_convention=run.attention_to_earlier_vbd("included")[tuple(head)], best_head=best_head(att),
                attention_by_tag=dict(list(by_tag.items())[:8]), head_map=att, claimed_heads=[head])


def _noun_share_record(run: POSRun, query_class: str, head) -> Result:
    share = run.noun_share(query_class, "excluded")
    return Result.of(value=share[tuple(head)], n=int(run.classes[query_class][:, 2:].sum()),
                included_convention=run.noun_share(query_class, "included")[tuple(head)], best_head=best_head(share),
                head_map=share, claimed_heads=[head],
                attention_by_tag=dict(list(run.attention_by_tag(query_class, *head).items())[:8]))


def possessive_noun_attention(run: POSRun, *, head) -> dict:
    """P9: from PRP$, share of the attention on keys other than BOS and self that goes to nouns; the
    raw mass (BOS and self included) is recorded beside it."""
    return _noun_share_record(run, "prp$", head)


def past_tense_noun_attention(run: POSRun, *, head) -> Result:
    """P6.nouns (§5.2 body text): from the token before a VBD, share of the attention (BOS and self
    excluded) on nouns, as P9 measures it; the past-tense reading (P6's value) recorded beside it."""
    return Result.of(_noun_share_record(run, "before_vbd", head),
                vbd_reading=run.attention_to_earlier_vbd("excluded")[tuple(head)])


def recent_noun_attention(run: POSRun, *, head) -> Result:
    """P9.recent (fig 4c): from "the"/PRP$ right before a noun, with >= 2 earlier nouns, the fraction
    of positions where `head`'s most attended earlier noun is the most recent one; CI over paragraphs."""
    frac, n, chance = run.most_recent_noun()
    ci = _bootstrap(run.tags.shape[0], lambda s: run.most_recent_noun(s)[0][tuple(head)]) if n else (np.nan, np.nan)
    return Result.of(value=frac[tuple(head)], ci=ci, n=n, chance=chance, best_head=best_head(frac) if n else "none",
                head_map=frac, claimed_heads=[head])


MIN_QUERY_TOKENS = 20  # a tag's bar in appendix D counts when at least this many query tokens carry it


def nn_attention_lead(sums: np.ndarray, rows: np.ndarray, tag_names, leaders) -> float:
    """Appendix D: the smaller of `leaders`' mean attention on NN minus the largest other tag's
    (tags with >= MIN_QUERY_TOKENS query tokens); sums and rows [T] summed over paragraphs."""
    mean = np.where(rows > 0, sums / np.maximum(rows, 1), np.nan)
    lead = [mean[list(tag_names).index(t)] if t in tag_names else np.nan for t in leaders]
    other = [mean[i] for i, t in enumerate(tag_names) if t not in leaders and t != "(none)" and rows[i] >= MIN_QUERY_TOKENS]
    return float(np.nan_to_num(min(lead), nan=0.0) - (max(other) if other else 0.0))


def noun_attended_by(run: POSRun, *, head, leaders) -> Result:
    """P9.by_tag (appendix D, fig 8): `head`'s mean attention on NN tokens by the tag of the
    attending token (BOS and self excluded, renormalised); value: how far DT and PRP$ lead every
    other tag; bootstrap CI over paragraphs. The raw-pattern bars are recorded beside it."""
    sums, rows = run.to_nn_per_paragraph(*head, "excluded")
    names = list(run.tag_names)
    stat = lambda s: nn_attention_lead(sums[s].sum(0), rows[s].sum(0), names, leaders)  # noqa: E731
    bars, counts = run.attention_to_nn_by_query_tag("excluded", min_tokens=MIN_QUERY_TOKENS)
    raw, _ = run.attention_to_nn_by_query_tag("included", min_tokens=MIN_QUERY_TOKENS)
    top = sorted(bars, key=lambda t: -bars[t][tuple(head)])
    lead_map = np.min([bars[t] for t in leaders if t in bars], axis=0) - np.max(
        [bars[t] for t in bars if t not in leaders], axis=0) if all(t in bars for t in leaders) else None
    return Result.of(value=stat(np.arange(len(sums))), ci=_bootstrap(len(sums), stat),
                n=sum(counts.get(t, 0) for t in leaders),
                query_tokens=counts,
                bars={t: bars[t][tuple(head)] for t in top[:8]}, included_convention={t: raw[t][tuple(head)] for t in top[:8]},
                best_head=best_head(lead_map) if lead_map is not None else "none", claimed_heads=[head])
