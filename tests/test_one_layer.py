"""One-layer TinyStories claims: token classes, role scores with positive and negative controls,
the activation statistics, and the end-to-end dry run on exact-config random checkpoints."""

from __future__ import annotations


import numpy as np
import pytest
import test_one_layer_tinystories as claims  # claims/ is on pytest's pythonpath
import torch

from mechcheck import models
from mechcheck.studies import one_layer_heads
from mechcheck.core.claim import claim_of, satisfies
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tinystories_validation
from mechcheck.metrics import activation_stats, head_roles

from claim_runs import records_of  # tests/claim_runs.py

PROMPT = claims.PROMPT
ROLE_CLAIMS = {
    name: claim_of(getattr(claims, name)) for name in dir(claims) if name.startswith("test_b1_")
}



def test_token_classes_on_the_prompt():
    tok = gpt2_tokenizer(data_dir())
    str_tokens = ["<|endoftext|>"] + [tok.decode([i]) for i in tok(PROMPT)["input_ids"]]
    tc = head_roles.classify(str_tokens, has_bos=True)
    name = lambda ps: [str_tokens[p] for p in ps]  # noqa: E731
    assert name(tc.pivots) == ["<|endoftext|>", ",", '".']
    assert name(tc.opening) == [' "', ' "'] and name(tc.closing) == ['".']
    assert tc.opening_of[tc.closing[0]] == tc.opening[0]
    assert name(tc.proper_nouns) == [" Lucy", " Tom", " Tom"]
    assert name(tc.in_speech)[:2] == ["I", " am"] and name(tc.in_speech)[-2:] == ["Don", "'t"]


def constructed_pattern(str_tokens: list[str], n_heads: int) -> np.ndarray:
    """Attention [head, q, k] of a one-layer model with the roles of the post's table, built from
    the raw string tokens (proper nouns excepted, which come from head_roles.classify): the
    model a positive control needs. Heads without a role attend uniformly."""
    n = len(str_tokens)
    causal = np.tril(np.ones((n, n)))
    pat = np.repeat((causal / causal.sum(1, keepdims=True))[None], n_heads, axis=0)
    eye, prev = np.eye(n), np.eye(n, k=-1)
    prev[0, 0] = 1.0
    word = [t.strip() for t in str_tokens]
    quotes = [i for i, t in enumerate(word) if '"' in t]
    opening, closing = quotes[0::2], quotes[1::2]
    inside_of = {}  # in-speech query -> its opening mark
    for o, c in zip(opening, closing + [n]):
        inside_of.update({q: o for q in range(o + 1, c)})
    colon = word.index(":") if ":" in word else 0
    names = head_roles.classify(str_tokens, has_bos=True).proper_nouns

    def point(h, q, keys, weights=None):
        pat[h, q] = 0.0
        pat[h, q, keys] = weights if weights is not None else 1.0 / len(keys)

    pat[8], pat[6], pat[4] = eye, prev, 0.7 * eye + 0.3 * prev
    for c, o in zip(closing, opening):
        point(6, c, [o])
    for h, extra in ((1, "But"), (2, "a")):
        pivots = [0] + [i for i, t in enumerate(word) if i and ("," in t or "." in t or t == extra)]
        for q in range(n):
            point(h, q, [q] if word[q] == "but" else [([p for p in pivots if p < q] or [0])[-1]])
    for q in range(n):
        if q in inside_of:
            point(11, q, [inside_of[q]])
        if 0 < q < colon:
            point(5, q, [0])
        elif closing and q > closing[0]:
            point(5, q, [inside_of[q], closing[0]], [0.7, 0.3]) if q in inside_of else point(5, q, [closing[0]])
        elif q in inside_of:
            point(5, q, [inside_of[q]])
        marks = [k for k in quotes if k < q]
        if marks:
            point(0, q, marks + [q], [0.6 / len(marks)] * len(marks) + [0.4])
        if q in quotes:
            prior = [k for k in names if k < q]
            point(14, q, prior or [0])
        if q in names:
            point(9, q, [k for k in names if k <= q])
        if word[q] == "Tom" and "asks" in word[:q] and "Tom" not in word[:q]:
            point(14, q, [word.index("asks")])
        if word[q] == "find" and "banana" in word[:q]:
            point(14, q, [word.index("banana")])
        if word[q] == "banana":
            point(12, q, [word.index("looking"), word.index("for")])
    return pat


def constructed_roles(bridge, texts):
    """The role scores of the constructed model, through the claims' own input constructor."""
    runs = []
    for text in texts:
        ids = bridge.to_tokens(text)[0, : claims.MAX_TOKENS].tolist()  # the claims' truncation
        str_tokens = [bridge.tokenizer.decode([t]) for t in ids]
        runs.append(head_roles.HeadText.from_activations(str_tokens, constructed_pattern(str_tokens, 16)))
    return head_roles.role_scores_of(runs)


@pytest.fixture(scope="module")
def small_one_layer(tmp_path_factory):
    """A random one-layer GPT-Neo with 16 heads (hidden 64: the roles do not depend on width)."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM
    from transformer_lens.model_bridge import TransformerBridge

    cfg = GPTNeoConfig(**{k: v for k, v in models.spec("roneneldan/TinyStories-1Layer-21M").hf_config.items()
                          if k != "model_type"} | {"hidden_size": 64})
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("one_layer")
    GPTNeoForCausalLM(cfg).save_pretrained(path)
    return TransformerBridge.boot_transformers(str(path), device="cpu", tokenizer=gpt2_tokenizer(data_dir()))


@pytest.fixture(scope="module")
def inputs():
    """The claims' inputs, smaller: the prompt, 8 paragraphs with speech, 8 with 'But'."""
    sample = tinystories_validation(data_dir())
    return {"prompt": [PROMPT], "tinystories": paragraphs(sample, must_contain='"', limit=8),
            "tinystories_But": paragraphs(sample, must_contain="But", limit=8)}


def _verdict(claim, record) -> str:
    """Two-valued on the value; with a CI, pass/fail only when the whole interval agrees."""
    ends = [record["value"]] + list(record.get("ci", ()))
    held = {satisfies(claim.expect, v) for v in ends}
    return "inconclusive" if len(held) == 2 else ("pass" if held == {True} else "fail")


def _measure(claim_fn, roles, source_input):
    """The claim's own measurement function at the claim's own settings."""
    s = claim_fn.settings
    if "minus" in s:
        return one_layer_heads.head_score(roles, source_input, s["role"], s["heads"], s["minus"], s["report"])
    return one_layer_heads.role_leaders(roles, source_input, s["role"], s["heads"])


@pytest.fixture(scope="module")
def control_roles(small_one_layer, inputs):
    """{input: roles} of the constructed model (roles planted) and of the random model (none)."""
    return ({k: constructed_roles(small_one_layer, v) for k, v in inputs.items()},
            {k: head_roles.role_scores(small_one_layer, v, max_tokens=claims.MAX_TOKENS) for k, v in inputs.items()})


@pytest.mark.parametrize("claim_name", sorted(ROLE_CLAIMS))
def test_role_claims_pass_with_the_role_and_fail_without(control_roles, claim_name):
    claim_fn = getattr(claims, claim_name)
    claim = ROLE_CLAIMS[claim_name]
    with_role, without = control_roles
    for source_input in claim_fn.settings["inputs"]:
        planted = _measure(claim_fn, with_role, source_input)
        random = _measure(claim_fn, without, source_input)
        assert _verdict(claim, planted) == "pass", (claim.id, source_input, planted["value"])
        assert _verdict(claim, random) == "fail", (claim.id, source_input, random["value"])


def test_asks14_is_not_passed_by_the_previous_token_head(control_roles):
    """B1.asks14's key (' asks') is the token before its query (' Tom'): the constructed
    previous-token head 6 puts all its attention there, and still fails the claim."""
    claim_fn = claims.test_b1_head14_asks
    with_role, _ = control_roles
    s = claim_fn.settings
    raw = one_layer_heads.head_score(with_role, "prompt", "tom_to_asks", [6], (), ())
    head6 = one_layer_heads.head_score(with_role, "prompt", s["role"], [6], s["minus"], s["report"])
    assert raw["value"] > 0.9 and _verdict(ROLE_CLAIMS["test_b1_head14_asks"], head6) == "fail"


def test_head_text_refuses_a_pattern_of_the_wrong_shape():
    with pytest.raises(ValueError, match="pattern must be"):
        head_roles.HeadText.from_activations(["a", "b"], np.zeros((16, 3, 3)))


def test_statistics_are_exact_and_conventions_differ(small_one_layer):
    x = torch.tensor([[-1.0, 0.0, 1.0, 2.0]])
    s = activation_stats.describe(x)
    assert s["mean"] == 0.5 and s["min"] == -1 and s["max"] == 2 and s["median"] == 0.5
    assert abs(s["std"] - float(np.std([-1, 0, 1, 2], ddof=1))) < 1e-12
    conv = activation_stats.attention_output_conventions(small_one_layer, PROMPT)
    assert set(conv) == {"BOS, raw HF weights", "BOS, TL-processed weights",
                         "no BOS, raw HF weights", "no BOS, TL-processed weights"}
    assert conv["BOS, raw HF weights"]["token_ids"][0] == 50256
    assert conv["no BOS, raw HF weights"]["token_ids"][0] == 3198
    assert abs(conv["BOS, TL-processed weights"]["attn_out"]["mean"]) < 1e-6  # centred writing weights
    # the B2 check passes on the model's own numbers and fails on numbers it does not produce
    b2 = claim_of(claims.test_b2_attention_output_stats)
    own = conv["BOS, raw HF weights"]["attn_out"]
    assert satisfies(b2.expect, one_layer_heads.stats_deviation(conv, "attn_out", own)["value"])
    assert not satisfies(b2.expect, one_layer_heads.stats_deviation(conv, "attn_out", claims.PUBLISHED_ATTN_OUT)["value"])


def test_tl_processed_convention_matches_compatibility_mode(tmp_path):
    """The TL-processed statistics derived from raw weights equal what compatibility mode gives."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM
    from transformer_lens.model_bridge import TransformerBridge

    cfg = GPTNeoConfig(**{k: v for k, v in models.spec("roneneldan/TinyStories-1Layer-21M").hf_config.items()
                          if k != "model_type"} | {"hidden_size": 64})
    torch.manual_seed(1)
    GPTNeoForCausalLM(cfg).save_pretrained(tmp_path)
    tok = gpt2_tokenizer(data_dir())
    raw = TransformerBridge.boot_transformers(str(tmp_path), device="cpu", tokenizer=tok)
    derived = activation_stats.attention_output_conventions(raw, PROMPT)["BOS, TL-processed weights"]
    compat = TransformerBridge.boot_transformers(str(tmp_path), device="cpu", tokenizer=tok)
    compat.enable_compatibility_mode()
    _, cache = compat.run_with_cache(compat.to_tokens(PROMPT))
    direct = activation_stats.describe(cache["blocks.0.hook_attn_out"][0])
    for k in activation_stats.STATS:
        assert abs(derived["attn_out"][k] - direct[k]) < 1e-4, k


def test_dry_run_on_exact_config_checkpoints(dry_run):
    """Every one-layer claim runs end to end on a random checkpoint with the exact config, on
    the real prompt and TinyStories text; values are finite; the claims (rightly) do not hold.
    Reads the session's one one-layer dry run (conftest.dry_run; one stand-in for both models)."""
    doc = dry_run("one_layer")
    ran = [r for r in doc["claims"] if r["status"] != "not-encoded"]
    assert len(ran) == 2 * (5 * 2 + 16 + 2)
    assert {r["status"] for r in ran} <= {"pass", "fail"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in ran)
    assert [r["id"] for r in doc["claims"] if r["status"] == "not-encoded"] == ["B3"]


def test_claims_skip_with_one_reason_without_the_checkpoint(claims_run):
    """Without the checkpoints every one-layer claim skips, naming its model and the fix. Reads
    the session's offline `pytest claims/` run (conftest.claims_run)."""
    doc = {"claims": records_of(claims_run[1], "test_one_layer_tinystories.py")}
    skipped = [r for r in doc["claims"] if r["status"] == "skip"]
    assert len(skipped) == 2 * (5 * 2 + 16 + 2)
    reasons = {r["message"] for r in skipped}
    assert reasons == {
        f"checkpoint {m} not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); provide it with "
        f"--mc-model {m}=/path/to/checkpoint, or run once with internet to fill the HF cache" for m in claims.MODELS}
