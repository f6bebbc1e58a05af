"""TinyStories-1M POS-head claims: tagging and alignment on real sentences, power of the probe /
activity / attention-by-class measurements on a constructed quotation head, the dry run on the
exact-config random checkpoint, and the skip without the real one."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from mechcheck.models import organisms
from mechcheck.studies import pos_heads
from mechcheck.studies import pos_measures
from mechcheck.data import tagging
from mechcheck.core.claim import claim_of, satisfies, verdict
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tinystories_validation
from mechcheck.studies.pos_heads import POSRun

from claim_runs import ROOT, records_of  # tests/claim_runs.py

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


QUOTE_HEAD = (2, 0)
CLAIMS = {c.id: c for c in (claim_of(getattr(claims, n)) for n in dir(claims) if n.startswith("test_"))}
# Marker dimensions of the constructed models' embeddings: 1/2 opening/other quote tokens, then the
# tokens mostly tagged VBD, CC, MD and noun in the controls' text.
MARK = {"VBD": 3, "CC": 4, "MD": 5, "noun": 6}


def lexicon(tok, texts) -> dict[str, set]:
    """Token ids by their majority tag in `texts` (what a token-level model can know), plus the
    definite article + possessive pronouns and the indefinite article."""
    tokens, tags = pos_heads.tag_paragraphs(tok, texts)
    votes: dict = {}
    for i, t in zip(tokens.numpy().ravel().tolist(), tags.ravel().tolist()):
        if t:
            votes.setdefault(i, {}).setdefault(t, 0)
            votes[i][t] += 1
    major = {i: max(v, key=v.get) for i, v in votes.items()}
    word = lambda i: tok.decode([i]).strip().lower()  # noqa: E731
    out = {k: {i for i, t in major.items() if t == k} for k in ("VBD", "CC", "MD", "PRP$")}
    out["noun"] = {i for i, t in major.items() if t in pos_heads.NOUNS}
    out["definite"] = out.pop("PRP$") | {i for i in major if word(i) == "the"}
    out["indefinite"] = {i for i in major if word(i) in ("a", "an")}
    return out


def _reads(variant):
    """[L, H] key-reading strengths of the VBD, CC and MD markers in a variant: "claimed" has the
    paper's layout (VBD high early and falling, L6H4 the late exception; CC in 24 early heads; MD in
    3 heads), "swapped" the opposite (VBD rising with depth, CC in late heads, MD in 48 heads)."""
    vbd, cc, md = np.zeros((8, 16)), np.zeros((8, 16)), np.zeros((8, 16))
    falling = np.array([3.0, 2.0, 1.2, 0.6, 0.0, 0.0, 0.0, 0.0])[:, None]
    if variant == "claimed":
        vbd[:] = falling
        vbd[6, 4] = 1.5  # weaker than the early heads: not the argmax of all 128
        cc[0:4, 0:6] = 3.0
        md[1, 7] = md[3, 9] = md[6, 2] = 3.0
    elif variant == "swapped":
        vbd[:] = falling[::-1]
        cc[4:8, 0:6] = 3.0
        md[0:6, 8:16] = 3.0
    return {"VBD": vbd, "CC": cc, "MD": md}


def constructed_model(tok, variant, lex):
    """A 1M-shaped native model (8 layers, d_model 64, 16 heads of 4) on the GPT-2 vocabulary and
    the hooks that set some heads' patterns (given the batch's token ids). variant None: the random
    model, no hook. "claimed": the paper's heads by construction: embeddings mark token classes
    (MARK; quote tokens as before), keys read the markers per _reads; L2H0 attends to the last
    opening quote from inside a quotation and to the end mark at the closing quote; L6H4 attends to
    the last past-tense verb; L5H5, from "the"/PRP$, to the last noun (its value reads the noun
    marker: active there). "swapped": the same model with the other readings: L2H0 stays on the
    opening quote at the closing one, L6H4 attends to the last noun, L5H5 is active only on "a"/"an"
    and attends to the paragraph's first noun."""
    from transformer_lens.config import TransformerBridgeConfig

    cfg = TransformerBridgeConfig(n_layers=8, d_model=64, n_heads=16, d_head=4, d_mlp=256, d_vocab=50257,
                                  n_ctx=256, act_fn="gelu", normalization_type="LNPre", seed=3)
    model = organisms.NativeModel(cfg)
    organisms.initialize_native_model(model, cfg, seed=3)
    quotes = [i for i in range(50257) if '"' in tok.decode([i])]
    opening = tok.encode(' "')[0]
    starts = {i for i in quotes if tok.decode([i]).strip().startswith('"')}  # ' "', '"', '"I' ... open
    if variant:
        with torch.no_grad():
            emb = model.tok_embed.weight
            emb[:, :7] = 0.0
            emb[quotes, 2] = 3.0
            emb[sorted(starts), 2] = 0.0
            emb[sorted(starts), 1] = 3.0
            for name, dim in MARK.items():
                emb[sorted(lex[name]), dim] = 3.0
            for l, strength in enumerate(zip(*_reads(variant).values())):
                k = model.layers[l].attn.k.weight
                k[:, 3:7] = 0.0
                for h in range(16):
                    for j, s in enumerate(strength):
                        k[4 * h + j, 3 + j] = s[h]
            attn = model.layers[2].attn
            rows = slice(0, 4)  # head 0's slice of the key / value projections
            attn.k.weight[rows] = 0.0
            attn.k.weight[0, 1], attn.k.weight[1, 2] = 3.0, 3.0
            attn.v.weight[rows] = 0.0
            attn.v.weight[0, 1] = 5.0
            attn.o.weight[:, rows] = 0.0
            attn.o.weight[:, 0] = 1.0
            attn = model.layers[5].attn
            rows = slice(20, 24)  # L5H5: its value reads the noun marker
            attn.v.weight[rows] = 0.0
            attn.v.weight[20, MARK["noun"]] = 5.0
            attn.o.weight[:, rows] = 0.0
            attn.o.weight[:, 20] = 1.0
    quote_set = set(quotes)
    closing_shift = variant == "claimed"

    def quote_targets(row):
        out, open_pos = [], -1
        for q, t in enumerate(row):
            if t == opening:
                open_pos = q
                out.append(0)
            elif t in quote_set:
                out.append(q if closing_shift and t not in starts and open_pos >= 0 else max(open_pos, 0))
                open_pos = -1
            else:
                out.append(open_pos if open_pos >= 0 else 0)
        return out

    def last_of(row, ids, only=None, first=False):
        out, seen = [], []
        for q, t in enumerate(row):
            out.append((seen[0] if first else seen[-1]) if seen and (only is None or t in only) else 0)
            if q >= 1 and t in ids:
                seen.append(q)
        return out

    targets = {
        "claimed": {(2, 0): quote_targets, (6, 4): lambda r: last_of(r, lex["VBD"]),
                    (5, 5): lambda r: last_of(r, lex["noun"], only=lex["definite"])},
        "swapped": {(2, 0): quote_targets, (6, 4): lambda r: last_of(r, lex["noun"]),
                    (5, 5): lambda r: last_of(r, lex["noun"], only=lex["indefinite"], first=True)},
    }.get(variant, {})

    def hooks(ids):
        rows = ids.tolist()

        def hook_for(layer):
            def hook(pattern, hook):
                pattern = pattern.clone()
                for (l, h), target in targets.items():
                    if l != layer:
                        continue
                    for b, row in enumerate(rows):
                        pattern[b, h] = 0.0
                        pattern[b, h, torch.arange(len(row)), torch.tensor(target(row))] = 1.0
                return pattern
            return hook

        return [(f"blocks.{l}.attn.hook_pattern", hook_for(l)) for l in sorted({l for l, _ in targets})]

    return organisms.bridge(model, tok), hooks


class _Read(Exception):
    """Every activation the reductions read is in: stop before the unembedding ([b, pos, 50257])."""


def run_of(bridge, hooks, tok, texts) -> POSRun:
    """The control's own forward pass (its hooks see the batch's ids), handed to POSRun through its
    public constructor: the claims' reductions and measurements apply unchanged."""
    tokens, tags = pos_heads.tag_paragraphs(tok, texts)
    L = bridge.cfg.n_layers
    kinds = ("hook_k", "hook_q", "hook_z", "hook_pattern")
    names = [f"blocks.{l}.attn.{k}" for l in range(L) for k in kinds]
    acts = {k: [] for k in kinds}
    for start in range(0, tokens.shape[0], 16):
        ids, store = tokens[start : start + 16], {}

        def keeper(name):
            def keep(act, hook):
                store[name] = act.detach()
                if len(store) == len(names):
                    raise _Read
            return keep

        try:
            with torch.no_grad():
                bridge.run_with_hooks(ids, fwd_hooks=hooks(ids) + [(n, keeper(n)) for n in names])
        except _Read:
            pass
        for k in kinds:
            acts[k].append(torch.stack([store[f"blocks.{l}.attn.{k}"] for l in range(L)]))
    k, q, z, pattern = (torch.cat(acts[k], 1) for k in kinds)
    activity = torch.einsum("lnphe,lhed->lnphd", z, bridge.W_O.detach()).norm(dim=-1)
    return POSRun.from_activations(tokens, tags, k, q, activity, pattern,
                                   decode=lambda ids: [tok.decode([i]) for i in ids])


@pytest.fixture(scope="module")
def texts():
    """Paragraphs with quotations interleaved with paragraphs with a modal verb (MD is rare: the
    held-out quarter then has enough of both)."""
    text = tinystories_validation(data_dir())
    quoted, modal = paragraphs(text, must_contain='"', limit=40), paragraphs(text, must_contain=" can ", limit=60)
    modal = [p for p in modal if p not in quoted][:40]
    return [p for pair in zip(quoted, modal) for p in pair]


@pytest.fixture(scope="module")
def lex(tok, texts):
    return lexicon(tok, texts)


@pytest.fixture(scope="module")
def runs(tok, texts, lex):
    return {v: run_of(*constructed_model(tok, v, lex), tok, texts) for v in ("claimed", "swapped", None)}


def verdict_of(claim_id, rec) -> str:
    """The claim's verdict on a measurement (three-valued where it carries a CI)."""
    return verdict(CLAIMS[claim_id].expect, rec["value"], rec.get("ci"))


def show(claim_id, variant, rec, *keys):
    print(claim_id, variant, verdict_of(claim_id, rec), rec["value"], rec.get("ci"), {k: rec.get(k) for k in keys})


def test_quote_probe_fires_on_the_quotation_head_only(runs):
    for variant, run in runs.items():
        p1 = pos_measures.quote_key_probe(run)
        assert satisfies(P1.expect, p1["value"]) is bool(variant), (variant, p1["value"])
        assert p1["ci"][0] <= p1["value"] <= p1["ci"][1]
        assert not satisfies(P1.expect, pos_measures.quote_key_probe(run, head=(2, 1))["value"])  # does not track quotes
    assert pos_measures.quote_key_probe(runs["claimed"])["shuffled_label_f1"]["``"] < 0.5  # the baseline stays near chance


def test_quote_activity_and_attention_fire_on_the_quotation_head_only(runs):
    for variant, run in runs.items():
        p2, p3 = pos_measures.quote_activity(run), pos_measures.quote_attention(run)
        assert satisfies(P2.expect, p2["value"]) is bool(variant), (variant, p2["value"])
        assert satisfies(P3.expect, p3["value"]) is bool(variant), (variant, p3["value"])
        if variant:  # the location-free form finds it
            assert p3["best_head"] == "L2H0" and p2["best_head"] == "L2H0"


def test_reductions_equal_the_full_patterns(runs, tok, texts, lex):
    """The per-batch reductions (no pattern kept) equal the same statistics read off full patterns."""
    run = runs["claimed"]
    bridge, hooks = constructed_model(tok, "claimed", lex)
    tokens, tags = pos_heads.tag_paragraphs(tok, texts)
    tokens = tokens[:8]
    with torch.no_grad(), bridge.hooks(fwd_hooks=hooks(tokens)):
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    pattern = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"] for l in range(8)]).numpy()  # [L, n, H, q, k]
    n, q = np.nonzero(run.in_quote[:8])
    direct = pattern[:, n, :, q, run.opening_of[:8][n, q]].mean(0)
    assert np.allclose(run.attention_to_opening_quote(np.arange(8)), direct, atol=1e-6)


def test_p4_exception_of_the_late_layers_and_depth_trend(runs):
    """P4 and P4.trend on the probes: the paper's layout (VBD F1 high early, falling, L6H4 the late
    exception) passes both; the swapped one (rising with depth, L6H4 a plain late head) fails both.
    In the claimed layout L6H4 is not the argmax of all heads: the former reading would fail it."""
    for variant, want in (("claimed", "pass"), ("swapped", "fail")):
        p4 = pos_measures.past_tense_key_probe(runs[variant], floor=0.796 - claims.F1_TOL)
        trend = pos_measures.past_tense_depth_trend(runs[variant])
        show("P4", variant, p4, "L6H4", "late_runner_up", "late_mean_others", "rank_all_heads", "held_out_tokens")
        show("P4.trend", variant, trend, "layer_means")
        assert verdict_of("P4", p4) == want and verdict_of("P4.trend", trend) == want
    assert pos_measures.past_tense_key_probe(runs["claimed"])["rank_all_heads"] > 1


def test_p10_conjunctions_many_early_heads_modals_few(runs):
    """P10.cc passes when 24 early heads read the CC marker and fails when they are late heads;
    P10.md passes with 3 MD-reading heads, fails with 48 and with none (the random model)."""
    for variant, want in (("claimed", "pass"), ("swapped", "fail")):
        cc, md = pos_measures.conjunction_key_probe(runs[variant]), pos_measures.modal_key_probe(runs[variant])
        show("P10.cc", variant, cc, "good_early", "good_late", "held_out_tokens")
        show("P10.md", variant, md, "good", "held_out_tokens")
        assert verdict_of("P10.cc", cc) == want and verdict_of("P10.md", md) == want
    # a tag every head reads ('many', not 'mostly early') fails P10.cc; 20 early + 4 late passes
    everywhere, early = np.ones((8, 16)), np.zeros((8, 16))
    early[:4, :5], early[4, :4] = 1.0, 1.0
    assert pos_measures.many_mostly_early(everywhere, 0.8, 16) < 0 <= pos_measures.many_mostly_early(early, 0.8, 16)
    assert verdict_of("P10.md", pos_measures.modal_key_probe(runs[None])) == "fail"


def test_p3_closing_quote_shift(runs):
    """P3.closing: a quotation head that moves to the end mark at the closing quote passes; one that
    stays on the opening quote fails (both pass P3: inside the quotation they are the same)."""
    for variant, want in (("claimed", "pass"), ("swapped", "fail")):
        rec = pos_measures.quote_closing_shift(runs[variant])
        show("P3.closing", variant, rec, "n", "closing_quote_row")
        assert verdict_of("P3.closing", rec) == want and verdict_of("P3", pos_measures.quote_attention(runs[variant])) == "pass"


def test_p3_closing_is_not_passed_by_a_current_token_head(tok, texts):
    """A head that attends to the current token everywhere attends to the closing quote at the
    closing quote too: P3.closing subtracts its in-quote self-attention and fails it (value 0)."""
    tokens, tags = pos_heads.tag_paragraphs(tok, texts)
    with_quotes = np.nonzero((tags == "''").any(1))[0][:8]
    tokens, tags = tokens[with_quotes], tags[with_quotes]
    L, H, n, P = 8, 16, tokens.shape[0], tokens.shape[1]
    eye = torch.eye(P).expand(L, n, H, P, P).clone()
    zeros = torch.zeros(L, n, P, H, 4)
    run = POSRun.from_activations(tokens, tags, zeros, zeros, torch.ones(L, n, P, H), eye, n_train=4)
    rec = pos_measures.quote_closing_shift(run)
    assert rec["closing_quote_row"]["closing"] == pytest.approx(1.0) and abs(rec["value"]) < 1e-6
    assert verdict_of("P3.closing", rec) == "fail"


def test_p6_two_readings_of_l6h4(runs):
    """P6 (previous past-tense verbs) and P6.nouns (previous nouns) decide opposite ways on a head
    attending to the last VBD and on one attending to the last noun; both use the BOS-and-self
    excluded convention and record the raw one."""
    for variant, vbd_reading in (("claimed", "pass"), ("swapped", "fail")):
        p6, nouns = pos_measures.past_tense_attention(runs[variant]), pos_measures.past_tense_noun_attention(runs[variant])
        show("P6", variant, p6, "included_convention", "n")
        show("P6.nouns", variant, nouns, "included_convention", "vbd_reading", "n")
        assert verdict_of("P6", p6) == vbd_reading and verdict_of("P6.nouns", nouns) != vbd_reading
        assert nouns["vbd_reading"] == p6["value"] and 0 <= p6["included_convention"] <= 1


def test_p8_p9_definite_noun_head(runs):
    """P8, P9, P9.recent and P9.by_tag pass on a head that, from "the"/PRP$, attends to the last
    noun, and fail on one active only on "a"/"an" that attends to the first noun. P8 counts "the",
    not every DT: on the swapped head the every-DT ratio is higher than the definite one."""
    for variant, want in (("claimed", "pass"), ("swapped", "fail")):
        run = runs[variant]
        p8, p9 = pos_measures.definite_noun_activity(run), pos_measures.possessive_noun_attention(run)
        recent, by_tag = pos_measures.recent_noun_attention(run), pos_measures.noun_attended_by(run)
        show("P8", variant, p8, "every_dt_ratio", "n_tokens")
        show("P9", variant, p9, "included_convention", "n")
        show("P9.recent", variant, recent, "n", "chance")
        show("P9.by_tag", variant, by_tag, "bars")
        for cid, rec in (("P8", p8), ("P9", p9), ("P9.recent", recent), ("P9.by_tag", by_tag)):
            assert verdict_of(cid, rec) == want, (cid, variant, rec["value"], rec.get("ci"))
    swapped = pos_measures.definite_noun_activity(runs["swapped"])
    assert swapped["every_dt_ratio"] > swapped["value"]


def test_dry_run_on_the_exact_config_checkpoint(dry_run):
    """Every POS claim runs end to end on the exact-config random TinyStories-1M; values finite,
    each names its best-fitting head. Reads the session's one POS dry run (conftest.dry_run)."""
    doc = dry_run("pos")
    assert len(doc["claims"]) == len(CLAIMS) == 16
    assert {r["status"] for r in doc["claims"]} <= {"pass", "fail", "inconclusive"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])
    assert all(r["measured"]["details"]["best_head"].startswith("L") for r in doc["claims"])


def test_claims_skip_with_one_reason_without_the_checkpoint(claims_run):
    """Without the checkpoint every POS claim skips with one reason naming the fix. Reads the
    session's offline `pytest claims/` run (conftest.claims_run)."""
    doc = {"claims": records_of(claims_run[1], "test_pos_heads_tinystories_1m.py")}
    assert {r["status"] for r in doc["claims"]} == {"skip"} and len(doc["claims"]) == len(CLAIMS)
    assert {r["message"] for r in doc["claims"]} == {
        "checkpoint roneneldan/TinyStories-1M not reachable (HF_HUB_OFFLINE=1 and it is not in the HF cache); "
        "provide it with --mc-model roneneldan/TinyStories-1M=/path/to/checkpoint, or run once with internet "
        "to fill the HF cache"}
