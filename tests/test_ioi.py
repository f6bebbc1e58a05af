"""IOI thesis measurements: the prompt set, exactness of the logit-lens / DLA / path patching,
bridge-vs-HF parity, the edge measurements on the name-mover organism (the edge claims declare no
controls yet), and the end-to-end dry run on exact-config random checkpoints. Every other claim's
controls are declared beside it and run by tests/test_controls.py."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from mechcheck.studies import induction_organism
from mechcheck.data import ioi_prompts
from mechcheck.studies import ioi
from mechcheck.studies import ioi_circuit, ioi_controls
from mechcheck import testing
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
def name_mover():
    return {"trained": ioi_controls.name_mover(True), "untrained": ioi_controls.name_mover(False)}


def _mover(run):
    """The head with the largest mean DLA."""
    mean = dla.head_dla(run.bridge, run.cache, run.prompts).mean(-1)
    return tuple(int(i) for i in np.unravel_index(int(mean.argmax()), mean.shape)), mean.numpy()


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


N_CLAIMS = 48  # claims in claims/test_ioi_tinystories_8m.py
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
                            "--mc-claims-nonfatal", "--mc-ioi-names", "John,Mary", "-k", "gpt2_sweep", "--mc-controls", "skip",
                            *standins.args("roneneldan/TinyStories-8M", "gpt2", "roneneldan/TinyStories-1M"))
    assert len(doc["claims"]) == GPT2_SWEEPS and {r["status"] for r in doc["claims"]} <= {"pass", "fail", "inconclusive"}
    assert all(np.isfinite(np.asarray(r["measured"]["value"], dtype=float)).all() for r in doc["claims"])


def test_claims_skip_with_one_reason_without_checkpoints(claims_run):
    """Without checkpoints every IOI claim skips, naming the model it could not reach. Reads the
    session's offline `pytest claims/` run (conftest.claims_run), as CI runs it."""
    doc = {"claims": records_of(claims_run[1], "test_ioi_tinystories_8m.py")}
    assert {r["status"] for r in doc["claims"]} == {"skip"} and len(doc["claims"]) == N_CLAIMS
    assert {r["message"].split(" not reachable")[0] for r in doc["claims"]} == {
        "checkpoint roneneldan/TinyStories-8M", "checkpoint gpt2", "checkpoint roneneldan/TinyStories-1M",
        "checkpoint roneneldan/TinyStories-3M"}


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



def test_gave_and_and_positions_are_checked(ts8m_random, tok):
    """The 'gave' / 'and' readers refuse a template without those words there (one ClaimError line)."""
    run = ioi.IOIRun(ts8m_random[1].bridge, ioi_prompts.build(tok, names=("John", "Mary", "Tom")))
    p = run.prompts
    assert all(tok.decode([t]) == " gave" for t in p.tokens[torch.arange(len(p)), p.pos_s2 + 1].tolist())
    other = ioi.IOIRun(run.bridge, ioi_prompts.build(tok, names=("John", "Mary"), templates=(
        "When {IO} and {S1} went to the shops, {S2} took the bag to",)))
    with pytest.raises(ClaimError, match="no 'gave'"):
        ioi_circuit.sends_information(other, [(7, 7)], ["gave<-IO"])
    with pytest.raises(ClaimError, match="no IOI template reads"):
        ioi_circuit.sends_information(other, [(5, 7)], ["and<-S1"])


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


def _claim(cid):
    import test_ioi_tinystories_8m as claims  # claims/ is on pytest's pythonpath
    return next(c for c in testing.declared_claims(claims) if c.id == cid)


def test_edge_measures_on_the_organism(name_mover):
    """I18.gpt2's and I11.v77's edge measures (their controls are stand-ins with built edges) at their
    thresholds on the name-mover organism, whose movers' queries read L0H2: each passes with the
    senders the organism has and fails with others (decided by the plugin's rule, verdict_of)."""
    run = name_mover["trained"]
    strongest, reads = _claim("I18.gpt2"), _claim("I11.v77")
    senders = [f"L0H{h}" for h in range(4)]
    assert testing.verdict_of(strongest, ioi_circuit.strongest_sender(run, [(1, 0), (1, 1)], "q", senders, "L0H2")) == "pass"
    assert testing.verdict_of(strongest, ioi_circuit.strongest_sender(run, [(1, 0), (1, 1)], "q", senders, "L0H1")) == "fail"
    assert testing.verdict_of(reads, ioi_circuit.top_senders(run, (1, 0), "q", ["L0H2", "L0H1"])) == "pass"
    assert testing.verdict_of(reads, ioi_circuit.top_senders(run, (1, 0), "q", ["L0H2", "embed"])) == "fail"
    with pytest.raises(ClaimError, match="do not write into"):
        ioi_circuit.top_senders(run, (1, 0), "v", ["MLP0", "embed"])  # attention-only: no MLP0


def test_no_strong_sender_detects_the_organisms_sender(name_mover):
    """I20's absence measure (its controls are stand-ins with and without a built edge, as a random
    stand-in's recoveries are a ratio of noise) at its threshold on a trained model: the name-mover
    organism, whose movers' queries read L0H2: it finds L0H2 and decides FAIL (a synergizing sender
    is there), with a finite detectable effect."""
    run, absent = name_mover["trained"], _claim("I20")
    mover, _ = _mover(run)
    out = ioi_circuit.no_strong_sender(run, mover, "q", absent.expect.threshold)
    assert out["top_sender"] == "L0H2" and out["value"] > 0.2
    assert testing.verdict_of(absent, out) == "fail"
    assert out["detectable_effect"] is not None and out["detectable_effect"] < out["value"]


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


def test_planted_value_steps_read_the_last_block_as_the_whole_run():
    """planted_value's bisection reads each step's mean from the last block alone
    (ioi_controls._last_layer_run, resumed on the unplanted cache): the same END logits, logit
    difference and probability as the whole planted model it stands for (planted_writers), on the
    8M stand-in at I4.8m's and I12's settings (sharpen 2 and 4)."""
    plain = ioi_controls.stand_in_run(ioi_controls.TS8M)
    last = plain.bridge.cfg.n_layers - 1
    for strength, sharpen in ((3.0, 2.0), (11.5, 4.0)):
        step = ioi_controls._last_layer_run(plain, strength, sharpen)
        whole = ioi_controls.planted_writers.__wrapped__(((last, strength),), sharpen)
        assert torch.equal(step.logits, whole.logits) and torch.equal(step.ld, whole.ld)
        for metric, mean in ioi_controls._MEAN.items():
            assert mean(step) == mean(whole), metric
