"""Claims of the two blog posts on the one-layer TinyStories model:
../shared/seeds/blog-tinystories-1layer-21m-attention.txt ("attention" post: the head table) and
../shared/seeds/blog-tinystories-1layer-21m-attention-and-stats.md ("stats" post: the same table
plus the attention-output statistics).

The posts name roneneldan/TinyStories-Instuct-1Layer-21M (the hub's spelling) but link
roneneldan/TinyStories-1Layer-21M, so every claim runs on both and the report says which
matches. Heads are those of the single layer: H8 = layer 0, head 8.

Role scores (mechcheck.metrics.head_roles) are measured on the post's prompt and on TinyStories
validation paragraphs that contain speech (at most 256 tokens each, so the GPT-Neo attention
window, 256, cannot matter); "But" claims read paragraphs that contain "But" (the prompt has
none). The posts give no numbers for the roles: a head "attends to" X when at least 0.3 of its
attention goes there on average, and table roles' heads must lead every other head by the stated
margin; the discussion's token-level examples (B1.but_self, B1.But, B1.a, B1.bos5, B1.closing5,
B1.banana12, B1.find14) are read on the prompt with the threshold each tolerance states.
"""

from __future__ import annotations

import pytest

from mechcheck.studies import one_layer_heads
from mechcheck.core.claim import NotEncoded, Source, at_least, at_most, leads
from mechcheck.data import paragraphs, tinystories_validation
from mechcheck.metrics import activation_stats, head_roles
from mechcheck.studies.one_layer_heads import STAT_TOL

MODELS = ["roneneldan/TinyStories-1Layer-21M", "roneneldan/TinyStories-Instuct-1Layer-21M"]
ATTN = "blog-tinystories-1layer-21m-attention.txt"
STATS = "blog-tinystories-1layer-21m-attention-and-stats.md"
TABLE = "Attention Head Qualitative Analysis (table)"
# The post's prompt, from the TinyStories paper, with the exact (ASCII) characters of the stats post.
PROMPT = 'One day, Lucy asks Tom: "I am looking for a banana but I can\'t find it". Tom says: "Don\'t'
N_PARAGRAPHS = 64
MAX_TOKENS = 256
INPUTS = ["prompt", "tinystories"]

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
    the statistics claim needs the raw weights to derive every convention)."""
    return mc_load(one_layer_name, compat=False)


@pytest.fixture
def roles(one_layer, mc_data, mc_shared):
    """{input: {role: [n_texts, n_heads]}}: one pass over the prompt and the paragraphs, shared
    by every role claim on this checkpoint."""

    def build():
        sample = tinystories_validation(mc_data)
        texts = paragraphs(sample, must_contain='"', limit=N_PARAGRAPHS)
        but_texts = paragraphs(sample, must_contain="But", limit=N_PARAGRAPHS)
        return {
            "prompt": head_roles.role_scores(one_layer.bridge, [PROMPT]),
            "tinystories": head_roles.role_scores(one_layer.bridge, texts, max_tokens=MAX_TOKENS),
            "tinystories_But": head_roles.role_scores(one_layer.bridge, but_texts, max_tokens=MAX_TOKENS),
        }

    return mc_shared(("roles", one_layer.sha256), build)


def role_claim(cid, statement, role, heads, minimum, margin, where=TABLE):
    """A claim on which heads lead a role score, parametrized over the two inputs."""

    @pytest.mark.claim(
        id=cid, statement=statement, source=Source(ATTN, where), model=MODELS[0],
        expect=leads(heads, minimum, margin),
        published="; ".join(f"head {h}: {_TABLE_ROWS[h]}" for h in heads),
        tolerance=f"the post gives no number: named heads >= {minimum} of their attention on the role's keys, "
        f"ahead of every other head by >= {margin}",
    )
    @pytest.mark.parametrize("source_input", INPUTS)
    def test(one_layer, roles, measure, source_input):
        measure.record(**one_layer_heads.role_leaders(roles, source_input, role, heads, one_layer.bridge, PROMPT))

    test.settings = dict(role=role, heads=heads, inputs=INPUTS)  # what the controls in tests/ reuse
    return test


_TABLE_ROWS = {
    1: "attends to start of preceding structural pivot (start of text, comma, full stop)",
    2: "strongly attends to start of preceding structural pivot",
    4: "attends to the current token / also sometimes the previous token",
    5: "attends to the start of a clause ... the starting speech mark within speech (discussion)",
    6: "attends to the previous token (aside from the closing speech mark, attends to the starting speech mark)",
    8: "attends to the current token",
    11: "attends to the starting speech mark within speech",
    14: "start of text token, commas, attends to prior proper nouns on speech marks",
}

test_b1_current_token_heads = role_claim(
    "B1.current", "Heads 4 and 8 attend to the current token", "current_token", [4, 8], 0.3, 0.05)
test_b1_head8_most_direct = role_claim(
    "B1.current8", "Head 8 attends to the current token more directly than head 4 (and any other)",
    "current_token", [8], 0.3, 0.0, where="Attention Head Analysis Discussion: Simple Tracking Heads")
test_b1_previous_token_head = role_claim(
    "B1.previous", "Head 6 attends to the previous token", "previous_token", [6], 0.3, 0.05)
test_b1_pivot_heads = role_claim(
    "B1.pivot", "Heads 1 and 2 attend to the preceding structural pivot (BOS, comma, full stop)",
    "preceding_pivot", [1, 2], 0.3, 0.05)
test_b1_speech_heads = role_claim(
    "B1.speech", "Heads 5 and 11 attend to the opening speech mark from tokens inside speech",
    "opening_speech_mark", [5, 11], 0.3, 0.0, where=f"{TABLE}; Grammatical Heads (Start of Clause)")


def head_claim(cid, statement, role, heads, expect, tolerance, published, inputs=INPUTS, minus=(), where=TABLE,
               report=()):
    """A claim on the role score of named heads (the weakest of them, less the strongest of
    `minus`), parametrized over `inputs`."""

    @pytest.mark.claim(id=cid, statement=statement, source=Source(ATTN, where), model=MODELS[0],
                       expect=expect, published=published, tolerance=tolerance)
    @pytest.mark.parametrize("source_input", inputs)
    def test(one_layer, roles, measure, source_input):
        measure.record(**one_layer_heads.head_score(roles, source_input, role, heads, minus, report))

    test.settings = dict(role=role, heads=heads, minus=minus, inputs=inputs, report=report)  # for tests/ controls
    return test


CLAUSE = "Attention Head Analysis Discussion: Grammatical Heads (Start of Clause)"
TRACKING = "Attention Head Analysis Discussion: Simple Tracking Heads"

test_b1_closing_mark = head_claim(
    "B1.closing", "At a closing speech mark head 6 attends to the opening speech mark more than to the previous "
    "token (every closing mark of the paragraphs)", "closing_opening_over_previous", [6], at_least(0.1),
    "the post gives no number: head 6's attention on the opening mark exceeds that on the previous token by >= 0.1, "
    "over every closing mark of 64 TinyStories paragraphs (mean per paragraph, then over paragraphs; CI over "
    "paragraphs; marks right after their opening mark skipped). Changed (issue #11 item 4): "
    "the post does not say head 6 beats every head there, and the prompt has a single closing mark",
    f"head 6: {_TABLE_ROWS[6]}", inputs=["tinystories"])
test_b1_narrative_head = head_claim(
    "B1.narrative", "From speech marks, head 14 attends to prior proper nouns, more than the pivot heads 1 and 2 do",
    "prior_proper_nouns", [14], at_least(0.2),
    "the post gives no number: head 14's attention from speech marks on earlier proper nouns (BOS and commas "
    "excluded) exceeds the larger of heads 1 and 2's by >= 0.2 (0.1 was reached by a random-weight stand-in on "
    "the prompt's 3 marks). Changed (issue #11 item 4): the target was BOS, "
    "commas and proper nouns, which any BOS-sink or pivot head hits", f"head 14: {_TABLE_ROWS[14]}", minus=(1, 2))
test_b1_but_self = head_claim(
    "B1.but_self", "At the word 'but' heads 1 and 2 attend only to themselves", "self_at_but", [1, 2], at_least(0.5),
    "the post gives no number: 'only attends to itself' read as >= 0.5 of each head's attention on the ' but' "
    "token itself (the weaker head counts)", 'heads 1, 2: For the word "but," only attends to itself')
test_b1_but_head1 = head_claim(
    "B1.But", "Head 1 strongly attends to the token 'But' and head 2 does not", "attended_But", [1], at_least(0.2),
    "the post gives no number: the attention on 'But' from the tokens after it up to the next pivot, head 1 minus "
    "head 2, >= 0.2. The prompt has ' but' and no 'But': measured on the first 64 TinyStories paragraphs that "
    "contain 'But' (the post's own instance cannot be reproduced)",
    'Head 1 strongly attends to the token "But" and Head 2 doesn\'t', inputs=["tinystories_But"], minus=(2,),
    where=CLAUSE)
test_b1_a_head2 = head_claim(
    "B1.a", "Head 2 strongly attends to the word 'a' and head 1 does not", "attended_a", [2], at_least(0.2),
    "the post gives no number: on the prompt, the attention on ' a' (in 'for a banana') from the tokens after it up "
    "to the next pivot, head 2 minus head 1, >= 0.2", 'Head 2 strongly attends to the word "a" but Head 1 doesn\'t',
    inputs=["prompt"], minus=(1,), where=CLAUSE)
test_b1_head5_bos = head_claim(
    "B1.bos5", "Head 5: every token up to the ':' attends to BOS", "bos_top_before_colon", [5], at_least(1.0),
    "the post gives no number: on the prompt, BOS gets strictly more of head 5's attention than any other key at "
    "every token before the first ':' ('Tom:'); the prompt has a second ':' ('says:'), whose score is in details "
    "(role bos_top_before_second_colon)", 'all of the tokens up to the ":" token are attending to the '
    '"<|endoftext|>" token', inputs=["prompt"], where=CLAUSE,
    report=("bos_top_before_second_colon",))
test_b1_head5_closing = head_claim(
    "B1.closing5", "Head 5: the closing speech mark is attended to by all following tokens",
    "closing_mark_attended_by_following", [5], at_least(0.1),
    "the post gives no number: on the prompt, every token after the closing mark '\".' gives it >= 0.1 of head 5's "
    "attention (about 3x uniform over the prompt's tokens)",
    "The closing speech mark is being attended to by all of the following tokens", inputs=["prompt"], where=CLAUSE)
test_b1_head12_banana = head_claim(
    "B1.banana12", "Head 12: the token 'banana' attends to 'looking' and 'for' (hedged by the post: 'appears to be')",
    "looking_for_lead_at_banana", [12], at_least(0.05),
    "the post gives no number: on the prompt, ' looking' and ' for' are head 12's two strongest keys at ' banana' "
    "(BOS excluded), each ahead of every other key by >= 0.05; their summed attention is in details (role "
    "banana_to_looking_for); the post hedges ('appears to be')",
    'the token "banana" appears to be attending to the tokens "looking" and "for"', inputs=["prompt"], where=TRACKING,
    report=("banana_to_looking_for",))
test_b1_head14_find = head_claim(
    "B1.find14", "Head 14 attends to 'banana' on the token 'find'", "find_to_banana", [14], at_least(0.3),
    "the post gives no number: on the prompt, >= 0.3 of head 14's attention at ' find' on ' banana'",
    'attending to "banana" on token "find."', inputs=["prompt"])
test_b1_head14_asks = head_claim(
    "B1.asks14", "Head 14 attends to the verb 'asks' from the proper noun 'Tom' after it",
    "tom_to_asks_beyond_previous", [14], at_least(0.3),
    "the post gives no number: on the prompt ('Lucy asks Tom:'), head 14's attention at the first ' Tom' on ' asks', "
    "less its mean attention to the previous token over the prompt, >= 0.3 (as B1.find14); ' asks' is the token "
    "before ' Tom', so a previous-token head (head 6) must not pass; the raw attention is in details (role "
    "tom_to_asks); the post names the word, not the query: read as the proper noun the verb precedes",
    'the word "asks" i.e., verb before proper noun "Tom,"', inputs=["prompt"], report=("tom_to_asks",))
test_b1_head9_proper = head_claim(
    "B1.proper9", "Head 9 attends to current and previous proper nouns (hedged by the post: '~ ... ?')",
    "proper_nouns_to_proper_nouns", [9], at_least(0.3),
    "the post gives no number and hedges the row ('~' and '?'): from a proper noun with an earlier one, >= 0.3 of "
    "head 9's attention on itself and the earlier proper nouns; a failure reads as 'the hedge was warranted'",
    "~Attends to current and previous proper nouns?")
test_b1_head0_delimiters = head_claim(
    "B1.delimiters0", "Head 0 attends to speech delimiters", "speech_delimiters", [0], at_least(0.3),
    "the post gives no number: from every token after the first speech mark, >= 0.3 of head 0's attention on the "
    "earlier speech marks (the row's 'dialogue structure' and 'contextual relationships' have no criterion)",
    "... and speech delimiters.")


# Published table of the stats post (Raw Attention Embedding | Attention Embed + Residual + LayerNorm)
PUBLISHED_ATTN_OUT = {"mean": -0.0011, "std": 0.2027, "max": 1.9523, "min": -5.4120,
                      "q25": -0.1036, "median": 0.0019, "q75": 0.1089}
PUBLISHED_AFTER_LN = {"mean": -0.0115, "std": 0.7612, "max": 5.4987, "min": -10.6500,
                      "q25": -0.4581, "median": -0.0019, "q75": 0.4553}


@pytest.fixture
def conventions(one_layer, mc_shared):
    return mc_shared(("conventions", one_layer.sha256),
                     lambda: activation_stats.attention_output_conventions(one_layer.bridge, PROMPT))


@pytest.mark.claim(
    id="B2.attn_out", model=MODELS[0],
    statement="Statistics of hook_attn_out (layer 0) on the prompt: mean -0.0011, std 0.2027, max 1.9523, "
    "min -5.4120, quartiles -0.1036 / 0.0019 / 0.1089",
    source=Source(STATS, "Attention Embedding Analysis (table, 'Raw Attention Embedding')"),
    published=PUBLISHED_ATTN_OUT, expect=at_most(STAT_TOL),
    tolerance=f"measured = largest |measured - published| over the 7 statistics, under the best of 4 "
    f"conventions (BOS/no BOS x raw/TL-processed weights); <= {STAT_TOL}",
)
def test_b2_attention_output_stats(one_layer, conventions, measure):
    measure.record(**one_layer_heads.stats_deviation(conventions, "attn_out", PUBLISHED_ATTN_OUT))


@pytest.mark.claim(
    id="B2.after_ln", model=MODELS[0],
    statement="Statistics of attention output + residual after LayerNorm on the prompt: mean -0.0115, "
    "std 0.7612, max 5.4987, min -10.6500, quartiles -0.4581 / -0.0019 / 0.4553",
    source=Source(STATS, "Attention Embedding Analysis (table, 'Attention Embed + Residual + LayerNorm')"),
    published=PUBLISHED_AFTER_LN, expect=at_most(STAT_TOL),
    tolerance="as B2.attn_out; LayerNorm = the block's ln_2 with its weights (raw) or without (TL-processed)",
)
def test_b2_after_layernorm_stats(one_layer, conventions, measure):
    measure.record(**one_layer_heads.stats_deviation(conventions, "after_ln", PUBLISHED_AFTER_LN))
