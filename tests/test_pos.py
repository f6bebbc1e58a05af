"""TinyStories-1M POS-head claims: tagging and alignment on real sentences, the reductions against
full patterns, the measurements' statistics, the dry run on the exact-config random checkpoint
(with every claim's controls in its record), and the skip without the real one. The controls
themselves (the constructed heads of mechcheck.studies.pos_constructed) are declared in the claims
and run by tests/test_controls.py."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from mechcheck import models, testing
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tagging, tinystories_validation
from mechcheck.studies import pos_constructed, pos_measures
from mechcheck.studies.pos_heads import PaperText

from claim_runs import ROOT, records_of  # tests/claim_runs.py

import test_pos_heads_tinystories_1m as claims  # noqa: E402  (claims/ is on pytest's pythonpath)

CLAIMS = {c.id: c for c in testing.declared_claims(claims)}


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


def test_tagging_is_cached_by_text_and_tagger(tok, tmp_path, monkeypatch):
    """A second call reads the cache (no tagging); a changed text misses it; the cached tags are
    the tagger's; the entry is named by the text's sha256 under a tagger-keyed folder."""
    import hashlib

    monkeypatch.setenv("MECHCHECK_CACHE", str(tmp_path))
    text, changed = 'Tom said, "I lost my ball." His mom looked.', 'Tom said, "I lost my bat." His mom looked.'
    fresh = tagging.tag_words(text, cache=False)
    assert tagging.tag_words(text) == fresh
    path = tagging.cache_path(text)
    assert path.exists() and path.name == hashlib.sha256(text.encode()).hexdigest() + ".json"
    assert path.parent.parent.parent == tmp_path and path.parent.parent.name.startswith("tags-")
    assert not list(path.parent.glob("*.tmp*"))  # written atomically: no temp file left behind

    calls = []
    real = tagging._tag_words_uncached
    monkeypatch.setattr(tagging, "_tag_words_uncached", lambda *a: calls.append(a[0]) or real(*a))
    assert tagging.tag_words(text) == fresh and calls == []  # read from the cache
    assert tagging.tag_words(changed) == tagging.tag_words(changed, cache=False) and calls == [changed, changed]
    assert tagging.cache_path(changed) != path

    path.write_text("not json")  # a damaged entry is tagged again, not trusted
    assert tagging.tag_words(text) == fresh and calls[-1] == text


def test_tagger_is_loaded_once_and_tags_like_pos_tag(tok):
    """tag_words reuses one PerceptronTagger (nltk.pos_tag loads one per call) and tags as pos_tag."""
    from nltk import pos_tag
    from nltk.tokenize import TreebankWordTokenizer

    text = paragraphs(tinystories_validation(data_dir()), limit=3)[2]
    assert tagging._tagger()[0] is tagging._tagger()[0]
    tb, expect = TreebankWordTokenizer(), []
    for a, b in tagging.sentence_spans(text):
        spans = list(tb.span_tokenize(text[a:b]))
        expect += [(a + s, a + e, t) for (s, e), (_, t) in zip(spans, pos_tag(tb.tokenize(text[a:b])))]
    assert tagging.tag_words(text, cache=False) == expect


def test_reductions_equal_the_full_patterns(tok):
    """The per-batch reductions (no pattern kept) equal the same statistics read off full patterns,
    on the constructed quotation head of the controls (mechcheck.studies.pos_constructed)."""
    text = PaperText(n_train=8, min_held_out=1, held_out_tags=("``",))  # a few paragraphs with a quotation
    bridge = pos_constructed.constructed("paper", text)
    run = text(bridge)
    tokens = run.tokens[:8]
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    pattern = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"] for l in range(8)]).numpy()  # [L, n, H, q, k]
    n, q = np.nonzero(run.in_quote[:8])
    assert len(n) > 0
    direct = pattern[:, n, :, q, run.opening_of[:8][n, q]].mean(0)
    assert np.allclose(run.attention_to_opening_quote(np.arange(8)), direct, atol=1e-6)
    assert direct[2, 0] == pytest.approx(1.0)  # the built-in quotation head: every in-quote token on its opening quote


def test_many_mostly_early_has_two_parts():
    """P10.cc's statistic: a tag every head reads ('many', not 'mostly early') fails it; 20 early +
    4 late heads pass."""
    everywhere, early = np.ones((8, 16)), np.zeros((8, 16))
    early[:4, :5], early[4, :4] = 1.0, 1.0
    assert pos_measures.many_mostly_early(everywhere, 0.8, 16) < 0 <= pos_measures.many_mostly_early(early, 0.8, 16)


def test_early_best_heads_reads_each_layer():
    """P4.early's statistic: the mean over the early layers of each layer's best head."""
    f1 = np.zeros((8, 16))
    f1[0, 3], f1[1, 0], f1[2, 9], f1[3, 15], f1[6, 4] = 0.9, 0.8, 0.7, 0.6, 1.0
    assert pos_measures.early_best_heads(f1, pos_measures.EARLY) == pytest.approx(0.75)


def test_measurements_bind_every_setting():
    """No measurement of the paper has a default a claim could retype: each claim binds its settings."""
    for claim in CLAIMS.values():
        fn = claim.measure.fn
        bound = set(fn.keywords)
        params = inspect.signature(fn.func).parameters
        unbound = [n for n, p in params.items() if n != "run" and n not in bound]
        assert not unbound, f"{claim.id}: {fn.func.__name__} leaves {unbound} unbound"
        assert all(params[n].default is inspect.Parameter.empty for n in bound), claim.id
        assert claim.measure.on is claims.TEXT


def test_published_f1_values_have_one_provenance():
    """P1, P4, P7 (and P4.early, calibrated by P4's value) cite the authors' released probe-result
    tables in the claim and in the inventory alike (issue #21)."""
    for cid in ("P1", "P4", "P7", "P4.early"):
        assert "released probe-result tables" in CLAIMS[cid].source.where, cid
    inventory = tomllib.loads((ROOT / "claims" / "inventory" / "paper-interpreting-tiny-transformers-1M.toml").read_text())
    notes = {e["id"]: e.get("note", "") for e in inventory["statement"]}
    citing = {i for i, note in notes.items() if any(v in note for v in ("0.997", "0.942", "0.796", "0.812"))}
    assert {"paper-10", "paper-16", "paper-17", "paper-22"} <= citing
    for i in citing:
        assert "released probe-result tables" in notes[i], i


def test_dry_run_on_the_exact_config_checkpoint(dry_run):
    """Every POS claim runs end to end on the exact-config random TinyStories-1M; values finite,
    each names its best-fitting head. Reads the session's one POS dry run (conftest.dry_run, with
    --mc-controls skip)."""
    doc = dry_run("pos")
    assert len(doc["claims"]) == len(CLAIMS) == 17
    assert {r["status"] for r in doc["claims"]} <= {"pass", "fail", "inconclusive"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])
    assert all(r["measured"]["details"]["best_head"].startswith("L") for r in doc["claims"])
    # the dry run skips the controls (minutes each cold): every record says so, with its evidence rung; each
    # control is run and decided by tests/test_controls.py's generated tests in the slow tier (SLOW_CONTROLS)
    for r in doc["claims"]:
        assert r["evidence"] == "observational" and r["calibration"]["state"] == "skipped", (r["id"], r["calibration"])


def test_claims_skip_with_one_reason_without_the_checkpoint(claims_run):
    """Without the checkpoint every POS claim skips with one reason naming the fix. Reads the
    session's offline `pytest claims/` run (conftest.claims_run)."""
    doc = {"claims": records_of(claims_run[1], "test_pos_heads_tinystories_1m.py")}
    assert {r["status"] for r in doc["claims"]} == {"skip"} and len(doc["claims"]) == len(CLAIMS)
    assert {r["message"] for r in doc["claims"]} == {
        "checkpoint roneneldan/TinyStories-1M not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); "
        "provide it with --mc-model roneneldan/TinyStories-1M=/path/to/checkpoint, or run once with internet "
        "to fill the HF cache"}
