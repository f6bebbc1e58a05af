"""Claims of the two blog posts on the one-layer TinyStories model:
../shared/seeds/blog-tinystories-1layer-21m-attention.txt ("attention" post: the head table) and
../shared/seeds/blog-tinystories-1layer-21m-attention-and-stats.md ("stats" post: the same table
plus the attention-output statistics).

The posts name roneneldan/TinyStories-Instuct-1Layer-21M (the hub's spelling) but link
roneneldan/TinyStories-1Layer-21M, so every claim runs on both and the report says which
matches. Heads are those of the single layer: H8 = layer 0, head 8.

Each claim is one declaration (mechcheck.core.claim.Claim) per input it is read on: its measurement
with every setting bound (mechcheck.studies.one_layer_heads; the role scores of one pass over the
post's prompt and the TinyStories validation paragraphs, `on=ROLES`, shared by every role claim on
a checkpoint), its evidence rung and its controls (the post's roles planted as the attention
pattern of a one-layer GPT-Neo of the same config: PASS; random weights, or the claimed head given
another head's pattern: FAIL), which the plugin runs with the very same bound measurement.

Role scores (mechcheck.metrics.head_roles) are measured on the post's prompt and on TinyStories
validation paragraphs that contain speech (at most 256 tokens each, so the GPT-Neo attention
window, 256, cannot matter). The posts give no numbers for the roles: a head "attends to" X when
at least 0.3 of its attention goes there on average, and table roles' heads must lead every other
head by the stated margin; the discussion's token-level examples (B1.but_self, B1.But, B1.a,
B1.bos5, B1.closing5, B1.banana12, B1.find14, B1.asks14, B1.Ibut0) are read on the prompt with the
threshold each tolerance states (B1.But reads the prompt's ' but'). Rows the post hedges ('~', '?',
'appears', 'sometimes') are encoded the same way and marked `hedge` (issue #21): a FAIL there reads
"the hedge was warranted" (B1.proper9, B1.banana12, B1.bigram12, B1.sometimes12, B1.clause10,
B1.clause5, B1.junction5, B1.clause11, B1.clause15).
"""

from __future__ import annotations

from functools import partial

import pytest

from mechcheck.core.claim import (OBSERVATIONAL, Claim, Measure, NotEncoded, Source, at_least, at_most, leads, negative,
                                  positive, within)
from mechcheck.metrics import activation_stats
from mechcheck.studies import one_layer_heads
from mechcheck.studies.one_layer_heads import PLANTED, RANDOM, STAT_TOL, swapped

MODELS = ["roneneldan/TinyStories-1Layer-21M", "roneneldan/TinyStories-Instuct-1Layer-21M"]
ATTN = "blog-tinystories-1layer-21m-attention.txt"
STATS = "blog-tinystories-1layer-21m-attention-and-stats.md"
TABLE = "Attention Head Qualitative Analysis (table)"
CLAUSE = "Attention Head Analysis Discussion: Grammatical Heads (Start of Clause)"
TRACKING = "Attention Head Analysis Discussion: Simple Tracking Heads"
# The post's prompt, from the TinyStories paper, with the exact (ASCII) characters of the stats post.
PROMPT = 'One day, Lucy asks Tom: "I am looking for a banana but I can\'t find it". Tom says: "Don\'t'
BOTH = ("prompt", "tinystories")
HEDGED = "a FAIL reads 'the hedge was warranted'"

# The shared preparation of every role claim: one pass over the prompt and 64 TinyStories paragraphs
# (at most 256 tokens each), for the checkpoint and for each control model alike.
ROLES = partial(one_layer_heads.role_run, prompt=PROMPT, n_paragraphs=64, max_tokens=256)

NOT_ENCODED = [
    NotEncoded(
        id="B3", model=MODELS[0],
        statement="The MLP activations look superposed (more features than dimensions)",
        source=Source(STATS, "MLP Analysis; Introduction ('there may be indications of superposition')"),
        reason="the post states an impression and shows no measurement or criterion that could fail; "
        "encoding it would mean inventing the claim",
    ),
]


@pytest.fixture(scope="module", params=MODELS)
def one_layer_name(request):
    return request.param


@pytest.fixture
def one_layer(one_layer_name, mc_load):
    """The checkpoint with raw HF weights (role scores do not depend on TL's weight processing;
    the statistics claims need the raw weights to derive every convention)."""
    return mc_load(one_layer_name, compat=False)


def declare(cid: str, statement: str, fn, settings: dict, expect, tolerance: str, published, controls,
            inputs=BOTH, where: str = TABLE, doc: str = ATTN, hedge: str | None = None) -> None:
    """One claim per input: the bound measure `fn(roles, source_input=..., **settings)` on `ROLES`,
    and a test that runs it on the checkpoint (test id `<model>-<input>`, as the records have
    always been named)."""
    for source_input in inputs:
        claim = Claim(
            id=cid, model=MODELS[0], statement=statement, source=Source(doc, where), expect=expect,
            published=published, tolerance=tolerance, hedge=hedge,
            measure=Measure(partial(fn, source_input=source_input, **settings), on=ROLES),
            evidence=OBSERVATIONAL, controls=[PLANTED, RANDOM, *controls],
        )

        @pytest.mark.claim(claim)
        @pytest.mark.parametrize("source_input", [source_input])
        def test(one_layer, measure, source_input):
            measure.run(one_layer)

        name = f"test_{cid.lower().replace('.', '_')}_{source_input}"
        test.__name__ = test.__qualname__ = name
        globals()[name] = test


def role_claim(cid, statement, role, heads, minimum, margin, controls, where=TABLE):
    """A table row: the named heads lead the role score (every head's score is the value)."""
    declare(cid, statement, one_layer_heads.role_leaders, dict(role=role, heads=tuple(heads)),
            leads(heads, minimum, margin),
            f"the post gives no number: named heads >= {minimum} of their attention on the role's keys, "
            f"ahead of every other head by >= {margin}",
            "; ".join(f"head {h}: {_TABLE_ROWS[h]}" for h in heads), controls, where=where)


def head_claim(cid, statement, role, heads, expect, tolerance, published, controls, inputs=BOTH, minus=(),
               where=TABLE, report=(), hedge=None):
    """A claim on the role score of named heads (the weakest of them, less the strongest of `minus`)."""
    declare(cid, statement, one_layer_heads.head_score,
            dict(role=role, heads=tuple(heads), minus=tuple(minus), report=tuple(report)),
            expect, tolerance, published, controls, inputs=inputs, where=where, hedge=hedge)


def two_part_claim(cid, statement, heads, parts, tolerance, published, controls, inputs=BOTH, where=TABLE,
                   report=(), hedge=None):
    """A statement with two conditions: the smaller margin, >= 0 (the suite's two-part rule)."""
    declare(cid, statement, one_layer_heads.two_part_score,
            dict(heads=tuple(heads), parts=tuple(parts), report=tuple(report)),
            at_least(0.0), tolerance, published, controls, inputs=inputs, where=where, hedge=hedge)


_TABLE_ROWS = {
    0: "attends to dialogue structure, contextual relationships (e.g. “I” to “but”) and speech delimiters",
    1: "attends to start of preceding structural pivot (start of text, comma, full stop)",
    2: "strongly attends to start of preceding structural pivot",
    4: "attends to the current token / also sometimes the previous token",
    5: "attends to the start of a clause and the start of a co-ordinating junction?",
    6: "attends to the previous token (aside from the closing speech mark, attends to the starting speech mark)",
    8: "attends to the current token",
    9: "~Attends to current and previous proper nouns?",
    10: "~Attends to all of the other tokens within same clause/sentence by varying amounts.",
    11: "attends to the start of a clause? attends to the starting speech mark within speech",
    12: "~Attending to the previous token unigram / bigram.",
    14: "start of text token, commas, attends to prior proper nouns on speech marks",
    15: "Attending to the start of a clause?",
}

# --- the table's rows: which heads lead a role ---------------------------------------------------------------

role_claim("B1.current", "Heads 4 and 8 attend to the current token", "current_token", [4, 8], 0.3, 0.05,
           [swapped(8, "uniform", "head 8 attends uniformly")])
role_claim("B1.current8", "Head 8 attends to the current token more directly than head 4 (and any other)",
           "current_token", [8], 0.3, 0.0, [swapped(8, "uniform", "head 8 attends uniformly")], where=TRACKING)
role_claim("B1.previous", "Head 6 attends to the previous token", "previous_token", [6], 0.3, 0.05,
           [swapped(6, "uniform", "head 6 attends uniformly")])
role_claim("B1.pivot", "Heads 1 and 2 attend to the preceding structural pivot (BOS, comma, full stop)",
           "preceding_pivot", [1, 2], 0.3, 0.05, [swapped(1, 8, "head 1 attends to the current token")])
role_claim("B1.speech", "Heads 5 and 11 attend to the opening speech mark from tokens inside speech",
           "opening_speech_mark", [5, 11], 0.3, 0.0, [swapped(11, 6, "head 11 attends to the previous token")],
           where=f"{TABLE}; Grammatical Heads (Start of Clause)")

# --- claims on named heads -------------------------------------------------------------------------------------

head_claim(
    "B1.closing", "At a closing speech mark head 6 attends to the opening speech mark more than to the previous "
    "token (every closing mark of the paragraphs)", "closing_opening_over_previous", [6], at_least(0.1),
    "the post gives no number: head 6's attention on the opening mark exceeds that on the previous token by >= 0.1, "
    "over every closing mark of 64 TinyStories paragraphs (mean per paragraph, then over paragraphs; CI over "
    "paragraphs; marks right after their opening mark skipped). Changed (issue #11 item 4): "
    "the post does not say head 6 beats every head there, and the prompt has a single closing mark",
    f"head 6: {_TABLE_ROWS[6]}", [swapped(6, "uniform", "head 6 attends uniformly")], inputs=["tinystories"])
head_claim(
    "B1.narrative", "From speech marks, head 14 attends to prior proper nouns, more than the pivot heads 1 and 2 do",
    "prior_proper_nouns", [14], at_least(0.2),
    "the post gives no number: head 14's attention from speech marks on earlier proper nouns (BOS and commas "
    "excluded) exceeds the larger of heads 1 and 2's by >= 0.2 (0.1 was reached by a random-weight stand-in on "
    "the prompt's 3 marks). Changed (issue #11 item 4): the target was BOS, "
    "commas and proper nouns, which any BOS-sink or pivot head hits", f"head 14: {_TABLE_ROWS[14]}",
    [swapped(14, 1, "head 14 attends to the preceding pivot")], minus=(1, 2))
two_part_claim(
    "B1.but_self", "At the word 'but' heads 1 and 2 attend only to themselves, not to the preceding structural pivot",
    [1, 2], [("self_at_but", ">=", 0.5), ("pivot_at_but", "<", 0.1)],
    "the post gives no number: 'only attends to itself' = >= 0.5 of each head's attention on the ' but' token "
    "itself, and 'not preceding structural pivot like others' = < 0.1 on its latest preceding pivot (less than a "
    "third of the suite's 0.3 'attends to', which B1.pivot requires elsewhere); value = the smaller margin of the "
    "weaker head (>= 0: both hold). Changed (issue #21): the pivot part was not tested",
    'heads 1, 2: For the word "but," only attends to itself, not preceding structural pivot like others',
    [swapped((1, 2), "pivot", "heads 1 and 2 attend to the pivot at 'but' too")])
head_claim(
    "B1.But", "Head 1 strongly attends to the token 'but' and head 2 does not", "attended_but", [1], at_least(0.2),
    "the post gives no number: on the post's prompt, whose ' but' (lower case) is the only instance, the attention "
    "on ' but' from the tokens after it up to the next pivot, head 1 minus head 2, >= 0.2 (B1.a's form). The post "
    "writes “But” with a capital, read as the same word (its table rows 1 and 2 discuss ' but'). Changed "
    "(issue #21): capital 'But' in 64 TinyStories paragraphs was measured instead; it is now in details "
    "(attended_But (tinystories_But))",
    'Head 1 strongly attends to the token "But" and Head 2 doesn\'t', [swapped(1, 2, "head 1 behaves as head 2")],
    inputs=["prompt"], minus=(2,), where=CLAUSE, report=(("tinystories_But", "attended_But"),))
head_claim(
    "B1.a", "Head 2 strongly attends to the word 'a' and head 1 does not", "attended_a", [2], at_least(0.2),
    "the post gives no number: on the prompt, the attention on ' a' (in 'for a banana') from the tokens after it up "
    "to the next pivot, head 2 minus head 1, >= 0.2", 'Head 2 strongly attends to the word "a" but Head 1 doesn\'t',
    [swapped(2, 1, "head 2 behaves as head 1")], inputs=["prompt"], minus=(1,), where=CLAUSE)
head_claim(
    "B1.bos5", "Head 5: every token up to the ':' attends to BOS", "bos_top_before_colon", [5], at_least(1.0),
    "the post gives no number: on the prompt, BOS gets strictly more of head 5's attention than any other key at "
    "every token before the first ':' ('Tom:'); the prompt has a second ':' ('says:'), whose score is in details "
    "(role bos_top_before_second_colon)", 'all of the tokens up to the ":" token are attending to the '
    '"<|endoftext|>" token', [swapped(5, "uniform", "head 5 attends uniformly: BOS ties")], inputs=["prompt"],
    where=CLAUSE, report=("bos_top_before_second_colon",))
head_claim(
    "B1.closing5", "Head 5: the closing speech mark is attended to by all following tokens",
    "closing_mark_attended_by_following", [5], at_least(0.3),
    "the post gives no number: 'attended to by all of the following tokens' = each of the tokens after the "
    "prompt's closing mark '\".' gives it >= 0.3 of head 5's attention (the suite's 'attends to', applied per "
    "token because of 'all': the value is the least of them); the share of following tokens reaching 0.3 is in "
    "details (closing_mark_share_following). Changed (issue #21): was >= 0.1",
    "The closing speech mark is being attended to by all of the following tokens",
    [swapped(5, "uniform", "head 5 attends uniformly")], inputs=["prompt"], where=CLAUSE,
    report=("closing_mark_share_following",))
head_claim(
    "B1.banana12", "Head 12: the token 'banana' attends to 'looking' and 'for' (hedged by the post: 'appears to be')",
    "looking_for_lead_at_banana", [12], at_least(0.05),
    "the post gives no number: on the prompt, ' looking' and ' for' are head 12's two strongest keys at ' banana' "
    "(BOS excluded), each ahead of every other key by >= 0.05; their summed attention is in details (role "
    f"banana_to_looking_for); the post hedges ('appears to be'): {HEDGED}",
    'the token "banana" appears to be attending to the tokens "looking" and "for"',
    [swapped(12, 6, "head 12 attends to the previous token")], inputs=["prompt"], where=TRACKING,
    report=("banana_to_looking_for",), hedge="'appears to be'")
head_claim(
    "B1.find14", "Head 14 attends to 'banana' on the token 'find'", "find_to_banana", [14], at_least(0.3),
    "the post gives no number: on the prompt, >= 0.3 of head 14's attention at ' find' on ' banana'",
    'attending to "banana" on token "find."', [swapped(14, "uniform", "head 14 attends uniformly")],
    inputs=["prompt"])
head_claim(
    "B1.asks14", "Head 14 attends to the verb 'asks' (from some later token of the prompt; the post names only the "
    "key)", "asks_attended", [14], at_least(0.3),
    "the post gives no number and names the attended word, not the query: on the prompt, the strongest attention "
    "any later token gives ' asks' >= 0.3 (as B1.find14); at ' Tom', the token right after it, head 14's "
    "previous-token score is subtracted, so a previous-token head (head 6) does not pass; the 'Tom' reading "
    "(tom_to_asks, tom_to_asks_beyond_previous) is in details. Changed (issue #21): the query ' Tom' was guessed",
    'the word "asks" i.e., verb before proper noun "Tom,"',
    [swapped(14, 6, "head 14 attends to the previous token"), swapped(14, "uniform", "head 14 attends uniformly")],
    inputs=["prompt"], report=("tom_to_asks", "tom_to_asks_beyond_previous"))
two_part_claim(
    "B1.proper9", "Head 9 attends to current and previous proper nouns (hedged by the post: '~ ... ?')",
    [9], [("self_proper_nouns", ">=", 0.15), ("previous_proper_nouns", ">=", 0.15)],
    "the post gives no number and hedges the row ('~' and '?'): from a proper noun with an earlier one, the row's "
    "two targets, itself and the earlier proper nouns, each get >= 0.15 of head 9's attention (half of the suite's "
    "0.3 'attends to' each, so together they reach it and neither is missing); a current-token head and a head on "
    f"earlier names only both fail. Changed (issue #21): a current-token head passed. {HEDGED}",
    _TABLE_ROWS[9], [swapped(9, 8, "head 9 attends to the current token only")], hedge="'~' and '?'")
head_claim(
    "B1.delimiters0", "Head 0 attends to speech delimiters", "speech_delimiters", [0], at_least(0.3),
    "the post gives no number: from every token after the first speech mark, >= 0.3 of head 0's attention on the "
    "earlier speech marks (the row's 'dialogue structure' and 'contextual relationships' have no criterion; its "
    "example 'I' to 'but' is B1.Ibut0)", "... and speech delimiters.",
    [swapped(0, 8, "head 0 attends to the current token")])
head_claim(
    "B1.Ibut0", "Head 0: the 'I' after 'but' attends to 'but' (the row's example of a contextual relationship)",
    "I_to_but_beyond_previous", [0], at_least(0.3),
    "the post gives no number and no direction: read as the later token attending to the earlier one (an earlier "
    "'I' cannot attend to a later token), i.e. the prompt's ' I' right after ' but' ('banana but I can't') gives "
    "' but' >= 0.3 of head 0's attention (as B1.find14); ' but' is the token before it, so head 0's previous-token "
    "score is subtracted (as B1.asks14); the raw attention (I_to_but) and the reverse reading (but_to_I) are in "
    "details", "e.g. “I” to “but”", [swapped(0, 6, "head 0 attends to the previous token")], inputs=["prompt"],
    report=("I_to_but", "but_to_I"))

# --- the hedged rows (issue #21: one rule for hedged rows) ------------------------------------------------------

head_claim(
    "B1.bigram12", "Head 12 attends to the previous token unigram / bigram (hedged by the post: '~')",
    "previous_one_or_two", [12], at_least(0.3),
    "the post gives no number and hedges the row ('~'): >= 0.3 of head 12's attention on the previous one or two "
    f"tokens (the suite's 'attends to'; BOS is not a token of the text). {HEDGED}", _TABLE_ROWS[12],
    [swapped(12, 8, "head 12 attends to the current token")], hedge="'~'")
head_claim(
    "B1.sometimes12", "Head 12 sometimes attends to the previous token occasionally (hedged by the post: "
    "'sometimes ... occasionally', 'appears')", "previous_is_top_share", [12], within(0.3, 0.2),
    "'sometimes ... occasionally' = the previous token is head 12's strongest key (BOS excluded) at between 1 in "
    "10 queries (less would be 'rarely') and half of them (more would be head 6's 'clearly attends'); the 'other "
    f"tokens relevant in context' part is B1.banana12. {HEDGED}",
    "Head 12 also sometimes attends to the previous token occasionally, however it appears to be attending to "
    "other tokens which are relevant in context",
    [swapped(12, 6, "head 12 always attends to the previous token"),
     swapped(12, "uniform", "head 12 attends uniformly")], where=TRACKING,
    hedge="'sometimes ... occasionally', 'appears'")
two_part_claim(
    "B1.clause10", "Head 10 attends to all of the other tokens within the same clause/sentence (hedged by the post: "
    "'~')", [10], [("within_clause_mass", ">=", 0.3), ("within_clause_coverage", ">=", 0.5)],
    "the post gives no number and hedges the row ('~'): 'attends to' = >= 0.3 of head 10's attention on the other "
    "tokens of the query's clause (from its opener: BOS, a speech mark, a co-ordinating conjunction, a sentence "
    "start; commas do not open one, as in the post's head-5 example), and 'all of the other tokens' = at least half "
    "of them get at least half of a uniform share; 'varying amounts' is not tested (uniform is allowed). "
    f"{HEDGED}", _TABLE_ROWS[10],
    [swapped(10, 6, "head 10 attends to the previous token"), swapped(10, 8, "head 10 attends to the current token")],
    hedge="'~'")
for cid, head in (("B1.clause5", 5), ("B1.clause11", 11), ("B1.clause15", 15)):
    head_claim(
        cid, f"Head {head} attends to the start of a clause (hedged by the post: '?')", "clause_start", [head],
        at_least(0.3),
        f"the post gives no number and hedges the row ('?'): >= 0.3 of head {head}'s attention on the latest clause "
        "opener before the query (BOS, a speech mark, a co-ordinating conjunction, the token after a sentence end; "
        "commas do not open a clause: the post's own example has every token of 'One day, Lucy asks Tom' up to ':' "
        f"on BOS). Heads 5, 11 and 15 carry the same words and may pass or fail together. {HEDGED}",
        _TABLE_ROWS[head], [swapped(head, 6, f"head {head} attends to the previous token")],
        where=TABLE if head != 5 else f"{TABLE}; {CLAUSE}", hedge="'?'")
head_claim(
    "B1.junction5", "Head 5 attends to the start of a co-ordinating junction (hedged by the post: '?', 'appears')",
    "junction_start", [5], at_least(0.3),
    "the post gives no number and hedges ('?', 'appears'): from the tokens after a co-ordinating conjunction "
    "(and, but, or, nor, so, yet; 'for' left out, the prompt's 'looking for' is the preposition) up to the next "
    "pivot, >= 0.3 of head 5's attention on that conjunction; the token right after the conjunction is left out "
    "(the conjunction is its previous token: a previous-token head scored 0.37 on TinyStories with it, its "
    f"negative control). {HEDGED}", _TABLE_ROWS[5],
    [swapped(5, 6, "head 5 attends to the previous token"), swapped(5, 8, "head 5 attends to the current token")],
    where=f"{TABLE}; {CLAUSE}", hedge="'?', 'appears'")


# --- B2: the stats post's table ------------------------------------------------------------------------------

# Published table of the stats post (Raw Attention Embedding | Attention Embed + Residual + LayerNorm)
PUBLISHED_ATTN_OUT = {"mean": -0.0011, "std": 0.2027, "max": 1.9523, "min": -5.4120,
                      "q25": -0.1036, "median": 0.0019, "q75": 0.1089}
PUBLISHED_AFTER_LN = {"mean": -0.0115, "std": 0.7612, "max": 5.4987, "min": -10.6500,
                      "q25": -0.4581, "median": -0.0019, "q75": 0.4553}
# Every statistic under each (BOS or not) x (raw HF / TL-processed weights) convention, one pass each.
CONVENTIONS = partial(activation_stats.attention_output_conventions, text=PROMPT)
PLANTED_TABLE = positive(
    "planted table", partial(one_layer_heads.planted_statistics, PUBLISHED_ATTN_OUT, PUBLISHED_AFTER_LN),
    "TinyStories-1Layer-21M's exact config whose attention output and ln_2 output are tensors with the "
    "published statistics")
SWAPPED_TABLE = negative(
    "tables swapped", partial(one_layer_heads.planted_statistics, PUBLISHED_AFTER_LN, PUBLISHED_ATTN_OUT),
    "the same model with the two published tables planted the other way round")
EXACT_RANDOM = negative(
    "random weights", one_layer_heads.exact_random, "TinyStories-1Layer-21M's exact config with random weights")

B2_ATTN_OUT = Claim(
    id="B2.attn_out", model=MODELS[0],
    statement="Statistics of hook_attn_out (layer 0) on the prompt: mean -0.0011, std 0.2027, max 1.9523, "
    "min -5.4120, quartiles -0.1036 / 0.0019 / 0.1089",
    source=Source(STATS, "Attention Embedding Analysis (table, 'Raw Attention Embedding')"),
    published=PUBLISHED_ATTN_OUT, expect=at_most(STAT_TOL),
    tolerance=f"measured = largest |measured - published| over the 7 statistics, under the best of 4 "
    f"conventions (BOS/no BOS x raw/TL-processed weights); <= {STAT_TOL}",
    measure=Measure(partial(one_layer_heads.stats_deviation, which="attn_out", published=PUBLISHED_ATTN_OUT),
                    on=CONVENTIONS),
    evidence=OBSERVATIONAL, controls=[PLANTED_TABLE, EXACT_RANDOM, SWAPPED_TABLE],
)


@pytest.mark.claim(B2_ATTN_OUT)
def test_b2_attention_output_stats(one_layer, measure):
    measure.run(one_layer)


B2_AFTER_LN = Claim(
    id="B2.after_ln", model=MODELS[0],
    statement="Statistics of attention output + residual after LayerNorm on the prompt: mean -0.0115, "
    "std 0.7612, max 5.4987, min -10.6500, quartiles -0.4581 / -0.0019 / 0.4553",
    source=Source(STATS, "Attention Embedding Analysis (table, 'Attention Embed + Residual + LayerNorm')"),
    published=PUBLISHED_AFTER_LN, expect=at_most(STAT_TOL),
    tolerance="as B2.attn_out; LayerNorm = the block's ln_2 with its weights (raw) or without (TL-processed)",
    measure=Measure(partial(one_layer_heads.stats_deviation, which="after_ln", published=PUBLISHED_AFTER_LN),
                    on=CONVENTIONS),
    evidence=OBSERVATIONAL, controls=[PLANTED_TABLE, EXACT_RANDOM, SWAPPED_TABLE],
)


@pytest.mark.claim(B2_AFTER_LN)
def test_b2_after_layernorm_stats(one_layer, measure):
    measure.run(one_layer)
