"""One-layer TinyStories claims: token classes, role scores with positive and negative controls,
the activation statistics, and the end-to-end dry run on exact-config random checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_one_layer_tinystories as claims  # claims/ is on pytest's pythonpath
import torch

from mechcheck import models, one_layer_heads
from mechcheck.claim import Leads, claim_of, satisfies
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tinystories_validation
from mechcheck.metrics import activation_stats, head_roles

ROOT = Path(__file__).resolve().parent.parent
DRYRUN = ROOT / "reports" / "dryrun"  # the dry runs' reports (timings per claim), kept for reading

PROMPT = claims.PROMPT
ROLE_CLAIMS = {
    name: claim_of(getattr(claims, name)) for name in dir(claims) if name.startswith("test_b1_")
}
ROLE_OF = {"test_b1_current_token_heads": "current_token", "test_b1_head8_most_direct": "current_token",
           "test_b1_previous_token_head": "previous_token", "test_b1_closing_mark": "closing_to_opening",
           "test_b1_pivot_heads": "preceding_pivot", "test_b1_speech_heads": "opening_speech_mark",
           "test_b1_narrative_head": "narrative_anchors"}


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


class ConstructedHeads:
    """A forward hook that gives a one-layer model the roles of the post's table, built from the
    raw string tokens (not from head_roles.classify): the model a positive control needs."""

    def __init__(self, bridge):
        self.bridge = bridge

    def pattern_for(self, str_tokens, n_heads):
        n = len(str_tokens)
        causal = np.tril(np.ones((n, n)))
        pat = np.repeat((causal / causal.sum(1, keepdims=True))[None], n_heads, axis=0)
        eye, prev = np.eye(n), np.eye(n, k=-1)
        prev[0, 0] = 1.0
        quotes = [i for i, t in enumerate(str_tokens) if '"' in t]
        opening = quotes[0::2]
        closing = quotes[1::2]
        pivots = [0] + [i for i, t in enumerate(str_tokens) if i and ("," in t or "." in t)]
        pat[8] = eye
        pat[4] = 0.7 * eye + 0.3 * prev
        pat[6] = prev
        for c, o in zip(closing, opening):
            pat[6, c] = 0.0
            pat[6, c, o] = 1.0
        for h in (1, 2):
            pat[h] = 0.0
            for q in range(n):
                before = [p for p in pivots if p < q] or [0]
                pat[h, q, before[-1]] = 1.0
        for h in (5, 11, 14):
            inside = None
            for q in range(n):
                if q in opening:
                    inside = q
                elif q in closing:
                    inside = None
                if inside is not None and q > inside:
                    pat[h, q] = 0.0
                    pat[h, q, inside] = 1.0
        for q in quotes:  # head 14 from speech marks: BOS and commas and names before
            anchors = [0] + [k for k in range(1, q) if "," in str_tokens[k] or str_tokens[k].strip() in ("Lucy", "Tom")]
            pat[14, q] = 0.0
            pat[14, q, anchors] = 1.0 / len(anchors)
        return torch.tensor(pat, dtype=torch.float32)

    def __enter__(self):
        def hook(pattern, hook):
            ids = self._tokens[0].tolist()
            str_tokens = [self.bridge.tokenizer.decode([i]) for i in ids]
            return self.pattern_for(str_tokens, pattern.shape[1])[None].to(pattern.dtype)

        original = self.bridge.run_with_cache

        def run_with_cache(tokens, **kw):
            self._tokens = tokens
            return original(tokens, **kw)

        self._ctx = self.bridge.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", hook)])
        self._ctx.__enter__()
        self.bridge.run_with_cache = run_with_cache
        return self

    def __exit__(self, *exc):
        del self.bridge.run_with_cache
        return self._ctx.__exit__(*exc)


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
def texts():
    return [PROMPT] + paragraphs(tinystories_validation(data_dir()), must_contain='"', limit=8)


def _holds(claim, value):
    return satisfies(claim.expect, value)


@pytest.mark.filterwarnings("ignore:A hook on .*hook_pattern returned a modified tensor")  # cache-only edit
@pytest.mark.parametrize("claim_name", sorted(ROLE_OF))
def test_role_scores_fire_on_heads_with_the_role_and_not_without(small_one_layer, texts, claim_name):
    claim, role = ROLE_CLAIMS[claim_name], ROLE_OF[claim_name]
    assert isinstance(claim.expect, Leads)
    with ConstructedHeads(small_one_layer):
        with_role = np.nanmean(head_roles.role_scores(small_one_layer, texts)[role], axis=0)
    without = np.nanmean(head_roles.role_scores(small_one_layer, texts)[role], axis=0)
    assert _holds(claim, with_role), (claim.id, with_role)
    assert not _holds(claim, without), (claim.id, without)


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
    assert _holds(b2, one_layer_heads.stats_deviation(conv, "attn_out", own)["value"])
    assert not _holds(b2, one_layer_heads.stats_deviation(conv, "attn_out", claims.PUBLISHED_ATTN_OUT)["value"])


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


def test_dry_run_on_exact_config_checkpoints(tmp_path, run_claims):
    """Every one-layer claim runs end to end on a random checkpoint with the exact config, on
    the real prompt and TinyStories text; values are finite; the claims (rightly) do not hold."""
    ckpt = models.save_random("roneneldan/TinyStories-1Layer-21M", tmp_path / "ts21m")
    doc = run_claims("test_one_layer_tinystories.py", DRYRUN / "one_layer", "--mc-claims-nonfatal",
                     "--mc-model", f"roneneldan/TinyStories-1Layer-21M={ckpt}",
                     "--mc-model", f"roneneldan/TinyStories-Instuct-1Layer-21M={ckpt}")
    ran = [r for r in doc["claims"] if r["status"] != "not-encoded"]
    assert len(ran) == 2 * (7 * 2 + 2)
    assert {r["status"] for r in ran} <= {"pass", "fail"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in ran)
    assert [r["id"] for r in doc["claims"] if r["status"] == "not-encoded"] == ["B3"]


def test_claims_skip_with_one_reason_without_the_checkpoint(tmp_path, run_claims):
    doc = run_claims("test_one_layer_tinystories.py", tmp_path, "-rs")
    skipped = [r for r in doc["claims"] if r["status"] == "skip"]
    assert len(skipped) == 32
    reasons = {r["message"] for r in skipped}
    assert reasons == {
        f"checkpoint {m} not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); provide it with "
        f"--mc-model {m}=/path/to/checkpoint, or run once with internet to fill the HF cache" for m in claims.MODELS}
