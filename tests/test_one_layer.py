"""One-layer TinyStories claims: token classes and role scores read on the tokens they name, the
activation statistics (exact), and the end-to-end dry run on exact-config random checkpoints. Each
claim's positive and negative controls are declared with the claim and run by tests/test_controls.py."""

from __future__ import annotations


import numpy as np
import pytest
import test_one_layer_tinystories as claims  # claims/ is on pytest's pythonpath
import torch

from mechcheck import models
from mechcheck.studies import one_layer_heads
from mechcheck.data import data_dir, gpt2_tokenizer
from mechcheck.metrics import activation_stats, head_roles

from claim_runs import records_of  # tests/claim_runs.py

PROMPT = claims.PROMPT
CLAIM_TESTS = [name for name in dir(claims) if name.startswith("test_b")]



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


def test_clause_openers_and_new_roles_on_the_prompt():
    """The clause openers of the post's prompt (BOS, the speech marks, ' but'; no comma), and the
    issue #21 roles read exactly the tokens their docstrings name, on the planted pattern."""
    tok = gpt2_tokenizer(data_dir())
    str_tokens = ["<|endoftext|>"] + [tok.decode([i]) for i in tok(PROMPT)["input_ids"]]
    tc = head_roles.classify(str_tokens, has_bos=True)
    assert [str_tokens[p] for p in head_roles.clause_openers(tc)] == ["<|endoftext|>", ' "', " but", '".', ' "']
    pat = one_layer_heads.planted_pattern(str_tokens)
    score = lambda role, h: float(head_roles.ROLES[role](pat, tc)[h])  # noqa: E731
    assert score("self_at_but", 1) == 1.0 and score("pivot_at_but", 1) == 0.0
    # head 9 at the two later names ' Tom': uniform over the names so far (1/2, then 1/3 on itself)
    assert score("self_proper_nouns", 9) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert score("previous_proper_nouns", 9) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert score("previous_proper_nouns", 8) == 0.0 and score("self_proper_nouns", 8) == 1.0
    assert score("I_to_but", 0) == pytest.approx(0.7) and score("asks_attended", 14) > 0.6
    # the key-only reading of 'asks' is not passed by a previous-token head (' asks' is before ' Tom')
    assert score("asks_attended", 6) < 0.05 and score("tom_to_asks", 6) == 1.0
    assert 0.1 <= score("previous_is_top_share", 12) <= 0.5 and score("previous_is_top_share", 6) > 0.9


def test_head_text_refuses_a_pattern_of_the_wrong_shape():
    with pytest.raises(ValueError, match="pattern must be"):
        head_roles.HeadText.from_activations(["a", "b"], np.zeros((16, 3, 3)))


def test_statistics_are_exact_and_conventions_differ():
    small_one_layer = one_layer_heads.random_one_layer()
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
    # the B2 measurement is 0 on the model's own numbers and large on numbers it does not produce
    own = conv["BOS, raw HF weights"]["attn_out"]
    assert one_layer_heads.stats_deviation(conv, "attn_out", own)["value"] == 0.0
    assert one_layer_heads.stats_deviation(conv, "attn_out", claims.PUBLISHED_ATTN_OUT)["value"] > 0.1


@pytest.mark.parametrize("table", ["PUBLISHED_ATTN_OUT", "PUBLISHED_AFTER_LN"])
def test_with_statistics_gives_the_table(table):
    """The planted-table control's numbers have the published statistics exactly (1e-6)."""
    stats = getattr(claims, table)
    x = activation_stats.with_statistics(stats, 31 * 1024, seed=0)
    assert activation_stats.max_abs_deviation(activation_stats.describe(torch.tensor(x)), stats) < 1e-6


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
    assert len(ran) == len(claims.MODELS) * len(CLAIM_TESTS)
    assert {r["status"] for r in ran} <= {"pass", "fail", "inconclusive"}  # a random stand-in may straddle a band
    assert all(r["calibration"]["state"] == "calibrated" for r in ran)  # every record: its controls decided as declared
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in ran)
    assert [r["id"] for r in doc["claims"] if r["status"] == "not-encoded"] == ["B3"]


def test_claims_skip_with_one_reason_without_the_checkpoint(claims_run):
    """Without the checkpoints every one-layer claim skips, naming its model and the fix. Reads
    the session's offline `pytest claims/` run (conftest.claims_run)."""
    doc = {"claims": records_of(claims_run[1], "test_one_layer_tinystories.py")}
    skipped = [r for r in doc["claims"] if r["status"] == "skip"]
    assert len(skipped) == len(claims.MODELS) * len(CLAIM_TESTS)
    reasons = {r["message"] for r in skipped}
    assert reasons == {
        f"checkpoint {m} not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); provide it with "
        f"--mc-model {m}=/path/to/checkpoint, or run once with internet to fill the HF cache" for m in claims.MODELS}
