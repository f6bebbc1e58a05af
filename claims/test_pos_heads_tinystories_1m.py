"""Claims of "Interpreting Tiny Transformers" on TinyStories-1M
(../shared/seeds/paper-interpreting-tiny-transformers-1M.md): the quotation head L2H0, the
past-tense head L6H4 and the definite-noun head L5H5.

Text: the first 200 paragraphs of the TinyStories validation text (offline sample with --mc-data),
at most 128 tokens each, BOS first; POS tags from NLTK's Treebank tokenizer + averaged-perceptron
tagger aligned to BPE tokens (mechcheck.tagging). Probes: one multinomial logistic regression per
head on its key (or query) vectors, trained on the first 75% of the paragraphs, F1 on the rest.
Published F1 values are read off the paper's figures (via the issue); each threshold allows 0.1
for a different text sample and tagger version. Every claim also records which head best fits
its signature in the measured checkpoint (details.best_head): where the head moved, if it did.
"""

from __future__ import annotations

import numpy as np
import pytest

from mechcheck import tagging
from mechcheck.claim import Source, argmax_is, at_least
from mechcheck.data import paragraphs, tinystories_validation
from mechcheck.pos_heads import NOUNS, POSRun, best_head

TS1M = "roneneldan/TinyStories-1M"
DOC = "paper-interpreting-tiny-transformers-1M.md"
N_PARAGRAPHS = 200
F1_TOL = 0.1


@pytest.fixture(scope="module")
def ts1m(mc_load):
    return mc_load(TS1M)


@pytest.fixture
def run(ts1m, mc_data, mc_shared):
    """One forward pass over the tagged text, shared by every claim of this paper."""

    def build():
        tagging.use_data_dir(mc_data)
        return POSRun(ts1m.bridge, paragraphs(tinystories_validation(mc_data), limit=N_PARAGRAPHS))

    return mc_shared(("pos", ts1m.sha256), build)


@pytest.fixture
def key_f1(run, mc_shared, ts1m):
    return mc_shared(("key_f1", ts1m.sha256), lambda: run.probe_f1("key", tags=("``", "''", "VBD")))


@pytest.fixture
def query_f1(run, mc_shared, ts1m):
    return mc_shared(("query_f1", ts1m.sha256), lambda: run.probe_f1("query", tags=("PRP$",)))


def _seq_ci(run, stat) -> tuple[float, float]:
    """Bootstrap CI of a statistic over paragraphs (resampled with replacement, seeded)."""
    n = run.tags.shape[0]
    rng = np.random.default_rng(0)
    vals = [stat(rng.integers(0, n, n)) for _ in range(200)]
    return float(np.nanquantile(vals, 0.025)), float(np.nanquantile(vals, 0.975))


@pytest.mark.claim(
    id="P1", model=TS1M, statement="L2H0's key probe classifies both quote tags well",
    source=Source(DOC, "§5.1, fig 2a/2b ('L2H0 performs well on both')"), published={"``": 0.997, "''": 0.942},
    expect=at_least(0.942 - F1_TOL), tolerance=f"the lower of the two F1s >= 0.942 - {F1_TOL}",
)
def test_p1_quote_key_probe(ts1m, run, key_f1, measure):
    measure.model = ts1m
    both = np.minimum(key_f1["``"], key_f1["''"])
    base = run.probe_f1("key", tags=("``", "''"), heads=[(2, 0)], shuffled=True)
    measure.record(both[2, 0], f1_open=key_f1["``"][2, 0], f1_close=key_f1["''"][2, 0],
                   shuffled_label_f1={t: base[t][2, 0] for t in base}, best_head=best_head(both), head_map=both,
                   claimed_heads=[(2, 0)])


@pytest.mark.claim(
    id="P2", model=TS1M, statement="L2H0 is active inside a quotation and drops after it",
    source=Source(DOC, "§5.1, fig 2d"), published="high inside, drops after", expect=at_least(1.5),
    tolerance="activity (||z W_O||) inside quotes / outside quotes >= 1.5",
)
def test_p2_quote_activity(ts1m, run, measure):
    _record_activity(measure, ts1m, run, run.in_quote, (2, 0))


def _record_activity(measure, ts1m, run, mask, head):
    """Activity ratio (mask tokens / other tokens) of `head`, its CI over paragraphs, the map."""
    measure.model = ts1m
    ratio = run.activity_ratio(mask)
    measure.record(ratio[head], ci=_seq_ci(run, lambda s: run.activity_ratio(mask, s)[head]), n=run.tags.shape[0],
                   best_head=best_head(ratio), head_map=ratio, claimed_heads=[head])


@pytest.mark.claim(
    id="P3", model=TS1M, statement="Inside a quotation L2H0 attends to the opening quote",
    source=Source(DOC, "§5.1, fig 2c"), published="attends to the start quote, then the end quote",
    expect=at_least(0.3),
    tolerance="mean attention from in-quote tokens to their opening quote >= 0.3; the shift to the closing "
    "quote is recorded (details.closing_quote_row)",
)
def test_p3_quote_attention(ts1m, run, measure):
    measure.model = ts1m
    att = run.attention_to_opening_quote()
    closing = run.closing_quote_attention()
    measure.record(att[2, 0], n=int(run.in_quote.sum()), best_head=best_head(att), head_map=att, claimed_heads=[(2, 0)],
                   closing_quote_row={k: v[2, 0] for k, v in closing.items()}, example_pattern=_quote_example(ts1m, run))


def _quote_example(ts1m, run, width: int = 40) -> dict:
    """L2H0's pattern on the first paragraph with a quotation (first `width` tokens), for the report."""
    seq = int(np.nonzero(run.in_quote.any(1))[0][0]) if run.in_quote.any() else 0
    ids = run.tokens[seq, :width].tolist()
    return {"head": "L2H0", "tokens": [ts1m.bridge.tokenizer.decode([t]) for t in ids],
            "pattern": run.pattern[2, seq, 0, :width, :width].round(3)}


@pytest.mark.claim(
    id="P4", model=TS1M, statement="L6H4 has the highest VBD key-probe F1 of all 128 heads",
    source=Source(DOC, "§5.2, fig 3a"), published=0.796, expect=argmax_is((6, 4)),
    tolerance="argmax over all heads of the VBD key-probe F1 (published 0.796); per-layer means recorded",
)
def test_p4_past_tense_key_probe(ts1m, key_f1, measure):
    measure.model = ts1m
    f1 = key_f1["VBD"]
    measure.record(f1, L6H4=f1[6, 4], layer_means=f1.mean(1), best_head=best_head(f1))


@pytest.mark.claim(
    id="P5", model=TS1M, statement="L6H4 is most active on the token right before a past-tense verb",
    source=Source(DOC, "§5.2, fig 3b"), published="high before VBD", expect=at_least(1.5),
    tolerance="activity on tokens right before a VBD / elsewhere >= 1.5",
)
def test_p5_past_tense_activity(ts1m, run, measure):
    _record_activity(measure, ts1m, run, run.before_vbd(), (6, 4))


@pytest.mark.claim(
    id="P6", model=TS1M, statement="From the token before a past-tense verb, L6H4 attends back to earlier past-tense verbs",
    source=Source(DOC, "§5.2, fig 3c caption (the text says nouns; attention by POS recorded)"),
    published="attends to previous VBD", expect=at_least(0.3),
    tolerance="attention mass on earlier VBD tokens >= 0.3",
)
def test_p6_past_tense_attention(ts1m, run, measure):
    measure.model = ts1m
    att = run.attention_to_earlier_vbd()
    by_tag = run.attention_by_tag(run.before_vbd(), 6, 4)
    measure.record(att[6, 4], best_head=best_head(att), attention_by_tag=dict(list(by_tag.items())[:8]),
                   head_map=att, claimed_heads=[(6, 4)])


@pytest.mark.claim(
    id="P7", model=TS1M, statement="L5H5's query probe classifies PRP$ well",
    source=Source(DOC, "§5.3, fig 4a"), published=0.812, expect=at_least(0.812 - F1_TOL),
    tolerance=f"PRP$ query-probe F1 >= 0.812 - {F1_TOL}",
)
def test_p7_possessive_query_probe(ts1m, run, query_f1, measure):
    measure.model = ts1m
    f1 = query_f1["PRP$"]
    base = run.probe_f1("query", tags=("PRP$",), heads=[(5, 5)], shuffled=True)
    measure.record(f1[5, 5], shuffled_label_f1=base["PRP$"][5, 5], best_head=best_head(f1), head_map=f1,
                   claimed_heads=[(5, 5)])


@pytest.mark.claim(
    id="P8", model=TS1M, statement="L5H5 is active on PRP$ and DT right before a noun",
    source=Source(DOC, "§5.3, fig 4b"), published="active on PRP$/DT before nouns", expect=at_least(1.5),
    tolerance="activity on PRP$/DT followed by a noun / elsewhere >= 1.5",
)
def test_p8_definite_noun_activity(ts1m, run, measure):
    _record_activity(measure, ts1m, run, run.prp_dt_before_noun(), (5, 5))


@pytest.mark.claim(
    id="P9", model=TS1M, statement="From PRP$, L5H5's attention goes mostly to nouns",
    source=Source(DOC, "§5.3, appendix C (fig 7)"), published="overwhelmingly nouns", expect=at_least(0.5),
    tolerance=f"share of attention (BOS and self excluded) on {'/'.join(NOUNS)} >= 0.5",
)
def test_p9_possessive_attends_to_nouns(ts1m, run, measure):
    measure.model = ts1m
    mask = run.tags == "PRP$"
    share = run.noun_share(mask)
    measure.record(share[5, 5], n=int(mask.sum()), best_head=best_head(share), head_map=share, claimed_heads=[(5, 5)],
                   attention_by_tag=dict(list(run.attention_by_tag(mask, 5, 5).items())[:8]))
