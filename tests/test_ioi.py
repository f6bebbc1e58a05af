"""IOI thesis measurements: the prompt set, exactness of the logit-lens / DLA / path patching,
bridge-vs-HF parity, power on model organisms (passes where the mechanism is, fails where it is
not), and the end-to-end dry run on exact-config random checkpoints."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from mechcheck.studies import induction_organism
from mechcheck.data import ioi_prompts
from mechcheck.studies import ioi
from mechcheck.studies import ioi_circuit
from mechcheck import models
from mechcheck.models import organisms
from mechcheck.core.claim import ClaimError, at_least, at_most, leads, rank_at_most
from mechcheck.core.claim import satisfies
from mechcheck.data import data_dir, gpt2_tokenizer
from mechcheck.metrics import ablation, dla, head_scores, logit_diff, path_patching

from claim_runs import DRYRUN, ROOT, claims_subprocess, records_of  # tests/claim_runs.py


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer(data_dir())


def test_prompt_set_enumerates_every_name_pair(tok):
    p = ioi_prompts.build(tok)
    assert len(p) == len(ioi_prompts.TEMPLATES) * 6 * 5 and p.tokens.shape == (120, 15)
    i = p.texts.index(ioi_prompts.CLEAN_EXAMPLE)
    dec = lambda ids: [tok.decode([t]) for t in ids]  # noqa: E731
    words = dec(p.tokens[i])
    assert (words[p.pos_s1[i]], words[p.pos_io[i]], words[p.pos_s2[i]], words[p.pos_end[i]]) == (
        " John", " Mary", " John", " to")
    assert "".join(dec(p.corrupted[i][1:])) == ioi_prompts.CORRUPTED_EXAMPLE
    assert (p.tokens[torch.arange(120), p.pos_io] == p.io).all()
    assert (p.corrupted[torch.arange(120), p.pos_s2] == p.io).all()
    assert torch.equal(ioi_prompts.build(tok).tokens, p.tokens)  # deterministic


def test_prompt_set_refuses_bad_names_and_templates(tok):
    with pytest.raises(ClaimError, match="'Bartholomew' is 3 tokens"):
        ioi_prompts.build(tok, names=("John", "Bartholomew"))
    with pytest.raises(ClaimError, match="different lengths"):
        ioi_prompts.build(tok, templates=ioi_prompts.TEMPLATES[:1] + ("Then {S1} and {IO} met, {S2} gave it to",))


@pytest.fixture(scope="module")
def ts8m_random(tmp_path_factory, tok):
    path = models.save_random("roneneldan/TinyStories-8M", tmp_path_factory.mktemp("ts8m"))
    return path, models.load_hf("roneneldan/TinyStories-8M", path, "cpu", tok)


def test_bridge_matches_hf_beyond_the_local_window(ts8m_random, tok):
    """Parity on 300 tokens (> window 256, so the local-attention layers matter)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    path, _ = ts8m_random
    hf = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    bridge = TransformerBridge.boot_transformers(
        str(path), device="cpu", tokenizer=tok,
        hf_model=AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager"))
    ids = torch.randint(0, 50257, (1, 300), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (hf(ids).logits - bridge(ids)).abs().max().item()
    assert diff < 1e-4, diff


def test_logit_lens_and_path_patching_are_exact(ts8m_random, tok):
    _, loaded = ts8m_random
    b = loaded.bridge
    run = ioi.IOIRun(b, ioi_prompts.build(tok, names=("John", "Mary", "Tom")))
    curve, labels = dla.accumulated(b, run.cache, run.prompts)
    assert labels[0] == "embed" and labels[-1] == "7.5" and curve.shape[0] == 17
    assert torch.allclose(curve[-1] + b.b_U[run.prompts.io] - b.b_U[run.prompts.s], run.ld, atol=1e-4)
    final = path_patching.final_residual(b, run.prompts.tokens)
    assert torch.allclose(run.metric(final), run.ld, atol=1e-4)
    zero = torch.zeros(*run.prompts.tokens.shape, b.cfg.d_model)
    for component in ("q", "v"):
        resid = path_patching.patch_edge(b, run.prompts.corrupted, zero, (5, 7), component)
        assert torch.allclose(run.metric(resid), run.ld_corrupted, atol=1e-4)
    # the full clean-minus-corrupted residual delta into every head of a layer's q, k, v would be
    # clean; one head's q only must move the metric by less than that
    assert run.edges((1, 0), "q").shape == (1, 16, len(run.prompts))


@pytest.fixture(scope="module")
def induction():
    return {n: organisms.bridge(organisms.get(r)) for n, r in
            (("2L", organisms.INDUCTION), ("1L", organisms.INDUCTION_CONTROL))}


def _scores(bridge):
    return induction_organism.scores(bridge)  # {score: [n_layers, batch, n_heads]}


def test_induction_checks_fire_on_the_induction_organism_only(induction):
    """I1's checks: 'no induction heads' (max score <= 0.3) holds on the 1-layer control and fails
    on the 2-layer organism; 'many induction heads' (count >= 0.3) the other way round."""
    two, one = _scores(induction["2L"]), _scores(induction["1L"])
    top, many = ioi_circuit.top_head_score, ioi_circuit.heads_at_least
    assert satisfies(at_most(0.3), top(one, "induction")["value"]) and not satisfies(at_most(0.3), top(two, "induction")["value"])
    assert satisfies(at_least(1), many(two, "induction")["value"]) and not satisfies(at_least(1), many(one, "induction")["value"])
    assert top(two, "induction")["top_head"].startswith("L1")  # the induction heads sit in layer 1
    assert induction_organism.best_in_layer(two, "induction", 1)["value"] > 0.5


def test_previous_token_check_finds_the_layer0_head(induction):
    two, one = _scores(induction["2L"]), _scores(induction["1L"])
    best = ioi_circuit.top_head_score(two, "previous_token")
    assert best["top_head"].startswith("L0")
    head = (0, int(best["top_head"][3:]))
    assert satisfies(leads([head], 0.5, 0.1), ioi_circuit.head_score_map(two, "previous_token", [head])["value"])
    assert not satisfies(at_least(0.5), ioi_circuit.top_head_score(one, "previous_token")["value"])


def test_duplicate_token_check_on_a_constructed_head(induction):
    """A head made to attend exactly to the previous instance of the current token scores as a
    duplicate-token head (I3's check); the same model without the edit does not."""
    b = induction["1L"]
    half = 24
    tokens = head_scores.repeated_random_tokens(16, half, b.cfg.d_vocab, None, seed=0)

    def duplicate(pattern, hook):
        pattern = pattern.clone()
        n = pattern.shape[-1]
        target = torch.zeros(n, n)
        target[torch.arange(n), torch.arange(n)] = 1.0
        target[torch.arange(half, n), torch.arange(0, n - half)] = 1.0
        target[torch.arange(half, n), torch.arange(half, n)] = 0.0
        pattern[:, 2] = target
        return pattern

    with b.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", duplicate)]):
        edited = head_scores.scores(head_scores.patterns(b, tokens), half, offset=0)["duplicate_token"].mean(1)
    plain = head_scores.scores(head_scores.patterns(b, tokens), half, offset=0)["duplicate_token"].mean(1)
    assert satisfies(leads([(0, 2)], 0.5, 0.3), edited.numpy())
    assert not satisfies(leads([(0, 2)], 0.5, 0.3), plain.numpy())


@pytest.fixture(scope="module")
def name_mover():
    tok = organisms.name_mover_tokenizer()
    prompts = ioi_prompts.build(tok, names=organisms.NM_NAMES, templates=organisms.NM_TEMPLATES)
    trained = organisms.bridge(organisms.get(organisms.name_mover_recipe()), tok)
    untrained = organisms.random_bridge(organisms.name_mover_recipe(), tok)
    return {"trained": ioi.IOIRun(trained, prompts), "untrained": ioi.IOIRun(untrained, prompts)}


def _mover(run):
    """The head with the largest mean DLA."""
    mean = dla.head_dla(run.bridge, run.cache, run.prompts).mean(-1)
    return tuple(int(i) for i in np.unravel_index(int(mean.argmax()), mean.shape)), mean.numpy()


def test_ioi_measurements_find_the_name_mover(name_mover):
    run = name_mover["trained"]
    assert satisfies(at_least(2.0), run.ld.mean().item())  # the organism prefers IO
    assert not satisfies(at_least(2.0), name_mover["untrained"].ld.mean().item())
    mover, _ = _mover(run)
    assert mover[0] == 1  # a layer-1 head writes the name
    assert satisfies(leads([mover], 0.2, 0.0), ioi_circuit.dla_share(run, mover)["value"])  # I6's measure
    assert not satisfies(leads([mover], 0.2, 0.0), ioi_circuit.dla_share(name_mover["untrained"], mover)["value"])
    io_over_s = ioi_circuit.attention_io_over_s  # I9's measure
    assert satisfies(at_least(0.4), io_over_s(run, mover)["value"])
    assert not satisfies(at_least(0.4), io_over_s(name_mover["untrained"], mover)["value"])


def test_patching_and_path_patching_find_the_circuit(name_mover):
    run, control = name_mover["trained"], name_mover["untrained"]
    recovery = ioi_circuit.head_patching(run, [])["value"]  # I8's measure
    top = tuple(int(i) for i in np.unravel_index(int(recovery.argmax()), recovery.shape))
    assert top[0] == 0  # the S2-attending layer-0 head matters most when patched
    assert satisfies(leads([top], 0.5, 0.3), recovery)
    assert not satisfies(leads([top], 0.5, 0.3), ioi_circuit.head_patching(control, [])["value"])
    assert satisfies(at_least(0.1), ioi_circuit.attention_s2_over_rest(run, top)["value"])  # I10's measure
    mover, _ = _mover(run)
    edges = ioi_circuit.edge_recovery(run, mover, "q", top)["value"]  # I11's: which head feeds the mover's query
    assert satisfies(rank_at_most(1, top), edges)
    assert edges[top] > 0.2


def test_ablating_the_name_movers_drops_the_logit_difference(name_mover):
    """Positive control: zeroing the name-mover layer's W_O drops the logit difference by > 40%;
    negative control: zeroing the layer-0 head that patching finds least important barely does."""
    run = name_mover["trained"]
    recovery, _ = run.head_patching()
    idle = int(recovery[0].abs().argmin())
    with torch.no_grad():
        ablated = run.bridge.run_with_hooks(run.prompts.tokens, fwd_hooks=[ablation.zero_hook("attn.W_O", 1)])
        other = run.bridge.run_with_hooks(run.prompts.tokens, fwd_hooks=[ablation.zero_hook("attn.W_O", 0, idle)])
    drop = (run.ld.mean() - logit_diff.logit_diff(ablated, run.prompts).mean()).item()
    small = (run.ld.mean() - logit_diff.logit_diff(other, run.prompts).mean()).item()
    assert drop > 0.4 * run.ld.mean().item()
    assert abs(small) < drop / 3


N_CLAIMS = 42  # claims in claims/test_ioi_tinystories_8m.py
GPT2_SWEEPS = 4  # of which GPT-2 patching sweeps (test names with "gpt2_sweep"): minutes each on a CPU stand-in


def test_dry_run_on_exact_config_checkpoints(dry_run):
    """Every IOI claim but the GPT-2 patching sweeps runs end to end on random checkpoints with the
    exact TinyStories-8M and GPT-2 small configs; all values finite (the claims mostly, rightly,
    fail). The sweeps' measurements run here on the 8M stand-in's claims and in the organism tests.
    Reads the session's one IOI dry run (conftest.dry_run: 3 names, `-k "not gpt2_sweep"`)."""
    doc = dry_run("ioi")
    assert len(doc["claims"]) == N_CLAIMS - GPT2_SWEEPS
    assert {r["status"] for r in doc["claims"]} <= {"pass", "fail", "inconclusive"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])


@pytest.mark.slow
def test_dry_run_gpt2_sweeps(standins):
    """The GPT-2 patching sweeps (I16.gpt2, I8.gpt2, I18.gpt2, I8.fewer) end to end on the exact-config GPT-2
    stand-in (2 names, 8 prompts: hundreds of 124M-parameter forwards on CPU)."""
    doc = claims_subprocess([ROOT / "claims" / "test_ioi_tinystories_8m.py"], DRYRUN / "ioi-gpt2-sweeps",
                            "--mc-claims-nonfatal", "--mc-ioi-names", "John,Mary", "-k", "gpt2_sweep",
                            *standins.args("roneneldan/TinyStories-8M", "gpt2", "roneneldan/TinyStories-1M"))
    assert len(doc["claims"]) == GPT2_SWEEPS and {r["status"] for r in doc["claims"]} <= {"pass", "fail", "inconclusive"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])


def test_claims_skip_with_one_reason_without_checkpoints(claims_run):
    """Without checkpoints every IOI claim skips, naming the model it could not reach. Reads the
    session's offline `pytest claims/` run (conftest.claims_run), as CI runs it."""
    doc = {"claims": records_of(claims_run[1], "test_ioi_tinystories_8m.py")}
    assert {r["status"] for r in doc["claims"]} == {"skip"} and len(doc["claims"]) == N_CLAIMS
    assert {r["message"].split(" not reachable")[0] for r in doc["claims"]} == {
        "checkpoint roneneldan/TinyStories-8M", "checkpoint gpt2", "checkpoint roneneldan/TinyStories-1M"}


# ---------------------------------------------------------------- absence claims with power (issue #11 item 2)

def _head(item: str) -> tuple[int, int]:
    layer, head = item[1:].split("H")
    return int(layer), int(head)


def _planted_scores(bridge, head, strength, kind, vocab=None, half=50):
    """head_scores at the claims' settings (16 x [BOS] r r, half 50) with one head planted: its
    second-half attention rows mixed (1-a)*pattern + a*target (the induction target q-half+1 or the
    duplicate-token target q-half). The bridge delegates attention to the HF module, so the edit
    reaches the cached pattern the scores read but not later layers (TL warns so): the check sees
    exactly the planted head, which is what its power is about."""
    def plant(pattern, hook):
        pattern = pattern.clone()
        q = torch.arange(1 + half, pattern.shape[-1])
        k = q - half + (1 if kind == "induction" else 0)
        target = torch.zeros_like(pattern[:, head[1], q])
        target[:, torch.arange(len(q)), k] = 1.0
        pattern[:, head[1], q] = (1 - strength) * pattern[:, head[1], q] + strength * target
        return pattern

    with bridge.hooks(fwd_hooks=[(f"blocks.{head[0]}.attn.hook_pattern", plant)]), \
            pytest.warns(UserWarning, match="edit is discarded"):
        return {k: v.numpy() for k, v in head_scores.head_scores(bridge, vocab=vocab).items()}


@pytest.fixture(scope="module")
def story_vocab(tok):
    from mechcheck.data import tinystories_validation
    return head_scores.corpus_vocab(tok, tinystories_validation(data_dir()), exclude=[tok.bos_token_id])


def test_i1_8m_fails_with_a_planted_induction_head(ts8m_random, story_vocab):
    """I1.8m at its own settings on the 8M stand-in: the unplanted stand-in PASSES (the whole CI of
    the max is below 0.3) in both token forms; an induction head of strength 0.3 planted at the
    weakest head makes it FAIL (the whole CI above), and so does the recorded detectable_effect."""
    b = ts8m_random[1].bridge
    plain = {k: v.numpy() for k, v in head_scores.head_scores(b, vocab=story_vocab).items()}
    thesis_form = {k: v.numpy() for k, v in head_scores.head_scores(b).items()}
    r = ioi_circuit.absent_head_score(plain, "induction", ioi_circuit.INDUCTION_HEAD, thesis_form=thesis_form)
    assert r["ci"][1] <= 0.3 and r["random_tokens_ci"][1] <= 0.3
    assert len(story_vocab) < 10000 and r["detectable_effect"] <= 0.3
    head = _head(r["detectable_effect_head"])
    for strength in (0.3, r["detectable_effect"]):
        planted = _planted_scores(b, head, strength, "induction", story_vocab)
        p = ioi_circuit.absent_head_score(planted, "induction", ioi_circuit.INDUCTION_HEAD)
        assert p["ci"][0] > 0.3 and p["top_head"] == r["detectable_effect_head"], (strength, p["ci"])


def test_i3_8m_weak_fails_with_a_planted_duplicate_head(ts8m_random):
    """I3.8m_weak on the 8M stand-in: passes unplanted; a duplicate-token head planted at the
    recorded detectable_effect (<= 0.5) makes the max-over-heads CI lie wholly above 0.5."""
    b = ts8m_random[1].bridge
    plain = {k: v.numpy() for k, v in head_scores.head_scores(b).items()}
    r = ioi_circuit.absent_head_score(plain, "duplicate_token", 0.5, head=(4, 0))
    assert r["ci"][1] <= 0.5 and r["detectable_effect"] <= 0.5 and "L4H0_ci" in r
    planted = _planted_scores(b, _head(r["detectable_effect_head"]), r["detectable_effect"], "duplicate_token")
    assert ioi_circuit.absent_head_score(planted, "duplicate_token", 0.5)["ci"][0] > 0.5


def test_max_ci_is_simultaneous_over_heads():
    """The CI of the maximum covers the largest head mean and lies above a single head's CI when
    many heads tie (a per-head CI would under-cover the maximum)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.1, 0.05, size=(4, 16, 8))  # [layers, sequences, heads], all heads alike
    lo, hi = ioi_circuit.max_ci(x, axis=1)
    assert lo <= x.mean(1).max() <= hi
    from mechcheck.core.stats import bootstrap_ci
    assert hi > bootstrap_ci(x[0, :, 0])[1]
    mlo, mhi = ioi_circuit.max_ci(x, axis=1, sign=-1.0)
    assert mlo <= x.mean(1).min() <= mhi


def test_i7_8m_fails_with_a_planted_negative_mover(ts8m_random, tok):
    """I7.8m on the 8M stand-in at its settings (the IOI prompts, BOS): passes unplanted; a negative
    mover planted at the least active head (its END output shifted along the IO - S readout by
    -(detectable_effect + 0.1) logits at the unplanted run's final scale, through hook_z, which reaches the
    output) makes the whole CI fall below
    -0.47."""
    from mechcheck.metrics.logit_diff import _at_end, _direction

    b = ts8m_random[1].bridge
    prompts = ioi_prompts.build(tok, names=("John", "Mary", "Tom"))
    run = ioi.IOIRun(b, prompts)
    r = ioi_circuit.no_negative_movers(run, -0.47)
    assert r["ci"][0] >= -0.47 and r["detectable_effect"] is not None and r["detectable_effect"] < 1.0
    layer, head = _head(r["detectable_effect_head"])
    d = _direction(b, run.prompts)
    d = d - d.mean(-1, keepdim=True)
    w = torch.einsum("ed,nd->ne", b.W_O[layer, head], d / _at_end(run.cache["ln_final.hook_scale"], run.prompts))
    # DLA of the shift at the unplanted final scale: -(effect + 0.1); the planted output also
    # enlarges the final LayerNorm scale, which shrinks its realised DLA by a few per cent
    shift = -(r["detectable_effect"] + 0.1) * w / w.pow(2).sum(-1, keepdim=True)

    def plant(z, hook):
        z = z.clone()
        z[torch.arange(len(prompts)), run.prompts.pos_end, head] += shift
        return z

    with b.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", plant)]):
        planted = ioi.IOIRun(b, prompts)
    p = ioi_circuit.no_negative_movers(planted, -0.47)
    assert p["ci"][1] < -0.47 and p["most_negative"] == r["detectable_effect_head"]


def _plant_dla(bridge, run, layer, head, logits):
    """A head whose END output is shifted along the IO - S readout by `logits` (at the unplanted
    run's final LayerNorm scale), through hook_z: the IOIRun of the planted model."""
    from mechcheck.metrics.logit_diff import _at_end, _direction

    d = _direction(bridge, run.prompts)
    d = d - d.mean(-1, keepdim=True)
    w = torch.einsum("ed,nd->ne", bridge.W_O[layer, head], d / _at_end(run.cache["ln_final.hook_scale"], run.prompts))
    shift = logits * w / w.pow(2).sum(-1, keepdim=True)

    seen = [0]  # the cache runs in chunks, clean prompts then corrupted ones (same END positions)

    def plant(z, hook):
        z = z.clone()
        rows = (seen[0] + torch.arange(z.shape[0])) % len(run.prompts)
        z[torch.arange(z.shape[0]), run.prompts.pos_end[rows], head] += shift[rows]
        seen[0] += z.shape[0]
        return z

    with bridge.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", plant)]):
        return ioi.IOIRun(bridge, run.prompts)


def test_i5_8m_fails_with_a_planted_drop(ts8m_random, tok):
    """I5.8m at its own settings (the default 120 prompts, BOS; with 24 prompts the max-over-16-steps
    bound is too wide to pass): the 8M stand-in passes; a head writing -(detectable_effect + 0.1)
    logits at the flattest attention step makes the whole CI of the largest drop exceed 0.1."""
    b = ts8m_random[1].bridge
    run = ioi.IOIRun(b, ioi_prompts.build(tok))
    r = ioi_circuit.never_decreases(run, 0.1)
    assert r["ci"][1] <= 0.1 and r["detectable_effect"] is not None and r["detectable_effect"] < 0.5
    at = r["detectable_effect_at"]
    layer = int(at.split(".")[0])  # an attention step "L" (or the MLP step "L.5": plant in L+1's attention)
    layer = layer if "." not in at else min(layer + 1, b.cfg.n_layers - 1)
    planted = _plant_dla(b, run, layer, 0, -(r["detectable_effect"] + 0.1))
    assert ioi_circuit.never_decreases(planted, 0.1)["ci"][0] > 0.1


def test_layer_share_finds_the_name_mover_layer(name_mover):
    """I13's measure: on the name-mover organism the layer holding the mover (1) writes the majority
    (whole CI above 0.5) and layer 0 does not (whole CI below); the untrained organism has none."""
    run = name_mover["trained"]
    mover, _ = _mover(run)
    right, wrong = ioi_circuit.layer_share(run, mover[0]), ioi_circuit.layer_share(run, 1 - mover[0])
    assert right["ci"][0] > 0.5 and wrong["ci"][1] < 0.5 and right["largest_layer"] == mover[0]
    assert not ioi_circuit.layer_share(name_mover["untrained"], mover[0])["ci"][0] > 0.5


def test_cannot_do_ioi_check_fails_on_a_model_that_can(name_mover):
    """I4.1m's measure (mean logit difference <= 1.0): the untrained name-mover organism passes,
    the trained one (which does IOI) fails with its whole CI above 1.0."""
    low = ioi_circuit.mean_logit_diff(name_mover["untrained"])
    high = ioi_circuit.mean_logit_diff(name_mover["trained"])
    assert low["ci"][1] <= 1.0 and high["ci"][0] > 1.0


def test_s2_to_s1_check_fails_without_a_duplicate_head(ts8m_random, tok):
    """I14's measure on the 8M stand-in at the IOI prompts: H4.0 unplanted fails (whole CI below
    0.1); with its S2 row planted to put 0.5 on S1 (in the cached pattern the check reads) it passes."""
    b = ts8m_random[1].bridge
    prompts = ioi_prompts.build(tok, names=("John", "Mary", "Tom"))
    assert ioi_circuit.attention_s2_to_s1(ioi.IOIRun(b, prompts), (4, 0))["ci"][1] < 0.1
    seen = [0]

    def plant(pattern, hook):
        pattern = pattern.clone()
        rows = (seen[0] + torch.arange(pattern.shape[0])) % len(prompts)
        r = torch.arange(pattern.shape[0])
        s2, s1 = prompts.pos_s2[rows], prompts.pos_s1[rows]
        pattern[r, 0, s2] *= 0.5
        pattern[r, 0, s2, s1] += 0.5
        seen[0] += pattern.shape[0]
        return pattern

    with b.hooks(fwd_hooks=[("blocks.4.attn.hook_pattern", plant)]), pytest.warns(UserWarning):
        planted = ioi.IOIRun(b, prompts)
    assert ioi_circuit.attention_s2_to_s1(planted, (4, 0))["ci"][0] >= 0.1


# ---------------------------------------------------------------- issue #14 item 2 (thesis §3.4.2 / §3.5.1)

@pytest.fixture(scope="module")
def ts8m_run(ts8m_random, tok):
    """The 8M stand-in on the dry run's prompt set (3 names, 24 prompts), shared by the controls."""
    return ioi.IOIRun(ts8m_random[1].bridge, ioi_prompts.build(tok, names=("John", "Mary", "Tom")))


def _verdict(claim_test, result):
    """The claim's own three-valued verdict on a measurement (its expectation, its CI)."""
    from mechcheck.core.claim import claim_of, verdict
    return verdict(claim_of(claim_test).expect, result["value"], result.get("ci"))


@pytest.fixture(scope="module")
def claims_mod():
    import importlib.util
    spec = importlib.util.spec_from_file_location("claims_ioi", ROOT / "claims" / "test_ioi_tinystories_8m.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plant_patterns(bridge, prompts, plants):
    """IOIRun of the bridge with attention rows planted in the cached patterns (the bridge runs
    attention in the HF module, so a pattern edit reaches the cache the attention claims read, not
    later layers): plants = [(layer, head, query_of, key_of, weight)], query_of/key_of(prompts, rows)
    -> positions; the row is scaled by 1 - weight and weight is added at the key. Prompts where
    query_of gives -1 are left alone."""

    def hook_for(layer):
        def plant(pattern, hook):
            pattern = pattern.clone()
            rows = (seen[layer] + torch.arange(pattern.shape[0])) % len(prompts)
            r = torch.arange(pattern.shape[0])
            for l, h, query_of, key_of, w in plants:
                if l != layer:
                    continue
                q, k = query_of(prompts, rows), key_of(prompts, rows)
                ok = q >= 0
                pattern[r[ok], h, q[ok]] *= 1 - w
                pattern[r[ok], h, q[ok], k[ok]] += w
            seen[layer] += pattern.shape[0]
            return pattern
        return plant

    layers = sorted({p[0] for p in plants})
    seen = {layer: 0 for layer in layers}
    with bridge.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", hook_for(layer)) for layer in layers]), \
            pytest.warns(UserWarning):
        return ioi.IOIRun(bridge, prompts)


END = lambda p, rows: p.pos_end[rows]  # noqa: E731
GAVE = lambda p, rows: p.pos_s2[rows] + 1  # noqa: E731
S1 = lambda p, rows: p.pos_s1[rows]  # noqa: E731
S2 = lambda p, rows: p.pos_s2[rows]  # noqa: E731
IO = lambda p, rows: p.pos_io[rows]  # noqa: E731
AND_AFTER_S1 = lambda p, rows: torch.where(p.pos_s1[rows] < p.pos_io[rows], p.pos_s1[rows] + 1, -1)  # noqa: E731


@pytest.fixture(scope="module")
def ts8m_planted(ts8m_random, ts8m_run):
    """The 8M stand-in with the thesis' attention patterns planted: H7.7 gave->IO 0.6 and END->IO
    0.6 (fig 3.17), H5.7 END->S2, gave->S2 and and->S1 0.5 (figs 3.18/3.19), H6.11 END->IO 0.3 and
    END->S2 0.3 (fig 3.21), H4.0 END->S1 0.8 (a pattern unlike H7.7's)."""
    return _plant_patterns(ts8m_random[1].bridge, ts8m_run.prompts, [
        (7, 7, GAVE, IO, 0.6), (7, 7, END, IO, 0.6), (5, 7, END, S2, 0.5), (5, 7, GAVE, S2, 0.5),
        (5, 7, AND_AFTER_S1, S1, 0.5), (6, 11, END, IO, 0.3), (6, 11, END, S2, 0.3), (4, 0, END, S1, 0.8)])


def test_attention_claims_pass_on_planted_heads_and_fail_on_the_stand_in(claims_mod, ts8m_run, ts8m_planted):
    """I9.gave, I10.gave, I10.and, I19, I19.both at their settings on the 8M stand-in (IOI prompts,
    BOS): each passes on the planted pattern and fails on the unplanted stand-in; I19.both fails on
    H7.7 (END->IO only), I9.gave on H5.7 (gave->S2), I10.gave on H7.7 (gave->IO)."""
    c = claims_mod
    cases = [  # (claim test, measurement on a run)
        (c.test_i9_h7_7_moves_io_into_gave, lambda run: ioi_circuit.gave_attention(run, (7, 7), "IO")),
        (c.test_i10_h5_7_sends_s2_to_gave, lambda run: ioi_circuit.gave_attention(run, (5, 7), "S2")),
        (c.test_i10_h5_7_sends_s1_to_and, lambda run: ioi_circuit.and_attention(run, (5, 7))),
        (c.test_i19_h6_11_is_a_name_mover, lambda run: ioi_circuit.end_attention_to_names(run, (6, 11))),
        (c.test_i19_h6_11_moves_both_names, lambda run: ioi_circuit.end_attention_both(run, (6, 11))),
    ]
    for claim_test, measure in cases:
        assert _verdict(claim_test, measure(ts8m_planted)) == "pass", claim_test.__name__
        assert _verdict(claim_test, measure(ts8m_run)) == "fail", claim_test.__name__
    assert _verdict(c.test_i19_h6_11_moves_both_names, ioi_circuit.end_attention_both(ts8m_planted, (7, 7))) == "fail"
    assert _verdict(c.test_i9_h7_7_moves_io_into_gave, ioi_circuit.gave_attention(ts8m_planted, (5, 7), "IO")) == "fail"
    assert _verdict(c.test_i10_h5_7_sends_s2_to_gave, ioi_circuit.gave_attention(ts8m_planted, (7, 7), "S2")) == "fail"
    # a previous-token head (0.9 on the token before, at every position) puts 0.9 on S2 from 'gave' and on S1
    # from 'and': the baseline makes both claims fail on it
    n_pos = int(ts8m_run.prompts.pos_end.max()) + 1
    prev = _plant_patterns(ts8m_run.bridge, ts8m_run.prompts, [
        (3, 3, (lambda p, rows, q=q: torch.where(p.pos_end[rows] >= q, q, -1)),
         (lambda p, rows, q=q: torch.full_like(rows, q - 1)), 0.9) for q in range(1, n_pos)])
    assert ioi_circuit.gave_attention(prev, (3, 3), "S2")["mean_gave_to_S2"] > 0.85
    assert _verdict(c.test_i10_h5_7_sends_s2_to_gave, ioi_circuit.gave_attention(prev, (3, 3), "S2")) == "fail"
    assert _verdict(c.test_i10_h5_7_sends_s1_to_and, ioi_circuit.and_attention(prev, (3, 3))) == "fail"
    # I18.gpt2_pattern (H8.6's END->S2, gave->S2, and->S1), head-generic: the planted H5.7 has all three
    pattern = c.test_i18_gpt2_h8_6_pattern
    assert _verdict(pattern, ioi_circuit.s_inhibition_pattern(ts8m_planted, (5, 7))) == "pass"
    assert _verdict(pattern, ioi_circuit.s_inhibition_pattern(ts8m_run, (5, 7))) == "fail"
    assert _verdict(pattern, ioi_circuit.s_inhibition_pattern(ts8m_planted, (7, 7))) == "fail"
    # I9.like_gpt2 (correlation of END rows, same prompts): the planted H7.7 against itself passes; against
    # H4.0 (END->S1) and against the unplanted H7.7 it fails; two unplanted (near-uniform) heads fail
    like = c.test_i9_h7_7_like_gpt2_name_movers
    sim = ioi_circuit.pattern_similarity
    assert _verdict(like, sim(ts8m_planted, (7, 7), ts8m_planted, [(7, 7), (7, 7)])) == "pass"
    assert _verdict(like, sim(ts8m_planted, (7, 7), ts8m_planted, [(7, 7), (4, 0)])) == "fail"
    assert _verdict(like, sim(ts8m_planted, (7, 7), ts8m_run, [(7, 7)])) == "fail"
    assert _verdict(like, sim(ts8m_run, (7, 7), ts8m_run, [(6, 3), (5, 1)])) == "fail"


def test_gave_and_and_positions_are_checked(ts8m_run, tok):
    """The 'gave' / 'and' readers refuse a template without those words there (one ClaimError line)."""
    run = ts8m_run
    p = run.prompts
    assert all(tok.decode([t]) == " gave" for t in p.tokens[torch.arange(len(p)), p.pos_s2 + 1].tolist())
    other = ioi.IOIRun(run.bridge, ioi_prompts.build(tok, names=("John", "Mary"), templates=(
        "When {IO} and {S1} went to the shops, {S2} took the bag to",)))
    with pytest.raises(ClaimError, match="no 'gave'"):
        ioi_circuit.gave_attention(other, (7, 7), "IO")
    with pytest.raises(ClaimError, match="no IOI template reads"):
        ioi_circuit.and_attention(other, (5, 7))


def test_io_over_s_for_two_heads_on_the_organism(claims_mod, name_mover):
    """I9.gpt2's measure (the smaller of two heads' END->IO minus END->S) at its threshold 0.4:
    the organism's two layer-1 movers pass, a mover paired with its weakest layer-1 head fails,
    and the untrained organism fails."""
    run = name_mover["trained"]
    claim = claims_mod.test_i9_gpt2_name_movers_attend_io
    f = ioi_circuit.attention_io_over_s_heads
    assert _verdict(claim, f(run, [(1, 0), (1, 1)])) == "pass"
    assert _verdict(claim, f(run, [(1, 0), (1, 3)])) == "fail"
    assert _verdict(claim, f(name_mover["untrained"], [(1, 0), (1, 1)])) == "fail"


def test_dla_claims_on_planted_movers(claims_mod, ts8m_random, ts8m_run):
    """I6.gpt2 (top-head DLA share of model a minus model b >= 0.2) and I17.gpt2 (the named heads
    are the top ones by DLA) on the 8M stand-in: with movers planted (+3, +2.5, +2 logits at END)
    the planted run is concentrated against the unplanted one (pass), not the other way round or
    against itself (fail); the planted heads lead the DLA (pass), unplanted heads do not (fail)."""
    b = ts8m_random[1].bridge
    planted = _plant_dlas(b, ts8m_run, [(5, 3, 3.0), (6, 2, 2.5), (7, 1, 2.0)])
    gap = ioi_circuit.dla_concentration_gap
    claim = claims_mod.test_i6_gpt2_dla_more_distributed
    assert _verdict(claim, gap(planted, ts8m_run, ["planted", "plain"])) == "pass"
    assert _verdict(claim, gap(ts8m_run, planted, ["plain", "planted"])) == "fail"
    assert _verdict(claim, gap(ts8m_run, ts8m_run, ["plain", "plain"])) == "fail"
    top = claims_mod.test_i17_gpt2_name_movers_lead_dla
    heads = [(5, 3), (6, 2), (7, 1)]
    assert _verdict(top, ioi_circuit.top_positive_dla(planted, heads)) == "pass"
    assert _verdict(top, ioi_circuit.top_positive_dla(ts8m_run, heads)) == "fail"
    assert _verdict(top, ioi_circuit.top_positive_dla(planted, [(5, 3), (6, 2), (7, 2)])) == "fail"


def _plant_dlas(bridge, run, plants):
    """_plant_dla for several heads at once: plants = [(layer, head, logits)]."""
    from mechcheck.metrics.logit_diff import _at_end, _direction

    d = _direction(bridge, run.prompts)
    d = d - d.mean(-1, keepdim=True)
    scale = _at_end(run.cache["ln_final.hook_scale"], run.prompts)
    hooks, seen = [], {}
    for layer, head, logits in plants:
        w = torch.einsum("ed,nd->ne", bridge.W_O[layer, head], d / scale)
        shift = logits * w / w.pow(2).sum(-1, keepdim=True)
        seen[(layer, head)] = 0

        def plant(z, hook, layer=layer, head=head, shift=shift):
            z = z.clone()
            rows = (seen[(layer, head)] + torch.arange(z.shape[0])) % len(run.prompts)
            z[torch.arange(z.shape[0]), run.prompts.pos_end[rows], head] += shift[rows]
            seen[(layer, head)] += z.shape[0]
            return z

        hooks.append((f"blocks.{layer}.attn.hook_z", plant))
    with bridge.hooks(fwd_hooks=hooks):
        return ioi.IOIRun(bridge, run.prompts)


def test_batched_sweeps_equal_one_patch_per_forward(name_mover):
    """Head patching and sender path patching batch several patches into one forward; the numbers
    equal one forward per patch (patch_head_output, patch_edge)."""
    run = name_mover["trained"]
    _, values = run.head_patching()
    for layer, head in ((0, 2), (1, 3)):
        one = run.metric(path_patching.patch_head_output(run.bridge, run.prompts.corrupted, run.cache, layer, head))
        assert torch.allclose(one, values[layer, head], atol=1e-5)
    senders = run.senders([(1, 0)], "q")
    assert list(senders) == ["embed", "L0H0", "L0H1", "L0H2", "L0H3"]
    delta = path_patching.sender_delta(run.bridge, run.cache, run.corrupted_cache, 0, 2)
    one = run.metric(path_patching.patch_edge(run.bridge, run.prompts.corrupted, delta, (1, 0), "q"))
    clean, corrupt = run.ld.mean(), run.ld_corrupted.mean()
    assert torch.allclose((one - corrupt) / (clean - corrupt), senders["L0H2"], atol=1e-5)
    assert torch.allclose(run.edges((1, 0), "q")[0, 2], senders["L0H2"], atol=1e-5)


def test_patching_claims_on_the_organism(claims_mod, name_mover):
    """I8.gpt2, I18.gpt2, I11.v77, I8.fewer and I19.weaker's measures at their thresholds on the name-mover
    organism (IOI prompts, its two layers), where patching finds the layer-0 S2 head L0H2 and the
    layer-1 movers: each passes with the heads the organism has and fails with others."""
    c, run = claims_mod, name_mover["trained"]
    top5 = c.test_i8_gpt2_sweep_head_patching
    assert _verdict(top5, ioi_circuit.patching_top_k(run, [(0, 2), (1, 0)], 5)) == "pass"
    assert _verdict(top5, ioi_circuit.patching_top_k(run, [(0, 0), (0, 3)], 5)) == "fail"
    assert _verdict(top5, ioi_circuit.patching_top_k(name_mover["untrained"], [(0, 2), (1, 0)], 5)) != "pass"
    strongest = c.test_i18_gpt2_sweep_h8_6_strongest_s_inhibition
    senders = [f"L0H{h}" for h in range(4)]
    assert _verdict(strongest, ioi_circuit.strongest_sender(run, [(1, 0), (1, 1)], "q", senders, "L0H2")) == "pass"
    assert _verdict(strongest, ioi_circuit.strongest_sender(run, [(1, 0), (1, 1)], "q", senders, "L0H1")) == "fail"
    reads = c.test_i11_h7_7_value_reads_mlp0_and_embed  # the organism's movers read L0H2 (and L0H1) in their query
    assert _verdict(reads, ioi_circuit.top_senders(run, (1, 0), "q", ["L0H2", "L0H1"])) == "pass"
    assert _verdict(reads, ioi_circuit.top_senders(run, (1, 0), "q", ["L0H2", "embed"])) == "fail"
    with pytest.raises(ClaimError, match="do not write into"):
        ioi_circuit.top_senders(run, (1, 0), "v", ["MLP0", "embed"])  # attention-only: no MLP0
    fewer = c.test_i8_fewer_heads_gpt2_sweep  # the organism with three of its used heads ablated uses fewer
    ablated = _ablated_run(run, [(0, 1), (1, 2), (1, 3)])
    assert _verdict(fewer, ioi_circuit.fewer_heads(ablated, run, ["ablated", "organism"])) == "pass"
    assert _verdict(fewer, ioi_circuit.fewer_heads(run, ablated, ["organism", "ablated"])) == "fail"
    assert _verdict(fewer, ioi_circuit.fewer_heads(run, run, ["organism", "organism"])) == "fail"
    weaker = c.test_i19_h6_11_weaker_than_h7_7
    assert _verdict(weaker, ioi_circuit.weaker_mover(run, (1, 1), (0, 2))) == "pass"
    assert _verdict(weaker, ioi_circuit.weaker_mover(run, (0, 2), (0, 2))) == "fail"
    assert _verdict(weaker, ioi_circuit.weaker_mover(run, (0, 0), (0, 2))) == "fail"


def _ablated_run(run, heads):
    """The run's model with the heads' outputs zeroed (hook_z), and its head patching, as an IOIRun."""
    def zero(layer):
        def hook(z, hook):  # one hook per layer (in compatibility mode hook.name may be an alias)
            z = z.clone()
            for h in [h for l, h in heads if l == layer]:
                z[:, :, h] = 0.0
            return z
        return hook

    layers = sorted({layer for layer, _ in heads})
    with run.bridge.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero(layer)) for layer in layers]):
        ablated = ioi.IOIRun(run.bridge, run.prompts)
        ablated.head_patching()
    return ablated


def test_resid_patching_is_exact_and_finds_the_hand_over(name_mover):
    """Residual patching (figs 3.11/3.12): patching S2 entering layer 0 is the whole clean run
    (recovery 1 per prompt); on the organism the layer-0 head hands S2's information to END, so
    the hand-over layer is 1 and END entering layer 1 recovers everything."""
    run = name_mover["trained"]
    labels, rec = run.resid_patching()
    assert labels[0] == "S2" and labels[-1] == "END"
    clean, corrupt = run.ld.mean(), run.ld_corrupted.mean()
    assert torch.allclose(rec[0, 0], (run.ld - corrupt) / (clean - corrupt), atol=1e-4)
    # END entering layer 0 holds nothing of S2: patching it leaves the corrupted run
    assert torch.allclose(rec[0, -1], (run.ld_corrupted - corrupt) / (clean - corrupt), atol=1e-4)
    r = ioi_circuit.resid_handover(run)
    assert r["value"] == 1.0 and r["ci"] == (1.0, 1.0) and r["END_curve"][1] > 0.9


def _plant_s2_reader(bridge, plain, layer, logits=20.0):
    """An IOIRun (and its residual patching) of the bridge with a planted reader in `layer`: END
    gets the S2 residual's clean-vs-corrupted component (entering the MLP of `layer`) written along
    the IO - S readout, so S2's information reaches END exactly at `layer` + 1."""
    from mechcheck.metrics.logit_diff import _direction

    p, n = plain.prompts, len(plain.prompts)
    s2, end = int(p.pos_s2[0]), int(p.pos_end[0])
    assert (p.pos_s2 == s2).all() and (p.pos_end == end).all()
    v = _direction(bridge, p)
    v = v / v.norm(dim=-1, keepdim=True)
    name = f"blocks.{layer}.hook_resid_mid"
    r = plain.cache[name][:, s2] - plain.corrupted_cache[name][:, s2]
    mid = 0.5 * ((plain.cache[name][:, s2] + plain.corrupted_cache[name][:, s2]) * r).sum(-1)

    def plant(x, hook):
        i = torch.arange(x.shape[0]) % n  # every batch here is a multiple of the n prompts
        a = ((x[:, s2] * r[i]).sum(-1) - mid[i]) / r[i].pow(2).sum(-1)  # +0.5 clean S2, -0.5 corrupted
        x = x.clone()
        x[:, end] = x[:, end] + logits * a[:, None] * v[i]
        return x

    with bridge.hooks(fwd_hooks=[(name, plant)]):
        run = ioi.IOIRun(bridge, p)
        run.resid_patching()
    return run


def test_i16_hand_over_layer_on_planted_readers(claims_mod, ts8m_random, tok):
    """I16.8m at its threshold (hand-over layer >= 4) on the 8M stand-in (2 names, 8 prompts, to
    keep 2 x 8 patched forwards cheap): a planted S2 reader in layer 5 hands over at layer 6 (pass),
    one in layer 1 at layer 2 (fail)."""
    b = ts8m_random[1].bridge
    plain = ioi.IOIRun(b, ioi_prompts.build(tok, names=("John", "Mary")))
    claim = claims_mod.test_i16_8m_s2_to_end_late
    late, early = _plant_s2_reader(b, plain, 5), _plant_s2_reader(b, plain, 1)
    r_late, r_early = ioi_circuit.resid_handover(late), ioi_circuit.resid_handover(early)
    assert r_late["value"] == 6.0 and _verdict(claim, r_late) == "pass"
    assert r_early["value"] == 2.0 and _verdict(claim, r_early) == "fail"
    nothing = _plant_s2_reader(b, plain, 5, logits=0.0)  # the reader wired in with no strength: S2 unused
    assert _verdict(claim, ioi_circuit.resid_handover(nothing)) != "pass"
