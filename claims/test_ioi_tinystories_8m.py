"""Claims of the thesis "IOI circuits in TinyStories-8M vs GPT-2 small"
(../shared/seeds/thesis-ioi-circuits-tinystories-8M.txt, §3.2 the model, §3.3 Experiment 1, §3.4
Experiment 2, and the head-level statements of §3.5.1 that need no SAE).

Heads are written LxHy in the report; the thesis writes H7.7 for layer 7, head 7 (= L7H7).
Models load in TransformerLens compatibility mode (HookedTransformer numerics, as the thesis).

Each claim is one declaration (mechcheck.core.claim.Claim): its measurement with every setting bound,
its evidence rung and its controls (mechcheck.studies.ioi_controls), which the plugin runs with the
very same bound measurement. Settings, bound once in the preparations of mechcheck.studies.ioi:
- head scores (`ioi.OnScores`): 16 sequences of 50 random tokens repeated once after BOS, seed 0
  (uniformly over the vocabulary, the thesis' form, or over the tokens of the TinyStories sample);
- IOI (`ioi.OnPrompts`): every ordered (IO, S) pair of mechcheck.data.ioi_prompts.NAMES in its four
  templates (120 prompts, BOS first), corrupted by replacing S2 with IO (the thesis' clean/corrupted
  pair). `--mc-ioi-names` replaces the names of the claim's run (`ioi.with_names`); the controls
  keep the declared set.
A claim comparing two models (8M vs GPT-2 small) runs its measure on the pair (`ioi.on_pair`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest

from mechcheck.core.claim import (INTERVENTIONAL, OBSERVATIONAL, Claim, Measure, Source, at_least, at_most, leads,
                                  negative, positive, rank_at_most, within)
from mechcheck.studies import ioi
from mechcheck.studies import ioi_circuit as m
from mechcheck.studies import ioi_controls as C
from mechcheck.studies.ioi_circuit import INDUCTION_HEAD

TS8M = "roneneldan/TinyStories-8M"
GPT2 = "gpt2"
TS1M = "roneneldan/TinyStories-1M"
TS3M = "roneneldan/TinyStories-3M"
DOC = "thesis-ioi-circuits-tinystories-8M.txt"

IOI = ioi.OnPrompts()  # the 120 IOI prompts (default names), BOS first
SCORES = ioi.OnScores("all")  # repeated uniformly random tokens (the thesis' form)
STORY_SCORES = ioi.OnScores("tinystories")  # repeated tokens of the TinyStories sample


def _src(where):
    return Source(DOC, where)


@pytest.fixture
def ts8m(mc_load):
    return mc_load(TS8M)


@pytest.fixture
def ts1m(mc_load):
    return mc_load(TS1M)


@pytest.fixture
def ts3m(mc_load):
    return mc_load(TS3M)


@pytest.fixture
def gpt2(mc_load):
    return mc_load(GPT2)


@pytest.fixture(autouse=True)
def _ioi_names(measure, mc_ioi_names):
    """The run's --mc-ioi-names reach the claim's own bound measure (its controls keep the declared set)."""
    if measure.claim is not None and measure.claim.measure is not None:
        measure.claim = replace(measure.claim, measure=ioi.with_names(measure.claim.measure, tuple(mc_ioi_names)))


# ---------------------------------------------------------------- control models (mechcheck.studies.ioi_controls)

def _stand_in(name=TS8M):
    return negative("unplanted stand-in", partial(C.stand_in_run, name),
                    f"{name}'s exact config with random weights, on the claim's IOI prompts")


def _scores(kind, heads, strength, vocab="all", name=TS8M):
    return partial(C.planted_scores, kind, tuple(heads), strength, vocab, name)


def _attn(plants, name=TS8M):
    return partial(C.planted_attention, tuple(plants), name)


def _dla(plants, name=TS8M):
    return partial(C.planted_dla, tuple(plants), name)


def _readers(plants, name=TS8M):
    return partial(C.s2_reader_heads, tuple(plants), name)


def _edge(senders, receiver, component, logits=4.0, base=(), name=TS8M):
    return partial(C.planted_edge, tuple(senders), receiver, component, logits, tuple(base), name)


PREV = "prev"  # a planted previous-token head (every query on the token before it)


# ---------------------------------------------------------------- §3.3 head scores (figs 3.1-3.6)

I1_8M = Claim(
    id="I1.8m", model=TS8M, statement="TinyStories-8M has no induction heads",
    source=_src("§3.3, fig 3.3 ('Remarkably, TinyStories-8M have no induction heads')"),
    published="no head", expect=at_most(INDUCTION_HEAD), absence=True,
    tolerance=(f"max induction score over all 128 heads below {INDUCTION_HEAD} (our induction-head threshold; "
               "the figure gives no number), decided on the bootstrap CI of the maximum over the 16 sequences "
               "(simultaneous over heads). Decided on repeated tokens that occur in the TinyStories sample: "
               "most GPT-2 tokens never occur in TinyStories, their embeddings are untrained, so the thesis' "
               "uniformly random form can miss a head; that form is recorded beside (random_tokens_*). "
               "detectable_effect: smallest strength of an induction head planted at the weakest head that "
               "this check decides FAIL"),
    measure=Measure(partial(m.absent_in_forms, score="induction", threshold=INDUCTION_HEAD),
                    on=ioi.Each((STORY_SCORES, SCORES))),
    evidence=OBSERVATIONAL,
    controls=[
        negative("unplanted stand-in", partial(C.planted_score_forms, "induction", (), 0.0),
                 "TinyStories-8M's config, random weights: no induction head"),
        positive("induction head 0.3", partial(C.planted_score_forms, "induction", ("weakest",), 0.3),
                 "the stand-in with an induction head of strength 0.3 planted at its weakest head", effect=0.3),
    ],
)


@pytest.mark.claim(I1_8M)
def test_i1_8m_has_no_induction_heads(ts8m, measure):
    measure.run(ts8m)


I1_GPT2 = Claim(
    id="I1.gpt2", model=GPT2, statement="GPT-2 small has many induction heads",
    source=_src("§3.3, fig 3.4 ('GPT2-small, as previously observed [Olsson et al.], has many')"),
    published="many (Olsson et al.: L5H1, L5H5, L6H9, L7H2, L7H10, ...)", expect=at_least(4),
    tolerance=f"count of heads with induction score >= {INDUCTION_HEAD}; 'many' = at least 4",
    measure=Measure(partial(m.heads_at_least, score="induction", threshold=INDUCTION_HEAD), on=SCORES),
    evidence=OBSERVATIONAL,
    controls=[
        positive("5 induction heads", _scores("induction", [(5, 1), (5, 5), (6, 9), (7, 2), (7, 10)], 0.6, name=GPT2),
                 "GPT-2 small's config, random weights, Olsson et al.'s five induction heads planted at 0.6"),
        negative("unplanted stand-in", _scores("induction", [], 0.0, name=GPT2), "GPT-2 small's config, random weights"),
    ],
)


@pytest.mark.claim(I1_GPT2)
def test_i1_gpt2_has_many_induction_heads(gpt2, measure):
    measure.run(gpt2)


I2_WEAKER = Claim(
    id="I2.weaker", model=TS8M,
    statement="TinyStories-8M's previous-token heads are far weaker than GPT-2 small's",
    source=_src("§3.3, figs 3.1/3.2"), published="far weaker", expect=at_most(-0.2),
    tolerance="max previous-token score of 8M minus that of GPT-2 small; 'far weaker' = at least 0.2 lower",
    measure=partial(ioi.on_pair, m.top_score_difference, prepare=SCORES, score="previous_token", models=[TS8M, GPT2]),
    evidence=OBSERVATIONAL,
    controls=[
        positive("GPT-2 with H4.11", partial(C.pair, _scores("previous_token", [], 0.0),
                                             _scores("previous_token", [(4, 11)], 0.95, name=GPT2)),
                 "8M stand-in vs GPT-2 stand-in with a previous-token head of 0.95 planted at H4.11"),
        negative("8M with the head", partial(C.pair, _scores("previous_token", [(4, 11)], 0.95),
                                             _scores("previous_token", [], 0.0, name=GPT2)),
                 "swapped: the previous-token head planted in the 8M stand-in, GPT-2 stand-in unplanted"),
    ],
)


@pytest.mark.claim(I2_WEAKER)
def test_i2_previous_token_heads_weaker(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))


I2_GPT2_L4H11 = Claim(
    id="I2.gpt2_L4H11", model=GPT2,
    statement="In GPT-2 small, H4.11 puts approximately all its attention on the previous token",
    source=_src("§3.3, fig 3.2"), published="~1.0", expect=at_least(0.9),
    tolerance="'approximately all' = previous-token score >= 0.9",
    measure=Measure(partial(m.head_score, score="previous_token", head=(4, 11)), on=SCORES),
    evidence=OBSERVATIONAL,
    controls=[
        positive("H4.11 planted", _scores("previous_token", [(4, 11)], 0.95, name=GPT2),
                 "GPT-2 small's config, random weights, H4.11 a previous-token head of 0.95"),
        negative("H4.10 planted", _scores("previous_token", [(4, 10)], 0.95, name=GPT2),
                 "the same head planted next door (H4.10): H4.11 stays random"),
    ],
)


@pytest.mark.claim(I2_GPT2_L4H11)
def test_i2_gpt2_h4_11(gpt2, measure):
    measure.run(gpt2)


I3_8M = Claim(
    id="I3.8m", model=TS8M, statement="TinyStories-8M has a single duplicate-token head, H4.0",
    source=_src("§3.3, fig 3.5"), published="single weak head H4.0", expect=leads([(4, 0)], 0.05, 0.05),
    tolerance="H4.0 has the top duplicate-token score, >= 0.05 and ahead of every other head by >= 0.05",
    measure=Measure(partial(m.head_score_map, score="duplicate_token", heads=[(4, 0)]), on=SCORES),
    evidence=OBSERVATIONAL,
    controls=[
        positive("H4.0 planted", _scores("duplicate_token", [(4, 0)], 0.3),
                 "TinyStories-8M's config, random weights, H4.0 a duplicate-token head of 0.3"),
        negative("H4.1 planted", _scores("duplicate_token", [(4, 1)], 0.3), "swapped: the head planted at H4.1"),
    ],
)


@pytest.mark.claim(I3_8M)
def test_i3_8m_duplicate_head(ts8m, measure):
    measure.run(ts8m)


I3_8M_WEAK = Claim(
    id="I3.8m_weak", model=TS8M, statement="TinyStories-8M's duplicate-token head H4.0 is weak",
    source=_src("§3.3, fig 3.5"), published="weak", expect=at_most(0.5), absence=True,
    tolerance=("'weak' = duplicate-token score below 0.5, for every head (H4.0 leads, I3.8m), decided on the "
               "bootstrap CI of the maximum over heads; H4.0's own score and CI beside; detectable_effect: "
               "smallest strength of a duplicate-token head planted at the weakest head that this check decides FAIL"),
    measure=Measure(partial(m.absent_head_score, score="duplicate_token", threshold=0.5, head=(4, 0)), on=SCORES),
    evidence=OBSERVATIONAL,
    controls=[
        negative("unplanted stand-in", _scores("duplicate_token", [], 0.0), "TinyStories-8M's config, random weights"),
        positive("duplicate head 0.55", _scores("duplicate_token", ["weakest"], 0.55),
                 "the stand-in with a duplicate-token head of strength 0.55 at its weakest head", effect=0.55),
    ],
)


@pytest.mark.claim(I3_8M_WEAK)
def test_i3_8m_duplicate_head_is_weak(ts8m, measure):
    measure.run(ts8m)


I3_GPT2 = Claim(
    id="I3.gpt2", model=GPT2, statement="GPT-2 small has two strong duplicate-token heads, H3.0 and H0.5",
    source=_src("§3.3, fig 3.6"), published="H3.0, H0.5 strong", expect=leads([(3, 0), (0, 5)], 0.5, 0.0),
    tolerance="both >= 0.5 ('strong') and ahead of every other head",
    measure=Measure(partial(m.head_score_map, score="duplicate_token", heads=[(3, 0), (0, 5)]), on=SCORES),
    evidence=OBSERVATIONAL,
    controls=[
        positive("H3.0 and H0.5 planted", _scores("duplicate_token", [(3, 0), (0, 5)], 0.8, name=GPT2),
                 "GPT-2 small's config, random weights, H3.0 and H0.5 duplicate-token heads of 0.8"),
        negative("H3.0 and H0.6 planted", _scores("duplicate_token", [(3, 0), (0, 6)], 0.8, name=GPT2),
                 "one of the two planted next door (H0.6): H0.5 stays random"),
    ],
)


@pytest.mark.claim(I3_GPT2)
def test_i3_gpt2_duplicate_heads(gpt2, measure):
    measure.run(gpt2)


# ---------------------------------------------------------------- §3.2 / §3.4.1 performance

I4_8M = Claim(
    id="I4.8m", model=TS8M, statement="TinyStories-8M's average IOI logit difference is 9.4",
    source=_src("§3.4.1"), published=9.4, expect=within(9.4, 2.0),
    tolerance="9.4 ± 2.0: our names and templates differ from the thesis' (unpublished) test set",
    measure=Measure(partial(m.mean_logit_diff, with_tokens=True), on=IOI), evidence=OBSERVATIONAL,
    controls=[_stand_in(),
              positive("mean logit difference 9.4", partial(C.planted_value, "logit_diff", 9.4, 2.0),
                       "the 8M stand-in, its unembedding sharpened x2 (the random one cannot reach 7.4), with a "
                       "last-layer write along IO - S set so that the mean logit difference is 9.4")],
)


@pytest.mark.claim(I4_8M)
def test_i4_8m_logit_diff(ts8m, measure):
    measure.run(ts8m)


I4_GPT2 = Claim(
    id="I4.gpt2", model=GPT2, statement="GPT-2 small's average IOI logit difference is 3.6",
    source=_src("§3.4.1"), published=3.6, expect=within(3.6, 1.0),
    tolerance="3.6 ± 1.0 (Wang et al. report 3.55 on their own templates)",
    measure=Measure(m.mean_logit_diff, on=IOI), evidence=OBSERVATIONAL,
    controls=[_stand_in(GPT2),
              positive("mean logit difference 3.6", partial(C.planted_value, "logit_diff", 3.6, 1.0, GPT2),
                       "the GPT-2 stand-in with a last-layer write along IO - S set so that the mean logit difference is 3.6")],
)


@pytest.mark.claim(I4_GPT2)
def test_i4_gpt2_logit_diff(gpt2, measure):
    measure.run(gpt2)


CANNOT_DO_IOI = dict(
    expect=at_most(1.0), measure=Measure(m.mean_logit_diff, on=IOI), evidence=OBSERVATIONAL,
    published="cannot (no number)",
    source=_src("§3.2 ('I'll specifically use the 8M million parameter one as this is the smallest one in the family "
                "that was able to perform the IOI task')"),
)
_CANNOT_TOLERANCE = ("'not able to perform the IOI task' = mean IO - S logit difference <= 1.0 logit (IO at most e = 2.7 "
                     "times as likely as S): under a third of the weakest model the thesis treats as performing the task, "
                     "GPT-2 small at 3.6 (§3.4.1), and about a ninth of 8M's 9.4; the thesis gives no number")
_CANNOT_CONTROLS = [
    positive("untrained organism", partial(C.name_mover, False), "the name-mover organism's shape at random weights (its IOI sentences)"),
    negative("trained organism", partial(C.name_mover, True), "the trained name-mover organism: it does IOI"),
    negative("writes 9.4", _dla([(7, 7, 9.4)]), "the 8M stand-in with H7.7 writing 9.4 logits along IO - S (the claim's prompts)"),
]

I4_3M = Claim(
    id="I4.3m", model=TS3M, statement="TinyStories-3M cannot do IOI (8M is the smallest TinyStories model that can)",
    tolerance=_CANNOT_TOLERANCE + ("; TinyStories-3M is the family's next size below 8M, so it decides 'smallest' "
                                   "(registry: GPT-Neo, hidden 128, 8 layers, 16 heads; a checkpoint of another shape is "
                                   "refused with one line)"),
    controls=_CANNOT_CONTROLS + [positive("3M stand-in", partial(C.stand_in_run, TS3M),
                                          "TinyStories-3M's exact config with random weights")],
    **CANNOT_DO_IOI,
)


@pytest.mark.claim(I4_3M)
def test_i4_3m_cannot_do_ioi(ts3m, measure):
    measure.run(ts3m)


I4_1M = Claim(
    id="I4.1m", model=TS1M, statement="TinyStories-1M cannot do IOI (8M is the smallest TinyStories model that can)",
    tolerance=_CANNOT_TOLERANCE + "; 1M is two sizes below 8M (3M, the size that decides 'smallest', is I4.3m)",
    controls=_CANNOT_CONTROLS + [positive("1M stand-in", partial(C.stand_in_run, TS1M),
                                          "TinyStories-1M's exact config with random weights")],
    **CANNOT_DO_IOI,
)


@pytest.mark.claim(I4_1M)
def test_i4_1m_cannot_do_ioi(ts1m, measure):
    measure.run(ts1m)


I4_COMPARE = Claim(
    id="I4.compare", model=TS8M, statement="TinyStories-8M has a larger IOI logit difference than GPT-2 small",
    source=_src("§3.4.1"), published="9.4 > 3.6", expect=at_least(0.0),
    tolerance="paired difference 8M - GPT-2 over the same prompts > 0",
    measure=partial(ioi.on_pair, m.paired_logit_diff, prepare=IOI, models=[TS8M, GPT2]), evidence=OBSERVATIONAL,
    controls=[
        positive("8M writes IO", partial(C.pair, _dla([(7, 7, 9.4)]), partial(C.stand_in_run, GPT2)),
                 "8M stand-in with H7.7 writing along IO - S (9.4 logits at the unplanted final scale) vs the unplanted GPT-2 stand-in"),
        negative("GPT-2 writes 3.6", partial(C.pair, partial(C.stand_in_run, TS8M), _dla([(9, 9, 3.6)], GPT2)),
                 "the unplanted 8M stand-in vs the GPT-2 stand-in writing 3.6 logits"),
    ],
)


@pytest.mark.claim(I4_COMPARE)
def test_i4_8m_beats_gpt2(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))


I12 = Claim(
    id="I12", model=TS8M, statement="Baseline probability of the correct name on the IOI prompts is 77.3%",
    source=_src("§3.5.1 ('changes correct name probability from 77.3% ...')"), published=0.773,
    expect=within(0.773, 0.1), tolerance="77.3% ± 10 pp: the thesis' prompt set is not published",
    measure=Measure(m.correct_probability, on=IOI), evidence=OBSERVATIONAL,
    controls=[_stand_in(),
              positive("P(IO) 0.773", partial(C.planted_value, "probability", 0.773, 4.0),
                       "the 8M stand-in, its unembedding sharpened x4 (the random one gives IO under 0.1% of 50,257 "
                       "tokens), with a last-layer write along IO - S set so that the mean P(IO) at END is 0.773")],
)


@pytest.mark.claim(I12)
def test_i12_correct_probability(ts8m, measure):
    measure.run(ts8m)


# ---------------------------------------------------------------- §3.4.2 the circuit

I5_8M = Claim(
    id="I5.8m", model=TS8M, statement="TinyStories-8M's logit difference never decreases through the residual stream",
    source=_src("§3.4.2, fig 3.7 ('Performance only increases')"), published="monotone", expect=at_most(0.1),
    absence=True,
    tolerance=("largest mean drop between consecutive points (embed, L0 attn, L0 MLP, ...) <= 0.1 logit, decided on "
               "the bootstrap CI of the maximum over all steps (simultaneous); detectable_effect: smallest drop "
               "(logits) added at the flattest step that this check decides FAIL"),
    measure=Measure(partial(m.never_decreases, threshold=0.1), on=IOI), evidence=OBSERVATIONAL,
    controls=[negative("unplanted stand-in", partial(C.stand_in_run, TS8M), "TinyStories-8M's config, random weights"),
              positive("drop of 0.6", partial(C.planted_drop, 0.6),
                       "a head writing -0.6 logits at the stand-in's flattest step", effect=0.6)],
)


@pytest.mark.claim(I5_8M)
def test_i5_8m_monotone(ts8m, measure):
    measure.run(ts8m)


I5_GPT2 = Claim(
    id="I5.gpt2", model=GPT2, statement="GPT-2 small's logit difference dips through the residual stream",
    source=_src("§3.4.2, fig 3.8 ('Performances sometimes decreases')"), published="dips", expect=at_least(0.25),
    tolerance="largest drop between consecutive points >= 0.25 logit",
    measure=Measure(m.largest_drop, on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("drop of 1", partial(C.planted_drop, 1.0, GPT2), "a head writing -1 logit at the GPT-2 stand-in's flattest step"),
              _stand_in(GPT2)],
)


@pytest.mark.claim(I5_GPT2)
def test_i5_gpt2_dips(gpt2, measure):
    measure.run(gpt2)


_SHARE = ("'majority' = layer {0} (attention + MLP) writes more than half of the rise of the logit-lens curve "
          "from the embedding to the last layer; CI: bootstrap over prompts; every layer's share beside")

I13_8M = Claim(
    id="I13.8m", model=TS8M, statement="Most of TinyStories-8M's logit difference is written at layer 7",
    source=_src("§3.4.2, fig 3.7 ('the majority of direct logit attribution is achieved at a single layer ... "
                "This occurs at layer 7 in TinyStories-8M')"), published="layer 7", expect=at_least(0.5),
    tolerance=_SHARE.format(7), measure=Measure(partial(m.layer_share, layer=7), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H7.7 writes 9.4", _dla([(7, 7, 9.4)]), "the 8M stand-in with H7.7 writing 9.4 logits"),
              negative("H3.3 writes 9.4", _dla([(3, 3, 9.4)]), "swapped: the same write at layer 3")],
)


@pytest.mark.claim(I13_8M)
def test_i13_8m_layer_7_writes_most(ts8m, measure):
    measure.run(ts8m)


I13_GPT2 = Claim(
    id="I13.gpt2", model=GPT2, statement="Most of GPT-2 small's logit difference is written at layer 9",
    source=_src("§3.4.2, fig 3.8 ('This occurs ... layer 9 in GPT2-small')"), published="layer 9",
    expect=at_least(0.5), tolerance=_SHARE.format(9), measure=Measure(partial(m.layer_share, layer=9), on=IOI),
    evidence=OBSERVATIONAL,
    controls=[positive("H9.9 writes 3.6", _dla([(9, 9, 3.6)], GPT2), "the GPT-2 stand-in with H9.9 writing 3.6 logits"),
              negative("H3.3 writes 3.6", _dla([(3, 3, 3.6)], GPT2), "swapped: the same write at layer 3")],
)


@pytest.mark.claim(I13_GPT2)
def test_i13_gpt2_layer_9_writes_most(gpt2, measure):
    measure.run(gpt2)


I14 = Claim(
    id="I14", model=TS8M, statement="H4.0 attends from S2 to S1 on the IOI prompts (duplicate-token head)",
    source=_src("§3.4.2 ('1. Duplicate token head H4.0 copies duplicate name information from S1 to S2.')"),
    published="S2 -> S1", expect=at_least(0.1),
    tolerance="attention S2->S1 minus S2->IO >= 0.1 (the suite's 'visibly more than' margin; the thesis gives no number)",
    measure=Measure(partial(m.attention_s2_to_s1, head=(4, 0)), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H4.0 S2->S1", _attn([(4, 0, "S2", "S1", 0.5)]), "the 8M stand-in with H4.0's S2 row putting 0.5 on S1"),
              _stand_in()],
)


@pytest.mark.claim(I14)
def test_i14_h4_0_attends_s2_to_s1(ts8m, measure):
    measure.run(ts8m)


I6 = Claim(
    id="I6", model=TS8M, statement="In TinyStories-8M only H7.7 has a noticeable direct effect on the logit difference",
    source=_src("§3.4.2, fig 3.9"), published="only H7.7", expect=leads([(7, 7)], 0.3, 0.2),
    tolerance="share of total |DLA| (mean over prompts): H7.7 >= 0.3 and >= 0.2 above the runner-up",
    measure=Measure(partial(m.dla_share, head=(7, 7)), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H7.7 writes 9.4", _dla([(7, 7, 9.4)]), "the 8M stand-in with H7.7 writing 9.4 logits"),
              negative("H7.7 and H6.2 alike", _dla([(7, 7, 5.0), (6, 2, 5.0)]), "two heads writing 5 logits each: not 'only H7.7'")],
)


@pytest.mark.claim(I6)
def test_i6_only_h7_7_direct(ts8m, measure):
    measure.run(ts8m)


I7_GPT2 = Claim(
    id="I7.gpt2", model=GPT2, statement="GPT-2 small has negative name movers H10.7 and H11.10 (negative DLA)",
    source=_src("§3.4.2 (fig 3.10; Wang et al. 2022)"), published="negative", expect=at_most(-0.2),
    tolerance="the larger (less negative) of the two heads' mean DLA <= -0.2 logit",
    measure=Measure(partial(m.negative_movers, heads=[(10, 7), (11, 10)]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("both write -1", _dla([(10, 7, -1.0), (11, 10, -1.0)], GPT2),
                       "the GPT-2 stand-in with H10.7 and H11.10 writing -1 logit each"),
              negative("only H10.7 writes -1", _dla([(10, 7, -1.0)], GPT2), "H11.10 left random")],
)


@pytest.mark.claim(I7_GPT2)
def test_i7_gpt2_negative_name_movers(gpt2, measure):
    measure.run(gpt2)


I7_8M = Claim(
    id="I7.8m", model=TS8M, statement="TinyStories-8M has no negative name-mover heads",
    source=_src("§3.4.2 ('TinyStories-8M doesn't have negative name mover heads')"), published="none",
    expect=at_least(-0.47), absence=True,
    tolerance=("most negative mean head DLA >= -0.47 logit (5% of the published 9.4 logit difference; in logits, "
               "not as a fraction of the model's own logit difference, which explodes on a model near 0), decided on "
               "the bootstrap CI of the minimum over all heads (simultaneous); the fraction is recorded beside; "
               "detectable_effect: smallest negative DLA (logits) of a mover planted at the least active head "
               "that this check decides FAIL"),
    measure=Measure(partial(m.no_negative_movers, threshold=-0.47), on=IOI), evidence=OBSERVATIONAL,
    controls=[negative("unplanted stand-in", partial(C.stand_in_run, TS8M), "TinyStories-8M's config, random weights"),
              positive("negative mover of 1", partial(C.negative_mover, 1.0),
                       "a head writing -1 logit at END, planted at the stand-in's least active head", effect=1.0)],
)


@pytest.mark.claim(I7_8M)
def test_i7_8m_no_negative_name_movers(ts8m, measure):
    measure.run(ts8m)


I8 = Claim(
    id="I8", model=TS8M, statement="Head-output patching: H7.7 and H5.7 are the two most important heads in TinyStories-8M",
    source=_src("§3.4.2, fig 3.13"), published="H7.7, H5.7", expect=leads([(7, 7), (5, 7)], 0.05, 0.0),
    tolerance="normalised recovery of the logit difference (corrupt-to-clean): both >= 0.05 and ahead of every other head",
    measure=Measure(partial(m.head_patching, heads=[(7, 7), (5, 7)]), on=IOI), evidence=INTERVENTIONAL,
    controls=[positive("H7.7, H5.7 read S2", _readers([(7, 7, 4.0), (5, 7, 3.0)]),
                       "the 8M stand-in with H7.7 and H5.7 writing the answer at END from the name at S2"),
              negative("H6.3, H2.1 read S2", _readers([(6, 3, 4.0), (2, 1, 3.0)]), "swapped: two other heads do it")],
)


@pytest.mark.claim(I8)
def test_i8_head_patching(ts8m, measure):
    measure.run(ts8m)


I9 = Claim(
    id="I9", model=TS8M, statement="H7.7 attends from END to IO far more than to S",
    source=_src("§3.4.2, fig 3.17; §3.5.1 ('attention from \"to\" to IO ... 0.7')"), published="IO ~0.7, S ~0",
    expect=at_least(0.4),
    tolerance=("attention END->IO minus END->(S1+S2) >= 0.4 (published ~0.7 - ~0): the margin form is the stricter "
               "reading the thesis supports (H7.7 'only moves the IO name', §3.5.1); raw END->IO in details"),
    measure=Measure(partial(m.attention_io_over_s, head=(7, 7)), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H7.7 END->IO", _attn([(7, 7, "END", "IO", 0.6)]), "the 8M stand-in with H7.7's END row putting 0.6 on IO"),
              negative("H7.7 END->S2", _attn([(7, 7, "END", "S2", 0.6)]), "swapped: H7.7 attends END->S2 instead")],
)


@pytest.mark.claim(I9)
def test_i9_h7_7_attends_to_io(ts8m, measure):
    measure.run(ts8m)


_SENDS = ("C-sends, one rule for 'sends information from X to Y' (the same for H5.7 and GPT-2's H8.6, l.779: 'like "
          "GPT2-small's H8.6'): for each pair the figure shows, raw attention >= 0.3 (the suite's 'attends to') and, "
          "where the key is the token right before the query ('gave' after S2, 'and' after S1), raw attention minus "
          "the head's previous-token baseline >= 0.1, so a previous-token head does not pass; value: the smallest "
          "margin (>= 0); the thesis gives no number; the habit-subtracted forms (minus the other names, minus BOS) "
          "in details")
_PREV_HEAD = "a previous-token head planted in its place (0.9 on the token before every query)"

I10 = Claim(
    id="I10", model=TS8M, statement="H5.7 moves S2 information to END (attention END->S2)",
    source=_src("§3.4.2, fig 3.19 ('We can see that it sends information from S2 to the end position')"),
    published="END attends to S2", expect=at_least(0.0),
    tolerance=_SENDS + "; END is not right after S2, so only raw END->S2 >= 0.3",
    measure=Measure(partial(m.sends_information, heads=[(5, 7)], pairs=["END<-S2"]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H5.7 END->S2", _attn([(5, 7, "END", "S2", 0.5)]), "the 8M stand-in with H5.7's END row putting 0.5 on S2"),
              _stand_in()],
)


@pytest.mark.claim(I10)
def test_i10_h5_7_attends_to_s2(ts8m, measure):
    measure.run(ts8m)


H57_PLANTED = [(5, 7, "END", "S2", 0.5), (5, 7, "gave", "S2", 0.5), (5, 7, "and", "S1", 0.5)]

I10_GAVE = Claim(
    id="I10.gave", model=TS8M, statement="H5.7 sends S2 information to the 'gave' position (attention gave->S2)",
    source=_src("§3.4.2, fig 3.19 ('We can see that it sends information from S2 to the end position, but also to the "
                "\"gave\" position.')"), published="gave -> S2", expect=at_least(0.0), tolerance=_SENDS,
    measure=Measure(partial(m.sends_information, heads=[(5, 7)], pairs=["gave<-S2"]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H5.7 as in fig 3.19", _attn(H57_PLANTED), "the 8M stand-in with H5.7's END->S2, gave->S2, and->S1 at 0.5"),
              negative("previous-token head", _attn([(5, 7, PREV, None, 0.9)]), _PREV_HEAD), _stand_in()],
)


@pytest.mark.claim(I10_GAVE)
def test_i10_h5_7_sends_s2_to_gave(ts8m, measure):
    measure.run(ts8m)


I10_AND = Claim(
    id="I10.and", model=TS8M, statement="H5.7 sends S1 information to the following 'and' (attention and->S1)",
    source=_src("§3.4.2, fig 3.19 ('Also, like GPT2-small's H8.6, it sends information from S1 to the following "
                "\"and\" position.')"), published="and -> S1", expect=at_least(0.0),
    tolerance=_SENDS + "; on the prompts whose template reads '{S1} and {IO}' (the others put IO before 'and')",
    measure=Measure(partial(m.sends_information, heads=[(5, 7)], pairs=["and<-S1"]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H5.7 as in fig 3.19", _attn(H57_PLANTED), "the 8M stand-in with H5.7's END->S2, gave->S2, and->S1 at 0.5"),
              negative("previous-token head", _attn([(5, 7, PREV, None, 0.9)]), _PREV_HEAD), _stand_in()],
)


@pytest.mark.claim(I10_AND)
def test_i10_h5_7_sends_s1_to_and(ts8m, measure):
    measure.run(ts8m)


# Path patching (edge) claims. A random stand-in's recoveries are a ratio of noise (its clean - corrupted
# logit difference is about 0), so their controls are edges built into the stand-in
# (ioi_controls.planted_edge): the sender writes, clean minus corrupted, what the receiver's query or
# value reads, by that route alone to first order, and the receiver turns it into logits along IO - S.

I11_V = Claim(
    id="I11.v", model=TS8M, statement="H5.7's value reads from H4.0 (V-composition)",
    source=_src("§3.4.2 (edge attribution, fig 3.20)"), published="H4.0 -> H5.7 value",
    expect=rank_at_most(3, (4, 0)),
    tolerance="path patching of every earlier head into H5.7's value input: H4.0 among the top 3 by recovery",
    measure=Measure(partial(m.edge_recovery, receiver=(5, 7), component="v", sender=(4, 0)), on=IOI),
    evidence=INTERVENTIONAL,
    controls=[positive("H4.0 -> H5.7 value", _edge(["L4H0"], (5, 7), "v"),
                       "the 8M stand-in with H4.0 writing at S2 what H5.7's value reads, H5.7 writing 4 logits from it"),
              negative("H4.1 -> H5.7 value", _edge(["L4H1"], (5, 7), "v"), "the edge from H4.1 instead; H4.0 random")],
)


@pytest.mark.claim(I11_V)
def test_i11_h4_0_to_h5_7_value(ts8m, measure):
    measure.run(ts8m)


I11_Q = Claim(
    id="I11.q", model=TS8M, statement="H7.7's query reads from H5.7 (Q-composition)",
    source=_src("§3.4.2 (edge attribution, fig 3.20)"), published="H5.7 -> H7.7 query",
    expect=rank_at_most(3, (5, 7)),
    tolerance="path patching of every earlier head into H7.7's query input: H5.7 among the top 3 by recovery",
    measure=Measure(partial(m.edge_recovery, receiver=(7, 7), component="q", sender=(5, 7)), on=IOI),
    evidence=INTERVENTIONAL,
    controls=[positive("H5.7 -> H7.7 query", _edge(["L5H7"], (7, 7), "q"),
                       "the 8M stand-in with H5.7 writing at END what H7.7's query reads, H7.7 writing 4 logits from it"),
              negative("H5.6 -> H7.7 query", _edge(["L5H6"], (7, 7), "q"), "the edge from H5.6 instead; H5.7 random")],
)


@pytest.mark.claim(I11_Q)
def test_i11_h5_7_to_h7_7_query(ts8m, measure):
    measure.run(ts8m)


# ---------------------------------------------------------------- issue #14 item 2: §3.4.2 / §3.5.1 statements
# GPT-2 small patching sweeps (test names with "gpt2_sweep") cost minutes on a CPU stand-in: the CI dry run
# leaves them out and a slow dry run runs them (tests/test_ioi.py).

GPT2_NAME_MOVERS = [(9, 9), (9, 6), (10, 0)]  # Wang et al. 2022, as the thesis names them (§3.4.2)
GPT2_CIRCUIT = [(9, 9), (9, 6), (10, 0), (8, 6), (8, 10), (7, 3), (7, 9)]  # name movers and S-inhibition heads
# The GPT-2 stand-in with the three name movers reading S2: I8.gpt2's positive control and the GPT-2 side of both of
# I8.fewer's (one model, one head-patching sweep of GPT-2's 144 heads for the three controls: about 4 minutes of CPU)
GPT2_READERS = [(9, 9, 2.0), (9, 6, 2.0), (10, 0, 2.0)]

I6_GPT2 = Claim(
    id="I6.gpt2", model=GPT2, statement="GPT-2 small's direct effect on the logit difference is more distributed than TinyStories-8M's",
    source=_src("§3.4.2, figs 3.9/3.10 ('While in GPT2-small the impact is more distributed')"),
    published="more distributed (no number)", expect=at_least(0.2),
    tolerance=("share of the total |mean head DLA| held by the top head: TinyStories-8M's minus GPT-2 small's >= 0.2 "
               "(I6's margin; the thesis gives no number); CI: bootstrap over the shared prompts; both shares, top heads "
               "and how many heads hold half of the total beside"),
    measure=partial(ioi.on_pair, m.dla_concentration_gap, prepare=IOI, models=[TS8M, GPT2]), evidence=OBSERVATIONAL,
    controls=[
        positive("one 8M mover, three GPT-2 movers",
                 partial(C.pair, _dla([(7, 7, 6.0)]), _dla([(9, 9, 2.0), (9, 6, 2.0), (10, 0, 2.0)], GPT2)),
                 "8M stand-in with one head writing 6 logits; GPT-2 stand-in with three heads writing 2 each"),
        negative("swapped", partial(C.pair, _dla([(5, 3, 2.0), (6, 2, 2.0), (7, 1, 2.0)]), _dla([(9, 9, 6.0)], GPT2)),
                 "three 8M heads writing 2 each; one GPT-2 head writing 6"),
    ],
)


@pytest.mark.claim(I6_GPT2)
def test_i6_gpt2_dla_more_distributed(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))


I17_GPT2 = Claim(
    id="I17.gpt2", model=GPT2,
    statement="GPT-2 small's name movers H9.9, H9.6 and H10.0 have the largest logit difference attribution",
    source=_src("§3.4.2, fig 3.10 ('In [Wang et al., 2022] H9.9, H9.6, and H10.0 are classified as the strongest name "
                "mover heads, they also have the largest logit difference attribution.')"),
    published="top 3 by DLA", expect=at_least(0.0),
    tolerance=("the smallest mean DLA of the three minus the largest mean DLA of every other head >= 0 (they are the "
               "top three); CI: bootstrap over prompts of that margin"),
    measure=Measure(partial(m.top_positive_dla, heads=GPT2_NAME_MOVERS), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("three movers", _dla([(9, 9, 3.0), (9, 6, 2.5), (10, 0, 2.0)], GPT2),
                       "the GPT-2 stand-in with H9.9, H9.6, H10.0 writing 3, 2.5, 2 logits"),
              negative("H10.1 instead of H10.0", _dla([(9, 9, 3.0), (9, 6, 2.5), (10, 1, 2.0)], GPT2),
                       "one mover planted next door: H10.0 stays random")],
)


@pytest.mark.claim(I17_GPT2)
def test_i17_gpt2_name_movers_lead_dla(gpt2, measure):
    measure.run(gpt2)


GPT2_MOVERS_PLANTED = [(9, 9, "END", "IO", 0.6), (9, 6, "END", "IO", 0.6), (9, 9, "gave", "IO", 0.6), (9, 6, "gave", "IO", 0.6)]

I9_GPT2 = Claim(
    id="I9.gpt2", model=GPT2, statement="GPT-2 small's H9.9 and H9.6 attend from END to IO (not S)",
    source=_src("§3.4.2, figs 3.15/3.16 ('In all of the attention patterns we can see that information is being moved "
                "from the IO position where the \u201dMary\u201d token is located to the END position')"),
    published="END -> IO", expect=at_least(0.4),
    tolerance=("for each head: attention END->IO minus END->(S1+S2) >= 0.4 (I9's margin, the stricter reading the thesis "
               "and Wang et al. support); value: the smaller head's"),
    measure=Measure(partial(m.attention_io_over_s_heads, heads=[(9, 9), (9, 6)]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H9.9, H9.6 END->IO", _attn(GPT2_MOVERS_PLANTED, GPT2), "the GPT-2 stand-in with both heads' END and gave rows on IO"),
              negative("only H9.9", _attn(GPT2_MOVERS_PLANTED[:1], GPT2), "H9.6 left random")],
)


@pytest.mark.claim(I9_GPT2)
def test_i9_gpt2_name_movers_attend_io(gpt2, measure):
    measure.run(gpt2)


_GAVE_IO = ("'In all of the attention patterns' (l.756) covers figs 3.15-3.17 (H9.9, H9.6, H7.7); C-sends (as I10): raw "
            "attention gave->IO >= 0.3 for each head (IO is never right before 'gave', so no baseline part); the thesis "
            "gives no number; gave->IO minus the other names in details")
H77_PLANTED = [(7, 7, "gave", "IO", 0.6), (7, 7, "END", "IO", 0.6)]

I9_GAVE = Claim(
    id="I9.gave", model=TS8M, statement="H7.7 moves IO into the 'gave' position (attention gave->IO)",
    source=_src("§3.4.2, fig 3.17 ('see that IO information is being moved into the position where the token \"gave\" "
                "is located')"), published="gave -> IO", expect=at_least(0.0), tolerance=_GAVE_IO,
    measure=Measure(partial(m.sends_information, heads=[(7, 7)], pairs=["gave<-IO"]), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H7.7 as in fig 3.17", _attn(H77_PLANTED), "the 8M stand-in with H7.7's gave and END rows putting 0.6 on IO"),
              negative("H7.7 gave->S2", _attn([(7, 7, "gave", "S2", 0.6)]), "swapped: H7.7's gave row on S2"), _stand_in()],
)


@pytest.mark.claim(I9_GAVE)
def test_i9_h7_7_moves_io_into_gave(ts8m, measure):
    measure.run(ts8m)


I9_GPT2_GAVE = Claim(
    id="I9.gpt2_gave", model=GPT2, statement="GPT-2 small's H9.9 and H9.6 also move IO into the 'gave' position",
    source=_src("§3.4.2, figs 3.15/3.16 ('In all of the attention patterns ... We can also see that IO information is being "
                "moved into the position where the token \"gave\" is located')"),
    published="gave -> IO (figs 3.15/3.16)", expect=at_least(0.0), tolerance=_GAVE_IO + "; value: the weaker head's",
    measure=Measure(partial(m.sends_information, heads=[(9, 9), (9, 6)], pairs=["gave<-IO"]), on=IOI),
    evidence=OBSERVATIONAL,
    controls=[positive("H9.9, H9.6 gave->IO", _attn(GPT2_MOVERS_PLANTED, GPT2), "the GPT-2 stand-in with both heads' gave rows on IO"),
              negative("only H9.9", _attn(GPT2_MOVERS_PLANTED[:1] + GPT2_MOVERS_PLANTED[2:3], GPT2), "H9.6 left random")],
)


@pytest.mark.claim(I9_GPT2_GAVE)
def test_i9_gpt2_name_movers_move_io_into_gave(gpt2, measure):
    measure.run(gpt2)


H611_PLANTED = [(6, 11, "END", "IO", 0.3), (6, 11, "END", "S2", 0.3)]

I19 = Claim(
    id="I19", model=TS8M, statement="H6.11 is also a name mover head (END attends to the names)",
    source=_src("§3.5.1 ('By inspecting the attention patterns in layer 6 I found that H6.11 is also a name mover "
                "head'; fig 3.21)"), published="name mover", expect=at_least(0.3),
    tolerance="attention END->(IO+S1+S2) >= 0.3 (the suite's 'attends to'; the thesis gives no number)",
    measure=Measure(partial(m.end_attention_to_names, head=(6, 11)), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H6.11 as in fig 3.21", _attn(H611_PLANTED), "the 8M stand-in with H6.11's END row putting 0.3 on IO and on S2"),
              _stand_in()],
)


@pytest.mark.claim(I19)
def test_i19_h6_11_is_a_name_mover(ts8m, measure):
    measure.run(ts8m)


I19_WEAKER = Claim(
    id="I19.weaker", model=TS8M, statement="H6.11 matters in head patching, but less than H7.7",
    source=_src("§3.5.1 ('which is consistent with the head patching in 3.13, although a weaker one than H7.7')"),
    published="weaker than H7.7", expect=at_least(0.02),
    tolerance=("with r = head-patching recovery (I8's measurement: fraction of the clean - corrupted logit "
               "difference), min(r(H6.11), r(H7.7) - r(H6.11)) >= 0.02: H6.11 visibly matters (2% of the gap) and "
               "H7.7 matters more by as much; CI: bootstrap over prompts of that minimum (the ratio is in details)"),
    measure=Measure(partial(m.weaker_mover, head=(6, 11), reference=(7, 7)), on=IOI), evidence=INTERVENTIONAL,
    controls=[positive("H7.7 4, H6.11 2", _readers([(7, 7, 4.0), (6, 11, 2.0)]),
                       "the 8M stand-in with H7.7 and H6.11 reading S2 and writing 4 and 2 logits at END"),
              negative("H7.7 2, H6.11 4", _readers([(7, 7, 2.0), (6, 11, 4.0)]), "reversed: H6.11 the stronger")],
)


@pytest.mark.claim(I19_WEAKER)
def test_i19_h6_11_weaker_than_h7_7(ts8m, measure):
    measure.run(ts8m)


I19_BOTH = Claim(
    id="I19.both", model=TS8M, statement="H6.11 moves both S and IO into END",
    source=_src("§3.5.1 ('H6.11 moves both the subject and the indirect object into the final \u201cto\u201d position'; "
                "fig 3.21)"), published="both S and IO", expect=at_least(0.1),
    tolerance=("the smaller of attention END->IO and END->(S1+S2) >= 0.1 (the thesis gives no number; H7.7, which "
               "'only moves the IO name', has END->S ~0); CI: bootstrap over prompts of that minimum"),
    measure=Measure(partial(m.end_attention_both, head=(6, 11)), on=IOI), evidence=OBSERVATIONAL,
    controls=[positive("H6.11 as in fig 3.21", _attn(H611_PLANTED), "the 8M stand-in with H6.11's END row putting 0.3 on IO and on S2"),
              negative("IO only", _attn([(6, 11, "END", "IO", 0.6)]), "H6.11's END row on IO only (like H7.7)")],
)


@pytest.mark.claim(I19_BOTH)
def test_i19_h6_11_moves_both_names(ts8m, measure):
    measure.run(ts8m)


SYNERGY = 0.02  # I19.weaker's 'visibly matters' minimum: 2% of the clean - corrupted logit difference

I20 = Claim(
    id="I20", model=TS8M, statement="No earlier head synergizes with H6.11 as an S-inhibition head (into its query)",
    source=_src("§3.5.1 ('In contrast to H7.7 which only moves the IO name 3.17, H6.11 moves both the subject and the "
                "indirect object into the final \u201cto\u201d position, indicating that there\u2019s no corresponding "
                "S-inhibition head that synergizes with it.')"),
    published="no such head", expect=at_most(SYNERGY), absence=True,
    tolerance=(f"path patching (corrupt-to-clean, I11.q's measurement: an S-inhibition head acts on a name mover "
               f"through its query, Wang et al.; H5.7 -> H7.7's query in this model) of every head of layers 0-5 into "
               f"H6.11's query input: the largest recovery <= {SYNERGY} of the logit difference (I19.weaker's 'visibly "
               f"matters' minimum; the thesis gives no number), decided on the bootstrap CI of the maximum over the 96 "
               f"heads (simultaneous); signed (a synergizing sender helps); H6.11's own head-patching recovery beside; "
               f"detectable_effect: smallest recovery added to the least active sender's edge that this check decides "
               f"FAIL"),
    measure=Measure(partial(m.no_strong_sender, receiver=(6, 11), component="q", threshold=SYNERGY), on=IOI),
    evidence=INTERVENTIONAL,
    # the unplanted 8M stand-in (120 prompts), measured: max 0.0002, CI [-3.42, 3.43] (INCONCLUSIVE): a ratio of
    # noise, so both controls carry a logit difference of their own (a writer reading S2, 9-10 logits)
    controls=[negative("no edge into H6.11's query", partial(C.planted_writers, ((7, 10.0),)),
                       "the 8M stand-in with a layer-7 writer reading S2 and writing 10 logits at END; nothing reaches "
                       "H6.11's query"),
              positive("a sender recovering 0.1 through H6.11's query", _edge(["L3H5"], (6, 11), "q", 1.0, [(7, 9.0)]),
                       "the same with H3.5 writing at END what H6.11's query reads and H6.11 writing 1 logit of the 10 "
                       "from it (a tenth of the logit difference)", effect=0.1)],
)


@pytest.mark.claim(I20)
def test_i20_no_s_inhibition_head_for_h6_11(ts8m, measure):
    measure.run(ts8m)

I11_V77 = Claim(
    id="I11.v77", model=TS8M, statement="H7.7's value reads from MLP0 and the embedding",
    source=_src("§3.4.2, fig 3.20 ('H7.7\u2019s value matrix reads from the output of MLP0 and Embed.')"),
    published="MLP0, Embed", expect=at_least(0.0),
    tolerance=("path patching (corrupt-to-clean, the I11 measurement, exact where the thesis used edge attribution "
               "patching) of every earlier component (embedding, 112 heads, MLP0-6) into H7.7's value input: the "
               "smaller |recovery| of MLP0 and the embedding minus the largest |recovery| of any other >= 0 (they are "
               "the two strongest, either sign, as the figure's blue/red arrows); CI: bootstrap over prompts"),
    measure=Measure(partial(m.top_senders, receiver=(7, 7), component="v", claimed=["MLP0", "embed"]), on=IOI),
    evidence=INTERVENTIONAL,
    controls=[positive("MLP0 and embed -> H7.7 value", _edge(["MLP0", "embed"], (7, 7), "v"),
                       "the 8M stand-in with MLP0 and the embedding writing at S2 what H7.7's value reads"),
              negative("MLP0 and H3.5 -> H7.7 value", _edge(["MLP0", "L3H5"], (7, 7), "v"),
                       "H3.5 instead of the embedding")],
)


@pytest.mark.claim(I11_V77)
def test_i11_h7_7_value_reads_mlp0_and_embed(ts8m, measure):
    measure.run(ts8m)


I11_MLP0 = Claim(
    id="I11.mlp0", model=TS8M, statement="H7.7's value reads more from MLP0's output than from the embedding",
    source=_src("§3.4.2 ('the fact that heads tend to read from MLP0 instead of the Embedding output is a common pattern "
                "in transformer language models'), said of fig 3.20's 'H7.7\u2019s value matrix reads from the output of "
                "MLP0 and Embed.'"),
    published="MLP0 rather than Embed", expect=at_least(0.0),
    tolerance=("checked on TinyStories-8M's H7.7, the thesis' instance of the general pattern: path patching "
               "(corrupt-to-clean, I11.v77's measurement) of MLP0 and of the embedding into H7.7's value input; "
               "|recovery| of MLP0 minus |recovery| of the embedding >= 0 ('instead of': MLP0 the stronger, either "
               "sign, as I11.v77 and the figure's blue/red arrows); CI: bootstrap over prompts of that margin; both "
               "signed recoveries beside"),
    measure=Measure(partial(m.strongest_sender, receivers=[(7, 7)], component="v", senders=["MLP0", "embed"],
                            claimed="MLP0", absolute=True), on=IOI),
    evidence=INTERVENTIONAL,
    # the unplanted 8M stand-in, measured: margin 0.0059, CI [-0.0078, 0.0078] (INCONCLUSIVE; recoveries MLP0 +0.0063,
    # embed +0.0004 of a gap that is noise)
    controls=[positive("MLP0 -> H7.7 value", _edge(["MLP0"], (7, 7), "v"),
                       "the 8M stand-in with MLP0 writing at S2 what H7.7's value reads, H7.7 writing 4 logits from it"),
              negative("embed -> H7.7 value", _edge(["embed"], (7, 7), "v"), "swapped: the embedding writes it")],
)


@pytest.mark.claim(I11_MLP0)
def test_i11_h7_7_value_reads_mlp0_over_embed(ts8m, measure):
    measure.run(ts8m)


_HANDOVER = ("corrupt-to-clean patching of resid_pre by layer x position (S2 ... END): the first layer whose END "
             "recovers more than its S2, and at least half of the logit difference, is in the second half ({0}; 8 when "
             "S2 still holds it entering the last layer; -1, a FAIL, when neither ever recovers half: nothing is handed "
             "over); CI: bootstrap over prompts; the recovery map beside")

I16_8M = Claim(
    id="I16.8m", model=TS8M,
    statement="S2's information reaches END in a late layer of TinyStories-8M (residual-stream patching)",
    source=_src("§3.4.2, fig 3.11 ('TinyStories-8M is using some information stored in the S2 position in one of the "
                "later layers to get the performance relevant information into the END position')"),
    published="late layer", expect=at_least(4), tolerance=_HANDOVER.format(">= 4 of layers 0-7"),
    measure=Measure(m.resid_handover, on=IOI), evidence=INTERVENTIONAL,
    controls=[positive("S2 -> END in layer 5", partial(C.planted_writers, ((5, 6.0),)),
                       "the 8M stand-in with a writer in layer 5 reading S2 and writing the answer at END"),
              negative("S2 -> END in layer 1", partial(C.planted_writers, ((1, 6.0),)), "the same writer in layer 1")],
)


@pytest.mark.claim(I16_8M)
def test_i16_8m_s2_to_end_late(ts8m, measure):
    measure.run(ts8m)


I16_GPT2 = Claim(
    id="I16.gpt2", model=GPT2,
    statement="S2's information reaches END in a late layer of GPT-2 small (residual-stream patching)",
    source=_src("§3.4.2, fig 3.12 ('just like in GPT2-small')"), published="late layer", expect=at_least(6),
    tolerance=_HANDOVER.format(">= 6 of layers 0-11"), measure=Measure(m.resid_handover, on=IOI),
    evidence=INTERVENTIONAL,
    controls=[positive("S2 -> END in layer 8", partial(C.planted_writers, ((8, 6.0),), 1.0, GPT2),
                       "the GPT-2 stand-in with a writer in layer 8 reading S2 and writing the answer at END"),
              negative("S2 -> END in layer 2", partial(C.planted_writers, ((2, 6.0),), 1.0, GPT2),
                       "the same writer in layer 2")],
)


@pytest.mark.claim(I16_GPT2)
def test_i16_gpt2_sweep_s2_to_end_late(gpt2, measure):
    measure.run(gpt2)


I8_GPT2 = Claim(
    id="I8.gpt2", model=GPT2,
    statement="GPT-2 small's head-output patching is led by Wang et al.'s name movers and S-inhibition heads",
    source=_src("§3.4.2, fig 3.14 ('GPT2-small logit difference from patched head outputs'; heads as named in §3.4.2 "
                "after Wang et al. 2022)"),
    published="figure only", expect=at_least(2),
    tolerance=("FIGURE READING (no sentence of the thesis describes fig 3.14; counted apart in the coverage table): at "
               "least 2 of Wang et al.'s name movers and S-inhibition heads H9.9, H9.6, H10.0, H8.6, H8.10, H7.3, H7.9 "
               "among the 5 heads with the largest recovery (I8's measurement); CI: bootstrap over prompts of that "
               "count; the largest head's share of the total beside"),
    measure=Measure(partial(m.patching_top_k, heads=GPT2_CIRCUIT, k=5), on=IOI), evidence=INTERVENTIONAL,
    controls=[positive("name movers read S2", _readers(GPT2_READERS, GPT2),
                       "the GPT-2 stand-in with H9.9, H9.6, H10.0 writing the answer at END from the name at S2"),
              negative("other heads read S2", _readers([(1, 1, 2.0), (2, 2, 2.0), (3, 3, 2.0)], GPT2),
                       "swapped: three heads outside the circuit do it")],
)


@pytest.mark.claim(I8_GPT2)
def test_i8_gpt2_sweep_head_patching(gpt2, measure):
    measure.run(gpt2)


I18_GPT2 = Claim(
    id="I18.gpt2", model=GPT2, statement="H8.6 is GPT-2 small's strongest S-inhibition head",
    source=_src("§3.4.2, fig 3.18 ('GPT2-small's H8.6 in figure 3.18, which is the strongest S-inhibition head')"),
    published="H8.6 strongest", expect=at_least(0.0),
    tolerance=("path patching of each head of layers 7-8 into the queries of the name movers H9.9, H9.6, H10.0 at once "
               "(the S-inhibition edge, Wang et al.): H8.6's recovery minus the largest other's >= 0; CI: bootstrap "
               "over prompts of that margin"),
    measure=Measure(partial(m.strongest_sender, receivers=GPT2_NAME_MOVERS, component="q",
                            senders=[f"L{l}H{h}" for l in (7, 8) for h in range(12)], claimed="L8H6"), on=IOI),
    evidence=INTERVENTIONAL,
    controls=[positive("H8.6 -> H9.9 query", _edge(["L8H6"], (9, 9), "q", name=GPT2),
                       "the GPT-2 stand-in with H8.6 writing at END what H9.9's query reads, H9.9 writing 4 logits from it"),
              negative("H8.10 -> H9.9 query", _edge(["L8H10"], (9, 9), "q", name=GPT2), "the edge from H8.10 instead")],
)


@pytest.mark.claim(I18_GPT2)
def test_i18_gpt2_sweep_h8_6_strongest_s_inhibition(gpt2, measure):
    measure.run(gpt2)


H86_PLANTED = [(8, 6, "END", "S2", 0.5), (8, 6, "gave", "S2", 0.5), (8, 6, "and", "S1", 0.5)]

I18_GPT2_PATTERN = Claim(
    id="I18.gpt2_pattern", model=GPT2,
    statement="GPT-2 small's H8.6 attends S2 from END and from 'gave', and S1 from the following 'and'",
    source=_src("§3.4.2, fig 3.18 ('it sends information from S2 into the END position and into the \"gave\" "
                "position, but also from S1 into the following \"and\" position')"),
    published="END->S2, gave->S2, and->S1", expect=at_least(0.0),
    tolerance=_SENDS + "; the three pairs of fig 3.18, the and-pair on the '{S1} and {IO}' prompts",
    measure=Measure(partial(m.sends_information, heads=[(8, 6)], pairs=["END<-S2", "gave<-S2", "and<-S1"]), on=IOI),
    evidence=OBSERVATIONAL,
    controls=[positive("H8.6 as in fig 3.18", _attn(H86_PLANTED, GPT2), "the GPT-2 stand-in with H8.6's END->S2, gave->S2, and->S1 at 0.5"),
              negative("previous-token head", _attn([(8, 6, PREV, None, 0.9)], GPT2), _PREV_HEAD)],
)


@pytest.mark.claim(I18_GPT2_PATTERN)
def test_i18_gpt2_h8_6_pattern(gpt2, measure):
    measure.run(gpt2)


I9_LIKE_GPT2 = Claim(
    id="I9.like_gpt2", model=TS8M,
    statement="TinyStories-8M's H7.7 attends from END like GPT-2 small's H9.9 and H9.6",
    source=_src("§3.4.2, figs 3.15-3.17 ('the attention pattern of TinyStories-8M\u2019s H7.7 is quite similar to those "
                "of GPT2-small\u2019s H9.9 and H9.6')"), published="quite similar", expect=at_least(0.8),
    tolerance=("correlation (centred cosine) of the END attention rows on the same prompt (both models read the GPT-2 "
               "tokenizer) >= 0.8 for each GPT-2 head ('quite similar'; the thesis gives no number; centred, as two "
               "near-uniform rows have cosine ~1); value: the smaller mean over prompts; CI: bootstrap over prompts"),
    measure=partial(ioi.on_pair, m.pattern_similarity, prepare=IOI, head_a=(7, 7), heads_b=[(9, 9), (9, 6)]),
    evidence=OBSERVATIONAL,
    controls=[positive("all three END->IO", partial(C.pair, _attn(H77_PLANTED), _attn(GPT2_MOVERS_PLANTED, GPT2)),
                       "8M stand-in's H7.7 and GPT-2 stand-in's H9.9, H9.6 with END rows on IO"),
              negative("H7.7 END->S1", partial(C.pair, _attn([(7, 7, "END", "S1", 0.8)]), _attn(GPT2_MOVERS_PLANTED, GPT2)),
                       "H7.7's END row on S1 instead")],
)


@pytest.mark.claim(I9_LIKE_GPT2)
def test_i9_h7_7_like_gpt2_name_movers(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))


I9_GPT2_SIMILAR = Claim(
    id="I9.gpt2_similar", model=GPT2,
    statement=("GPT-2 small's H9.9 and H9.6 have similar attention patterns on the thesis' clean example "
               "(that input only, as the thesis limits it)"),
    source=_src("§3.4.2, figs 3.15/3.16 ('Of notice is that they\u2019re quite similar on this input, however this "
                "doesn\u2019t necessarily mean they produce similar attention patterns in general.'; the input: 'When "
                "John and Mary went to the shops, John gave the bag to')"),
    published="quite similar (on this input)", expect=at_least(0.8),
    tolerance=("I9.like_gpt2's measure and threshold (correlation = centred cosine of the END attention rows, >= 0.8 "
               "for 'quite similar'; the thesis gives no number), H9.9's row against H9.6's in the same model, on the "
               "one prompt of figs 3.15/3.16 only: the author limits the statement to 'this input' and declines the "
               "general reading, so the value is that prompt's correlation, exact (one input, no CI); the mean over the "
               "prompt set is recorded beside (all_prompts_*) and not decided"),
    measure=Measure(partial(m.pattern_similarity, head_a=(9, 9), heads_b=[(9, 6)], example=True), on=IOI),
    evidence=OBSERVATIONAL,
    # measured (ControlRunner "run"): positive 0.9995 PASS; negatives 'H9.6 END->S1' -0.068 FAIL, 'only H9.9' 0.093
    # FAIL (the prompt-set means beside: 0.9991, -0.066, 0.101)
    controls=[positive("H9.9, H9.6 END->IO", _attn(GPT2_MOVERS_PLANTED, GPT2),
                       "the GPT-2 stand-in with both heads' END (and gave) rows putting 0.6 on IO"),
              negative("H9.6 END->S1", _attn([(9, 9, "END", "IO", 0.6), (9, 6, "END", "S1", 0.6)], GPT2),
                       "H9.9's END row on IO, H9.6's on S1: two heads that attend elsewhere"),
              negative("only H9.9", _attn(GPT2_MOVERS_PLANTED[:1], GPT2), "H9.6 left random")],
)


@pytest.mark.claim(I9_GPT2_SIMILAR)
def test_i9_gpt2_h9_9_h9_6_similar_on_example(gpt2, measure):
    measure.run(gpt2)

I8_FEWER = Claim(
    id="I8.fewer", model=TS8M, statement="TinyStories-8M uses fewer heads for IOI than GPT-2 small",
    source=_src("§3.4.2 ('There's a smaller amount of heads used to perform the task')"), published="fewer",
    expect=at_most(-1),
    tolerance=("heads with head-patching recovery >= 0.05 (I8's 'important head' minimum; positive recovery only, so "
               "GPT-2's negative name movers are not counted: the comparison is of heads that carry the answer): 8M's "
               "count minus GPT-2's <= -1; CI: bootstrap over the shared prompts; a GPT-2 patching sweep (slow dry run "
               "only)"),
    measure=partial(ioi.on_pair, m.fewer_heads, prepare=IOI, models=[TS8M, GPT2]), evidence=INTERVENTIONAL,
    controls=[positive("1 vs 3 heads", partial(C.pair, _readers([(7, 7, 4.0)]), _readers(GPT2_READERS, GPT2)),
                       "8M stand-in with one S2-reading head, GPT-2 stand-in with three (I8.gpt2's positive control)"),
              negative("3 vs 3 heads", partial(C.pair, _readers([(7, 7, 2.0), (6, 11, 2.0), (5, 7, 2.0)]), _readers(GPT2_READERS, GPT2)),
                       "as many heads, not fewer: 8M stand-in with three S2-reading heads, the same GPT-2 model (the "
                       "boundary: a count that took 'fewer' as 'at most as many' would pass it)")],
)


@pytest.mark.claim(I8_FEWER)
def test_i8_fewer_heads_gpt2_sweep(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))


I21_HEADS = Claim(
    id="I21.heads", model=TS8M,
    statement="TinyStories-8M has about the same number of heads as GPT-2 small (128 vs 144), despite far fewer parameters",
    source=_src("§3.4.2 ('This last reason seems a bit implausible though given that it has about the same number of "
                "heads as GPT2-small'); Table 3.1"),
    published="about the same (Table 3.1: 8x16 vs 12x12)", expect=at_least(0.8),
    tolerance=("'about the same' = head counts within a factor 1.25 (min(r, 1/r) >= 0.8, r = heads(8M) / heads(GPT-2)); "
               "the sentence contrasts it with 'far fewer parameters' (8M vs 117M, a factor ~14), so any factor below 1.25 "
               "is an order of magnitude closer; read from the loaded checkpoints' configs; exact (no CI)"),
    measure=m.head_count_ratio, evidence=OBSERVATIONAL,
    controls=[positive("1M vs 8M configs", partial(C.config_pair, TS1M, TS8M), "TinyStories-1M and -8M stand-ins: 128 heads each"),
              negative("organism vs GPT-2", partial(C.organism_vs, GPT2), "the name-mover organism (8 heads) vs the GPT-2 stand-in (144)")],
)


@pytest.mark.claim(I21_HEADS)
def test_i21_8m_about_as_many_heads_as_gpt2(ts8m, gpt2, measure):
    measure.run((ts8m.bridge, gpt2.bridge))
