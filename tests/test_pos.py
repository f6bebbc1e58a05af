"""TinyStories-1M POS-head claims: tagging and alignment on real sentences, power of the probe /
activity / attention-by-class measurements on a constructed quotation head, the dry run on the
exact-config random checkpoint, and the skip without the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mechcheck import models, organisms, pos_heads, pos_measures, tagging
from mechcheck.claim import claim_of, satisfies
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tinystories_validation
from mechcheck.pos_heads import POSRun

ROOT = Path(__file__).resolve().parent.parent
DRYRUN = ROOT / "reports" / "dryrun"  # the dry runs' reports (timings per claim), kept for reading

import importlib.util  # noqa: E402  (H15 makes claims/ importable through pytest's pythonpath)

_spec = importlib.util.spec_from_file_location("pos_claims", ROOT / "claims" / "test_pos_heads_tinystories_1m.py")
claims = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(claims)
P1, P2, P3 = (claim_of(getattr(claims, n)) for n in (
    "test_p1_quote_key_probe", "test_p2_quote_activity", "test_p3_quote_attention"))


@pytest.fixture(scope="module")
def tok():
    tagging.use_data_dir(data_dir())
    return gpt2_tokenizer(data_dir())


def tagged(tok, text):
    ids, tags = tagging.tokenize_and_tag(tok, text)
    return [(tok.decode([i]), t) for i, t in zip(ids, tags)]


def test_quotes_possessives_and_past_tense(tok):
    pairs = tagged(tok, 'Tom said, "I lost my ball." His mom looked for it.')
    assert (' "', "``") in pairs and ('."', "''") in pairs  # a closing quote merged with "." keeps ''
    assert (" my", "PRP$") in pairs and (" His", "PRP$") in pairs
    assert (" said", "VBD") in pairs and (" looked", "VBD") in pairs and (" ball", "NN") in pairs


def test_multi_token_word_gets_its_tag_on_every_piece(tok):
    pairs = tagged(tok, "Lily saw a rhinoceros.")
    pieces = [p for p in pairs if p[0].strip() and p[0].strip() in "rhinoceros" and p[0] != " a"]
    assert len(pieces) > 1 and {t for _, t in pieces} == {"NN"}
    assert pairs[0][1] == pairs[1][1]  # "L" + "ily": one word, one tag


def test_sentences_are_split_so_periods_are_their_own_words(tok):
    assert tagging.sentence_spans('He ran. "Wait!" she said. ') == [(0, 7), (8, 15), (16, 25)]
    pairs = tagged(tok, "He ran fast. She smiled.")
    assert ("fast", "RB") in [(w.strip(), t) for w, t in pairs] and (".", ".") in pairs


QUOTE_HEAD = (2, 0)


def constructed_quote_model(tok, construct: bool):
    """A 1M-shaped native model (8 layers, d_model 64, 16 heads of 4) on the GPT-2 vocabulary and
    its pattern hook. With `construct`, head L2H0 is a quotation head by construction: embeddings
    mark tokens that start with a quote (dim 1: ' "', '"I', ...) and the other quote tokens (dim 2:
    '."', '!"', ...), its keys read those dims, its values the opening-quote dim, and the hook
    (given the batch's token ids) makes it attend to the last opening quote from inside a
    quotation (BOS elsewhere). Without it, the same random model and no hook: no head tracks quotes."""
    from transformer_lens.config import TransformerBridgeConfig

    cfg = TransformerBridgeConfig(n_layers=8, d_model=64, n_heads=16, d_head=4, d_mlp=256, d_vocab=50257,
                                  n_ctx=256, act_fn="gelu", normalization_type="LNPre", seed=3)
    model = organisms.NativeModel(cfg)
    organisms.initialize_native_model(model, cfg, seed=3)
    quotes = [i for i in range(50257) if '"' in tok.decode([i])]
    opening = tok.encode(' "')[0]
    starts = {i for i in quotes if tok.decode([i]).strip().startswith('"')}  # ' "', '"', '"I' ... open
    if construct:
        with torch.no_grad():
            emb = model.tok_embed.weight
            emb[:, :3] = 0.0
            emb[quotes, 2] = 3.0
            emb[sorted(starts), 2] = 0.0
            emb[sorted(starts), 1] = 3.0
            attn = model.layers[2].attn
            rows = slice(0, 4)  # head 0's slice of the key / value projections
            attn.k.weight[rows] = 0.0
            attn.k.weight[0, 1], attn.k.weight[1, 2] = 3.0, 3.0
            attn.v.weight[rows] = 0.0
            attn.v.weight[0, 1] = 5.0
            attn.o.weight[:, rows] = 0.0
            attn.o.weight[:, 0] = 1.0
    quote_set = set(quotes)

    def pattern_hook(ids):
        def hook(pattern, hook):
            pattern = pattern.clone()
            for b in range(ids.shape[0]):
                open_pos = -1
                for q, t in enumerate(ids[b].tolist()):
                    if t == opening:
                        open_pos = q
                    elif t in quote_set:
                        open_pos = -1
                    pattern[b, 0, q] = 0.0
                    pattern[b, 0, q, open_pos if open_pos >= 0 and open_pos < q else 0] = 1.0
            return pattern
        return hook

    return organisms.bridge(model, tok), pattern_hook if construct else None


def run_of(bridge, pattern_hook, tok, texts) -> POSRun:
    """The control's own forward pass (its hook sees the batch's ids), handed to POSRun through its
    public constructor: the claims' reductions and measurements apply unchanged."""
    tokens, tags = pos_heads.tag_paragraphs(tok, texts)
    L = bridge.cfg.n_layers
    kinds = ("hook_k", "hook_q", "hook_z", "hook_pattern")
    acts = {k: [] for k in kinds}
    for start in range(0, tokens.shape[0], 16):
        ids = tokens[start : start + 16]
        hooks = [(f"blocks.{QUOTE_HEAD[0]}.attn.hook_pattern", pattern_hook(ids))] if pattern_hook else []
        with torch.no_grad(), bridge.hooks(fwd_hooks=hooks):
            _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n.split(".")[-1] in kinds)
        for k in kinds:
            acts[k].append(torch.stack([cache[f"blocks.{l}.attn.{k}"] for l in range(L)]))
    k, q, z, pattern = (torch.cat(acts[k], 1) for k in kinds)
    activity = torch.einsum("lnphe,lhed->lnphd", z, bridge.W_O.detach()).norm(dim=-1)
    return POSRun.from_activations(tokens, tags, k, q, activity, pattern)


@pytest.fixture(scope="module")
def texts():
    return paragraphs(tinystories_validation(data_dir()), must_contain='"', limit=60)


@pytest.fixture(scope="module")
def runs(tok, texts):
    return {c: run_of(*constructed_quote_model(tok, c), tok, texts) for c in (True, False)}


def test_quote_probe_fires_on_the_quotation_head_only(runs):
    for construct, run in runs.items():
        p1 = pos_measures.quote_key_probe(run)
        assert satisfies(P1.expect, p1["value"]) is construct, (construct, p1["value"])
        assert p1["ci"][0] <= p1["value"] <= p1["ci"][1]
        assert not satisfies(P1.expect, pos_measures.quote_key_probe(run, head=(2, 1))["value"])  # does not track quotes
    assert pos_measures.quote_key_probe(runs[True])["shuffled_label_f1"]["``"] < 0.5  # the baseline stays near chance


def test_quote_activity_and_attention_fire_on_the_quotation_head_only(runs):
    for construct, run in runs.items():
        p2, p3 = pos_measures.quote_activity(run), pos_measures.quote_attention(run)
        assert satisfies(P2.expect, p2["value"]) is construct, (construct, p2["value"])
        assert satisfies(P3.expect, p3["value"]) is construct, (construct, p3["value"])
        if construct:  # the location-free form finds it
            assert p3["best_head"] == "L2H0" and p2["best_head"] == "L2H0"


def test_reductions_equal_the_full_patterns(runs, tok, texts):
    """The per-batch reductions (no pattern kept) equal the same statistics read off full patterns."""
    run = runs[True]
    bridge, hook = constructed_quote_model(tok, True)
    tokens, tags = pos_heads.tag_paragraphs(tok, texts[:8])
    with torch.no_grad(), bridge.hooks(fwd_hooks=[(f"blocks.{QUOTE_HEAD[0]}.attn.hook_pattern", hook(tokens))]):
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    pattern = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"] for l in range(8)]).numpy()  # [L, n, H, q, k]
    n, q = np.nonzero(run.in_quote[:8])
    direct = pattern[:, n, :, q, run.opening_of[:8][n, q]].mean(0)
    assert np.allclose(run.attention_to_opening_quote(np.arange(8)), direct, atol=1e-6)


def test_dry_run_on_the_exact_config_checkpoint(tmp_path, run_claims):
    ckpt = models.save_random("roneneldan/TinyStories-1M", tmp_path / "ts1m")
    doc = run_claims("test_pos_heads_tinystories_1m.py", DRYRUN / "pos", "--mc-claims-nonfatal",
                     "--mc-model", f"roneneldan/TinyStories-1M={ckpt}")
    assert len(doc["claims"]) == 9 and {r["status"] for r in doc["claims"]} <= {"pass", "fail"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])
    assert all(r["measured"]["details"]["best_head"].startswith("L") for r in doc["claims"])


def test_claims_skip_with_one_reason_without_the_checkpoint(tmp_path, run_claims):
    doc = run_claims("test_pos_heads_tinystories_1m.py", tmp_path)
    assert {r["status"] for r in doc["claims"]} == {"skip"} and len(doc["claims"]) == 9
    assert {r["message"] for r in doc["claims"]} == {
        "checkpoint roneneldan/TinyStories-1M not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); "
        "provide it with --mc-model roneneldan/TinyStories-1M=/path/to/checkpoint, or run once with internet "
        "to fill the HF cache"}
