"""Model organisms: the shipped checkpoints match their sha256, the quote organism's head is found
by the POS measurements (and nothing fires on a random model of the same shape), the claims run
over the induction checkpoint series and the report shows the phase change, `mechcheck diff`
flags the induction claim between two series checkpoints, and (slow) retraining reproduces every
mechanism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mechcheck.models import checkpoints
from mechcheck.models import organisms
from mechcheck.data import tagging
from mechcheck.data import data_dir, paragraphs, tinystories_validation
from mechcheck.metrics import head_scores
from mechcheck.core.claim import ClaimError
from mechcheck.metrics import path_patching
from mechcheck.studies import induction_organism
from mechcheck.studies.pos_heads import POSRun, best_head

from claim_runs import records_of  # tests/claim_runs.py

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_organisms_match_their_sha256():
    shipped = sorted(organisms.SHIPPED_DIR.rglob("*.safetensors"))
    assert len(shipped) >= 4 + len(organisms.series())
    for path in shipped:
        assert json.loads(path.with_suffix(".json").read_text())["sha256"] == checkpoints.sha256(path), path


def _quote_runs():
    tagging.use_data_dir(data_dir())
    tok, _ = organisms.quote_corpus(data_dir())
    recipe = organisms.quote_recipe(tok)
    trained = organisms.bridge(organisms.get(recipe), tok)
    texts = paragraphs(tinystories_validation(data_dir()), must_contain='"', limit=60)
    return POSRun(trained, texts), POSRun(organisms.random_bridge(recipe, tok), texts)


def test_pos_measurements_find_the_quote_head_of_the_trained_organism():
    trained, untrained = _quote_runs()
    att = trained.attention_to_opening_quote()
    layer, head = (int(i) for i in np.unravel_index(np.nanargmax(att), att.shape))
    assert att[layer, head] >= 0.15  # uniform attention over ~30 earlier tokens would be ~0.03
    assert np.nanmax(untrained.attention_to_opening_quote()) < 0.1
    assert best_head(att) == f"L{layer}H{head}"
    ratio = trained.activity_ratio(trained.in_quote)
    assert ratio[layer, head] > np.nanmedian(untrained.activity_ratio(untrained.in_quote))


def test_claims_over_the_checkpoint_series_show_the_phase_change(claims_run):
    """O1/O2 without --mc-series run over the organism's shipped series: a record per step, the
    induction head forms (fail at step 0, pass at the last step), the summary's series section,
    and the headline counting only each claim's last checkpoint. Reads the session's offline
    `pytest claims/` run (conftest.claims_run), whose other records are not series records."""
    folder, run = claims_run
    doc = {"claims": records_of(run, "test_induction_organism.py")}
    steps = [r for r in doc["claims"] if r["id"] == "O1"]
    assert len(steps) == len(organisms.series()) >= 5
    by_step = {r["step"]: r["status"] for r in steps}  # the shipped series is a mechcheck.pytest_plugin.series case
    assert [r["param"] for r in steps] == [f"step{s:04d}" for s in sorted(by_step)]
    assert by_step[0] == "fail" and by_step[max(by_step)] == "pass"  # the induction head forms
    summary = (folder / "summary.md").read_text()
    assert "## Checkpoint series: O1 on mechcheck/induction-organism" in summary
    assert "Holds first at step" in summary and "| step | measured | CI | status |" in summary
    assert "Never flips" not in summary and "Flips at step" not in summary  # the old table is gone
    others = [r for r in run["claims"] if r not in doc["claims"]]
    assert all(r.get("step") is None for r in others)
    assert sum(run["counts"].values()) == len(others) + 4  # headline: each claim's last checkpoint, O1.phase once
    phase = [r for r in doc["claims"] if r["id"] == "O1.phase"]
    assert len(phase) == 1 and phase[0]["param"] is None and phase[0]["status"] == "pass"
    assert phase[0]["measured"]["details"]["steps"] == sorted(by_step)
    kcomp = {r["step"]: r["status"] for r in doc["claims"] if r["id"] == "O2.kcomp"}
    assert kcomp[0] == "fail" and kcomp[max(kcomp)] == "pass"


def test_diff_between_two_series_checkpoints_flags_the_induction_claim(tmp_path, run_claims):
    series = dict(organisms.series())
    args = ("--mc-claims-nonfatal", "--mc-model")
    late = run_claims("test_induction_organism.py", tmp_path / "late", *args, f"mechcheck/induction-organism={series[max(series)]}")
    early = run_claims("test_induction_organism.py", tmp_path / "early", *args, f"mechcheck/induction-organism={series[0]}")
    assert {r["id"]: r["status"] for r in late["claims"]}["O1"] == "pass"
    assert {r["id"]: r["status"] for r in early["claims"]}["O1"] == "fail"
    out = subprocess.run([sys.executable, "-m", "mechcheck", "diff", str(tmp_path / "late"), str(tmp_path / "early")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "O1[checkpoint]: pass -> fail" in out.stdout


def test_an_empty_series_folder_is_one_error_per_claim(tmp_path):
    """--mc-model DIR goes through mechcheck.pytest_plugin.series.discover: a folder without checkpoints gives each
    claim one error record naming the folder, never an empty run or a traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "claims" / "test_induction_organism.py"), "-q",
                          "--mc-model", f"mechcheck/induction-organism={empty}", "--mc-report", str(tmp_path / "rep")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "Traceback" not in out.stdout
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert sorted((r["id"], r["status"]) for r in doc["claims"]) == [
        ("O1", "error"), ("O1.phase", "error"), ("O2", "error"), ("O2.kcomp", "error")]
    assert all(f"series {empty}: no checkpoints" in r["message"] and "\n" not in r["message"] for r in doc["claims"])


def _rise(kind: str, steps: np.ndarray) -> np.ndarray:
    """[checkpoints, 16 sequences, 1 head] induction scores rising from 0.03 to 0.7."""
    t = (steps - steps[0]) / (steps[-1] - steps[0])
    slope = 2 * np.log(9) * 16  # logistic: its 10%-90% rise spans 1/16 of training
    frac = {"logistic": 1 / (1 + np.exp(-(t - 0.5) * slope)), "linear": t, "flat": 0 * t}[kind]
    return np.repeat((0.03 + 0.67 * frac)[:, None, None], 16, 1)


@pytest.mark.parametrize("kind, verdict", [("logistic", True), ("linear", False), ("flat", False)])
def test_best_window_times_an_abrupt_rise_only(kind, verdict):
    """O1.phase's rule on synthetic series of 9 checkpoints: a logistic rise (10-90% in 1/16 of training) puts
    nearly all of it in a quarter; a linear one 25%; a flat one has not formed (0)."""
    steps = np.arange(0, 2001, 250)
    share, t0, t1 = induction_organism.best_window(steps, _rise(kind, steps))
    assert (share >= 0.8) is verdict
    if kind == "linear":
        assert share == pytest.approx(0.25) and t1 - t0 == 500
    if kind == "flat":
        assert share == 0.0


def test_a_series_too_coarse_to_time_is_one_error():
    steps = np.array([0, 1000, 2000])
    per = [(int(s), x) for s, x in zip(steps, _rise("logistic", steps))]
    with pytest.raises(ClaimError, match="series too coarse to time a phase change"):
        induction_organism.phase_change(per)


def test_key_patching_with_no_change_is_the_clean_pattern():
    """patched_pattern recomputes the receiver's keys from resid_pre through ln1 (exact on the organism):
    a zero delta gives the clean pattern, for keys, queries and values alike."""
    bridge = organisms.bridge(organisms.get(organisms.INDUCTION))
    tokens = head_scores.repeated_random_tokens(4, 24, bridge.cfg.d_vocab, None)
    clean = head_scores.patterns(bridge, tokens)[1][:, 2]
    for component in ("k", "q", "v"):
        got = path_patching.patched_pattern(bridge, tokens, torch.zeros(1, 1, bridge.cfg.d_model), (1, 2), component)
        assert torch.allclose(got, clean, atol=1e-5), component
    with pytest.raises(ValueError, match="'q', 'k' or 'v'"):
        path_patching.patch_edge(bridge, tokens, 0.0, (1, 2), "z")


def test_k_composition_needs_two_layers():
    one = organisms.bridge(organisms.get(organisms.INDUCTION_CONTROL))
    with pytest.raises(ClaimError, match="needs a layer-0 and a layer-1"):
        induction_organism.k_composition(one)


def test_k_composition_removes_the_score_through_the_keys_only():
    """O2.kcomp's details on the shipped organism: the key-path ablation removes the induction score,
    the query path does not, the value path cannot change a pattern."""
    got = induction_organism.k_composition(induction_organism.trained(2))
    d = got.details
    assert d["s_clean"] >= 0.3 > d["s_k"] and d["s_q"] >= 0.3
    assert d["s_v"] == pytest.approx(d["s_clean"], abs=1e-5)


@pytest.mark.slow
def test_retraining_reproduces_every_mechanism():
    two = head_scores.head_scores(organisms.bridge(organisms.train(organisms.INDUCTION)[0]), batch=16, half=24)
    one = head_scores.head_scores(organisms.bridge(organisms.train(organisms.INDUCTION_CONTROL)[0]), batch=16, half=24)
    assert two["induction"].mean(1)[1].max() >= 0.3 and one["induction"].mean(1).max() < 0.3
    assert two["previous_token"].mean(1)[0].max() >= 0.5
    from mechcheck.data import ioi_prompts
    from mechcheck.studies import ioi
    from mechcheck.metrics.logit_diff import logit_diff

    tok = organisms.name_mover_tokenizer()
    model, _ = organisms.train(organisms.name_mover_recipe())
    prompts = ioi_prompts.build(tok, names=organisms.NM_NAMES, templates=organisms.NM_TEMPLATES)
    run = ioi.IOIRun(organisms.bridge(model, tok), prompts)
    assert logit_diff(run.logits, run.prompts).mean() > 2.0


@pytest.mark.slow
def test_retraining_the_quote_organism_grows_a_quote_head():
    tok, _ = organisms.quote_corpus(data_dir())
    tagging.use_data_dir(data_dir())
    model, _ = organisms.train(organisms.quote_recipe(tok))
    texts = paragraphs(tinystories_validation(data_dir()), must_contain='"', limit=60)
    att = POSRun(organisms.bridge(model, tok), texts).attention_to_opening_quote()
    assert np.nanmax(att) >= 0.15
