"""Measurements of "Interpreting Tiny Transformers" (TinyStories-1M POS heads), one per claim.

Why a module (not inline in the claim file): the claim (claims/test_pos_heads_tinystories_1m.py)
and its controls (tests/test_pos.py) call the same function, so what is shown to pass on a
constructed quotation head and to fail without it is exactly what the claim computes. Each
function takes a POSRun and returns keyword arguments for `measure.record(...)`.
"""

from __future__ import annotations

import numpy as np

from mechcheck.pos_heads import POSRun, ProbeResult, best_head

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
        f1 = []
        for c in counts:
            tp, fp, fn = weights @ c
            f1.append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0)
        return min(f1)

    return _bootstrap(counts[0].shape[0], lowest_f1, seed=seed)


def _probe_record(run: POSRun, kind: str, tags, head) -> dict:
    result = run.probe(kind)
    f1 = {t: result.f1(t) for t in tags}
    lowest = np.min(np.stack(list(f1.values())), axis=0)
    base = run.probe(kind, heads=[head], shuffled=True)
    return dict(value=lowest[head], ci=probe_f1_ci(result, tags, head), n=len(np.unique(result.paragraph)),
                held_out_tokens=run.held_out_counts(tags), shuffled_label_f1={t: base.f1(t)[head] for t in tags},
                best_head=best_head(lowest), head_map=lowest, claimed_heads=[head], f1=f1)


def quote_key_probe(run: POSRun, head=(2, 0)) -> dict:
    """P1: the lower of the `` and '' key-probe F1s of `head` (CI over held-out paragraphs)."""
    rec = _probe_record(run, "key", ("``", "''"), head)
    f1 = rec.pop("f1")
    return dict(rec, f1_open=f1["``"][head], f1_close=f1["''"][head])


def past_tense_key_probe(run: POSRun, head=(6, 4)) -> dict:
    """P4: the VBD key-probe F1 map of all heads (the claim: `head` is its argmax)."""
    f1 = run.probe("key").f1("VBD")
    return dict(value=f1, **{f"L{head[0]}H{head[1]}": f1[head]}, layer_means=f1.mean(1), best_head=best_head(f1),
                held_out_tokens=run.held_out_counts(("VBD",)))


def possessive_query_probe(run: POSRun, head=(5, 5)) -> dict:
    """P7: PRP$ query-probe F1 of `head` (CI over held-out paragraphs)."""
    rec = _probe_record(run, "query", ("PRP$",), head)
    rec.pop("f1")
    rec["shuffled_label_f1"] = rec["shuffled_label_f1"]["PRP$"]
    return rec


def activity(run: POSRun, mask: np.ndarray, head) -> dict:
    """P2/P5/P8: activity ratio (mask tokens / other word tokens) of `head`, its CI over paragraphs."""
    ratio = run.activity_ratio(mask)
    n = run.tags.shape[0]
    ci = _bootstrap(n, lambda seqs: run.activity_ratio(mask, seqs)[head], n_boot=200)
    return dict(value=ratio[head], ci=ci, n=n, best_head=best_head(ratio), head_map=ratio, claimed_heads=[head])


def quote_activity(run: POSRun, head=(2, 0)) -> dict:
    """P2: activity inside quotations / outside."""
    return activity(run, run.in_quote, head)


def past_tense_activity(run: POSRun, head=(6, 4)) -> dict:
    """P5: activity on the token right before a VBD / elsewhere."""
    return activity(run, run.before_vbd(), head)


def definite_noun_activity(run: POSRun, head=(5, 5)) -> dict:
    """P8: activity on PRP$/DT right before a noun / elsewhere."""
    return activity(run, run.prp_dt_before_noun(), head)


def quote_attention(run: POSRun, head=(2, 0)) -> dict:
    """P3: mean attention from in-quote tokens to their opening quote; closing-quote row recorded."""
    att = run.attention_to_opening_quote()
    closing = run.closing_quote_attention()
    return dict(value=att[head], n=int(run.in_quote.sum()), best_head=best_head(att), head_map=att,
                claimed_heads=[head], closing_quote_row={k: v[head] for k, v in closing.items()},
                example_pattern=run.example_pattern(*head))


def past_tense_attention(run: POSRun, head=(6, 4)) -> dict:
    """P6: from the token before a VBD, attention mass on earlier VBD tokens."""
    att = run.attention_to_earlier_vbd()
    by_tag = run.attention_by_tag("before_vbd", *head)
    return dict(value=att[head], best_head=best_head(att), attention_by_tag=dict(list(by_tag.items())[:8]),
                head_map=att, claimed_heads=[head])


def possessive_noun_attention(run: POSRun, head=(5, 5)) -> dict:
    """P9: from PRP$, share of attention (BOS and self excluded) on nouns."""
    share = run.noun_share("prp$")
    return dict(value=share[head], n=int(run.classes["prp$"].sum()), best_head=best_head(share), head_map=share,
                claimed_heads=[head], attention_by_tag=dict(list(run.attention_by_tag("prp$", *head).items())[:8]))
