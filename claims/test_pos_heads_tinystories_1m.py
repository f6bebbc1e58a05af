"""Claims of "Interpreting Tiny Transformers" on TinyStories-1M
(../shared/seeds/paper-interpreting-tiny-transformers-1M.md): the quotation head L2H0, the
past-tense head L6H4 and the definite-noun head L5H5. Each body is one call to
mechcheck.pos_measures, which tests/test_pos.py calls on its controls.

Text: TinyStories validation paragraphs in file order (offline sample with --mc-data), at most
128 tokens each, BOS first; POS tags from NLTK's Treebank tokenizer + averaged-perceptron tagger
aligned to BPE tokens (mechcheck.tagging). Probes: one multinomial logistic regression per head on
its standardised key (or query) vectors (scikit-learn's LogisticRegression(C=1.0) objective,
fitted for all heads at once: mechcheck.probes), trained on the first 150 paragraphs; the held-out
paragraphs follow until every probed tag (``, '', VBD, PRP$) has >= 200 tokens; F1 has a
bootstrap CI over held-out paragraphs. The published F1 values (0.997, 0.942, 0.796, 0.812) are
not in the paper's text: they come from the authors' released probe-result tables in their
GitHub repository (the paper: "All code can be found on our GitHub"; its figures 2a/2b/3a/4a
plot them); each threshold allows 0.1 for a different text sample and tagger version. Every
claim also records which head best fits its signature in the measured checkpoint
(details.best_head): where the head moved, if it did.
"""

from __future__ import annotations

import pytest

from mechcheck import pos_measures, tagging
from mechcheck.claim import Source, argmax_is, at_least
from mechcheck.data import paragraphs, tinystories_validation
from mechcheck.pos_heads import NOUNS, POSRun

TS1M = "roneneldan/TinyStories-1M"
DOC = "paper-interpreting-tiny-transformers-1M.md"
RELEASED = "probe-result tables released in the authors' GitHub repository"
N_TRAIN = 150
MIN_HELD_OUT = 200
PROBED = ("``", "''", "VBD", "PRP$")
F1_TOL = 0.1


@pytest.fixture(scope="module")
def ts1m(mc_load):
    return mc_load(TS1M)


@pytest.fixture
def run(ts1m, mc_data, mc_shared, measure):
    """One forward pass over the tagged text, shared by every claim of this paper."""

    def build():
        tagging.use_data_dir(mc_data)
        return POSRun(ts1m.bridge, paragraphs(tinystories_validation(mc_data)), n_train=N_TRAIN,
                      min_held_out=MIN_HELD_OUT, held_out_tags=PROBED)

    measure.model = ts1m
    return mc_shared(("pos", ts1m.sha256), build)


@pytest.mark.claim(
    id="P1", model=TS1M, statement="L2H0's key probe classifies both quote tags well",
    source=Source(DOC, f"§5.1, fig 2a/2b ('L2H0 performs well on both'); values: {RELEASED}"), published={"``": 0.997, "''": 0.942},
    expect=at_least(0.942 - F1_TOL), tolerance=f"the lower of the two F1s >= 0.942 - {F1_TOL}",
)
def test_p1_quote_key_probe(run, measure):
    measure.record(**pos_measures.quote_key_probe(run))


@pytest.mark.claim(
    id="P2", model=TS1M, statement="L2H0 is active inside a quotation and drops after it",
    source=Source(DOC, "§5.1, fig 2d"), published="high inside, drops after", expect=at_least(1.5),
    tolerance="activity (||z W_O||) inside quotes / outside quotes >= 1.5",
)
def test_p2_quote_activity(run, measure):
    measure.record(**pos_measures.quote_activity(run))


@pytest.mark.claim(
    id="P3", model=TS1M, statement="Inside a quotation L2H0 attends to the opening quote",
    source=Source(DOC, "§5.1, fig 2c"), published="attends to the start quote, then the end quote",
    expect=at_least(0.3),
    tolerance="mean attention from in-quote tokens to their opening quote >= 0.3; the shift to the closing "
    "quote is recorded (details.closing_quote_row)",
)
def test_p3_quote_attention(run, measure):
    measure.record(**pos_measures.quote_attention(run))


@pytest.mark.claim(
    id="P4", model=TS1M, statement="L6H4 has the highest VBD key-probe F1 of all 128 heads",
    source=Source(DOC, f"§5.2, fig 3a; value: {RELEASED}"), published=0.796, expect=argmax_is((6, 4)),
    tolerance="argmax over all heads of the VBD key-probe F1 (published 0.796); per-layer means recorded",
)
def test_p4_past_tense_key_probe(run, measure):
    measure.record(**pos_measures.past_tense_key_probe(run))


@pytest.mark.claim(
    id="P5", model=TS1M, statement="L6H4 is most active on the token right before a past-tense verb",
    source=Source(DOC, "§5.2, fig 3b"), published="high before VBD", expect=at_least(1.5),
    tolerance="activity on tokens right before a VBD / elsewhere >= 1.5",
)
def test_p5_past_tense_activity(run, measure):
    measure.record(**pos_measures.past_tense_activity(run))


@pytest.mark.claim(
    id="P6", model=TS1M, statement="From the token before a past-tense verb, L6H4 attends back to earlier past-tense verbs",
    source=Source(DOC, "§5.2, fig 3c caption (the text says nouns; attention by POS recorded)"),
    published="attends to previous VBD", expect=at_least(0.3),
    tolerance="attention mass on earlier VBD tokens >= 0.3",
)
def test_p6_past_tense_attention(run, measure):
    measure.record(**pos_measures.past_tense_attention(run))


@pytest.mark.claim(
    id="P7", model=TS1M, statement="L5H5's query probe classifies PRP$ well",
    source=Source(DOC, f"§5.3, fig 4a; value: {RELEASED}"), published=0.812, expect=at_least(0.812 - F1_TOL),
    tolerance=f"PRP$ query-probe F1 >= 0.812 - {F1_TOL}",
)
def test_p7_possessive_query_probe(run, measure):
    measure.record(**pos_measures.possessive_query_probe(run))


@pytest.mark.claim(
    id="P8", model=TS1M, statement="L5H5 is active on PRP$ and DT right before a noun",
    source=Source(DOC, "§5.3, fig 4b"), published="active on PRP$/DT before nouns", expect=at_least(1.5),
    tolerance="activity on PRP$/DT followed by a noun / elsewhere >= 1.5",
)
def test_p8_definite_noun_activity(run, measure):
    measure.record(**pos_measures.definite_noun_activity(run))


@pytest.mark.claim(
    id="P9", model=TS1M, statement="From PRP$, L5H5's attention goes mostly to nouns",
    source=Source(DOC, "§5.3, appendix C (fig 7)"), published="overwhelmingly nouns", expect=at_least(0.5),
    tolerance=f"share of attention (BOS and self excluded) on {'/'.join(NOUNS)} >= 0.5",
)
def test_p9_possessive_attends_to_nouns(run, measure):
    measure.record(**pos_measures.possessive_noun_attention(run))
