"""Claims of the two blog posts on the one-layer TinyStories model:
../shared/seeds/blog-tinystories-1layer-21m-attention.txt ("attention" post: the head table) and
../shared/seeds/blog-tinystories-1layer-21m-attention-and-stats.md ("stats" post: the same table
plus the attention-output statistics).

The posts name roneneldan/TinyStories-Instuct-1Layer-21M (the hub's spelling) but link
roneneldan/TinyStories-1Layer-21M, so every claim runs on both and the report says which
matches. Heads are those of the single layer: H8 = layer 0, head 8.

Role scores (mechcheck.metrics.head_roles) are measured on the post's prompt and on TinyStories
validation paragraphs that contain speech (at most 256 tokens each, so the GPT-Neo attention
window, 256, cannot matter). The posts give no numbers for the roles: a head "attends to" X when
at least 0.3 of its attention goes there on average, and the named heads must lead every other
head by the stated margin.
"""

from __future__ import annotations

import pytest

from mechcheck import one_layer_heads
from mechcheck.claim import NotEncoded, Source, at_most, leads
from mechcheck.data import paragraphs, tinystories_validation
from mechcheck.metrics import activation_stats, head_roles
from mechcheck.one_layer_heads import STAT_TOL

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
def one_layer_model(request, mc_load):
    """The checkpoint with raw HF weights (role scores do not depend on TL's weight processing;
    the statistics claim needs the raw weights to derive every convention)."""
    return mc_load(request.param, compat=False)


@pytest.fixture
def one_layer(one_layer_model, measure):
    """The checkpoint, as the measured model of this claim."""
    measure.model = one_layer_model
    return one_layer_model


@pytest.fixture
def roles(one_layer, mc_data, mc_shared):
    """{input: {role: [n_texts, n_heads]}}: one pass over the prompt and the paragraphs, shared
    by every role claim on this checkpoint."""

    def build():
        texts = paragraphs(tinystories_validation(mc_data), must_contain='"', limit=N_PARAGRAPHS)
        return {
            "prompt": head_roles.role_scores(one_layer.bridge, [PROMPT]),
            "tinystories": head_roles.role_scores(one_layer.bridge, texts, max_tokens=MAX_TOKENS),
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
test_b1_closing_mark = role_claim(
    "B1.closing", "At the closing speech mark head 6 attends to the opening speech mark", "closing_to_opening",
    [6], 0.3, 0.0)
test_b1_pivot_heads = role_claim(
    "B1.pivot", "Heads 1 and 2 attend to the preceding structural pivot (BOS, comma, full stop)",
    "preceding_pivot", [1, 2], 0.3, 0.05)
test_b1_speech_heads = role_claim(
    "B1.speech", "Heads 5 and 11 attend to the opening speech mark from tokens inside speech",
    "opening_speech_mark", [5, 11], 0.3, 0.0, where=f"{TABLE}; Grammatical Heads (Start of Clause)")
test_b1_narrative_head = role_claim(
    "B1.narrative", "Head 14 attends, from speech marks, to BOS, commas and prior proper nouns",
    "narrative_anchors", [14], 0.3, 0.0)


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
