"""Every claim's controls, generated from the declarations in claims/ (issue #19): each positive
control must get its expected verdict (PASS on a presence claim), each negative control the other
(FAIL), decided by `mechcheck.testing.verdict_of`, the plugin's own rule, with the claim's own bound
measurement. A claim that declares no positive or no negative control fails, naming the claim; a
measurement that ignores the model makes its claim's controls fail.

Why generated: hand-written control tests retyped the claims' arguments and drifted from them.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from mechcheck import testing
from mechcheck.report import SCHEMA, counts, diff, merge, write
from mechcheck.core.claim import POSITIVE, ClaimError, Measure, at_least, negative, positive
from mechcheck.studies import toy_circuit

pytest_plugins = ["pytester"]  # the README example runs as a user's claim file

ROOT = Path(__file__).resolve().parent.parent
CLAIM_FILES = sorted(p.stem for p in (ROOT / "claims").glob("test_*.py"))

# Claim files whose control models cost minutes each on a cold cache (the IOI thesis': planted 8M and
# GPT-2 small stand-ins over the IOI prompts, patching sweeps; the POS paper's: 1M-shaped constructed
# models over the paper's 631 tagged paragraphs, probes on 128 heads). Their generated control tests
# are `slow` and `controls`: `make test-controls` checks every one of them in one process (about 19
# minutes cold on 2 cores, the GPT-2 patching sweeps' controls a third of it; CI runs it after the slow
# tier); `make test` keeps the toy, organism and blog controls and every check below.
SLOW_CONTROLS = {"test_ioi_tinystories_8m", "test_pos_heads_tinystories_1m"}
_COLD = [pytest.mark.slow, pytest.mark.controls]

CLAIMS = {stem: testing.declared_claims(importlib.import_module(stem)) for stem in CLAIM_FILES}
# One xdist group per claim file: a file's claims share their control models and the preparation
# made of each (the blog's 131 controls read 28 models' role scores); spread over two workers, each
# worker built and scored most of them again (issue #24).
CONTROLS = [pytest.param(c, ctl, id=f"{c.id}-{ctl.name}",
                         marks=[pytest.mark.xdist_group(f"controls-{stem}"), *(_COLD if stem in SLOW_CONTROLS else [])])
            for stem in CLAIM_FILES for c in CLAIMS[stem] for ctl in c.controls]


@pytest.fixture(scope="module")
def runner():
    """Reuses the controls cache the claim runs write (same claim, settings and mechcheck code)."""
    return testing.ControlRunner("reuse")


@pytest.mark.parametrize("claim, control", CONTROLS)
def test_control_decides_as_declared(runner, claim, control):
    result = next(r for r in runner.run(replace(claim, controls=(control,))) if r["name"] == control.name)
    problem = testing.control_problem(claim, result)
    assert problem is None, problem


@pytest.mark.parametrize("stem", CLAIM_FILES)
def test_every_claim_declares_a_positive_and_a_negative_control(stem):
    """A kind of control may be missing only with its reason declared (`missing_control=`): such a claim is
    reported uncalibrated with that reason (test_missing_control_is_reported_uncalibrated)."""
    missing = [f"{c.id}: declares no {kind} control" for c in CLAIMS[stem] if c.missing_control is None
               for kind in c.missing_kinds()]
    assert not missing, f"{stem}: " + "; ".join(missing)


def _constant(run, value):
    """A measurement that ignores the model."""
    return dict(value=value, ci=(value - 0.01, value + 0.01), n=1)


@pytest.mark.parametrize("stem, cid", [("test_toy_reverse_increment", "T1"), ("test_induction_organism", "O1"),
                                       ("test_one_layer_tinystories", "B1.find14"),
                                       ("test_one_layer_tinystories", "B2.attn_out"),
                                       ("test_pos_heads_tinystories_1m", "P1"),
                                       ("test_ioi_tinystories_8m", "I3.8m")])
def test_a_measurement_that_ignores_the_model_fails_its_controls(stem, cid):
    """For one claim of each converted family: a constant measure passes (or fails) everywhere, so
    one of its controls decides the wrong way and the generated test above reports it."""
    claim = next(c for c in CLAIMS[stem] if c.id == cid)
    for value in (0.0, 1.0):
        fake = replace(claim, measure=partial(_constant, value=value))
        results = testing.ControlRunner("run").run(fake)
        problems = [testing.control_problem(fake, r) for r in results]
        assert any(problems), f"{cid}: a constant {value} passed every control"
        assert testing.calibration(fake, results, "run")["state"] == "uncalibrated"


def test_a_claim_without_a_negative_control_is_named(tmp_path):
    claim = next(c for c in CLAIMS["test_toy_reverse_increment"] if c.id == "T1")
    lonely = replace(claim, controls=tuple(ctl for ctl in claim.controls if ctl.kind == POSITIVE))
    assert testing.calibration(lonely, testing.ControlRunner("reuse").run(lonely), "reuse") == {
        "state": "uncalibrated", "reason": "T1: declares no negative control"}


def test_missing_control_is_reported_uncalibrated():
    """A claim that declares why a kind of control is missing (`missing_control=`) is uncalibrated with
    that reason, whatever --mc-controls says: the report never shows it as calibrated or as an old-style
    claim without controls."""
    claim = next(c for c in CLAIMS["test_toy_reverse_increment"] if c.id == "T1")
    bare = replace(claim, controls=(), missing_control="no model carries the mechanism")
    for mode in ("run", "reuse", "skip"):
        assert testing.calibration(bare, [], mode) == {
            "state": "uncalibrated",
            "reason": "T1: declares no positive and no negative control (no model carries the mechanism)"}
    with pytest.raises(ClaimError, match="missing_control= is the reason"):
        replace(claim, missing_control="").validate()


def test_verdict_of_is_the_plugins_decision():
    claim = CLAIMS["test_toy_reverse_increment"][0]
    assert testing.verdict_of(claim, {"value": 1.0, "ci": (0.995, 1.0)}) == "pass"
    assert testing.verdict_of(claim, {"value": 0.5, "ci": (0.4, 0.6)}) == "fail"
    assert testing.verdict_of(claim, {"value": 0.99, "ci": (0.98, 0.999)}) == "inconclusive"
    with pytest.raises(ClaimError, match="not finite"):
        testing.verdict_of(claim, {"value": float("nan")})


def test_the_cache_is_used_and_keyed_by_the_settings(tmp_path):
    """A control is measured once per (claim, bound settings, code): the second runner reads it from
    disk; a different bound setting is another entry; "run" measures again."""
    claim = replace(CLAIMS["test_toy_reverse_increment"][0], controls=(toy_circuit.RANDOM,))
    first = testing.ControlRunner("reuse", tmp_path).run(claim)
    again = testing.ControlRunner("reuse", tmp_path).run(claim)
    assert not first[0]["cached"] and again[0]["cached"]
    assert {k: v for k, v in again[0].items() if k != "cached"} == {k: v for k, v in first[0].items() if k != "cached"}
    other = replace(claim, measure=Measure(partial(toy_circuit.ablation_drop, component="attn.W_O"), on=toy_circuit.ToyRun))
    assert testing.cache_key(other, toy_circuit.RANDOM) != testing.cache_key(claim, toy_circuit.RANDOM)
    assert not testing.ControlRunner("run", tmp_path).run(claim)[0]["cached"]
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_a_control_that_cannot_be_built_is_that_controls_error(tmp_path):
    def broken():
        raise RuntimeError("no such checkpoint")

    claim = replace(CLAIMS["test_toy_reverse_increment"][0],
                    controls=(positive("broken", broken, "a builder that raises"), toy_circuit.RANDOM))
    results = testing.ControlRunner("reuse", tmp_path).run(claim)
    assert results[0]["status"] == "error" and "RuntimeError: no such checkpoint" in results[0]["message"]
    reason = testing.calibration(claim, results, "reuse")["reason"]
    assert reason.startswith("T1: positive control 'broken'") and "\n" not in reason


def test_malformed_controls_are_one_line():
    claim = CLAIMS["test_toy_reverse_increment"][0]
    with pytest.raises(ClaimError, match="controls= takes Control"):
        replace(claim, controls=("random",)).validate()
    with pytest.raises(ClaimError, match="evidence='causal'"):
        replace(claim, evidence="causal").validate()
    with pytest.raises(ClaimError, match="controls need measure="):
        replace(claim, measure=None, controls=(negative("r", toy_circuit.random_weights, "random"),)).validate()
    assert at_least(0.5).three_valued


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split("<!-- example: claim with controls -->\n```python\n", 1)[1]
    return after.split("```", 1)[0]


def test_readme_example(pytester):
    """The README's claim file, run as a user would: its claim and its three controls reach the
    record, each control decided as it must."""
    pytester.makepyfile(test_example=_readme_example())
    result = pytester.runpytest("--mc-report", "rep", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    rec = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"][0]
    assert rec["id"] == "EX1" and rec["status"] == "pass" and rec["evidence"] == "interventional"
    assert rec["calibration"] == {"state": "calibrated", "reason": ""}
    assert [(c["name"], c["kind"], c["status"], c["ok"]) for c in rec["controls"]] == [
        ("trained", "positive", "pass", True), ("random weights", "negative", "fail", True),
        ("attention frozen", "negative", "fail", True)]
    summary = (pytester.path / "rep" / "summary.md").read_text()
    assert "## Why believe a verdict" in summary and "Controls: 0 uncalibrated, 1 calibrated." in summary


def _record(nodeid: str, status: str, value: float, **extra) -> dict:
    return {"nodeid": nodeid, "id": nodeid.split("::")[-1], "param": None, "statement": "s",
            "source": {"document": "d", "where": "w"}, "model": {"name": "m"},
            "expected": {"op": ">=", "text": ">= 0.5", "threshold": 0.5}, "published": None, "tolerance": "",
            "measured": {"value": value, "text": str(value), "ci": None, "n": None, "details": {}},
            "status": status, "message": "", "timing": {"setup_s": 0.0, "call_s": 0.0}, "seed": None, **extra}


def _write(folder: Path, schema: str, *records) -> Path:
    folder.mkdir(parents=True)
    run = {"device": "cpu", "python": "3", "torch": "t", "transformer_lens": "tl", "overrides": {}, "data_dir": None,
           "ioi_names": ["A", "B"], "partial": None}
    doc = {"schema": schema, "run": run, "counts": counts(list(records)), "claims": list(records)}
    (folder / "results.json").write_text(json.dumps(doc))
    return folder


def test_diff_and_merge_read_results_2(tmp_path, capsys):
    """A results/2 report (no controls) is compared with a /3 one, and /2 shards merge into a /3
    report whose controls column says nothing was recorded ('—') and which has no 'Why' section."""
    calibrated = {"controls": [], "calibration": {"state": "no-controls", "reason": "no controls declared"},
                  "detectable_effect": None, "evidence": None, "controls_mode": "reuse"}
    old = _write(tmp_path / "old", "mechcheck.results/2", _record("f::a", "pass", 0.9))
    new = _write(tmp_path / "new", SCHEMA, _record("f::a", "fail", 0.1, **calibrated))
    assert diff.main([str(old), str(new)]) == 1 and "a: pass -> fail" in capsys.readouterr().out
    shard2 = _write(tmp_path / "s2", "mechcheck.results/2", _record("f::b", "pass", 0.8))
    records, run = merge.merge([old, shard2])
    doc = write(tmp_path / "merged", records, run, "now")
    assert doc["schema"] == SCHEMA and doc["calibration"] == dict.fromkeys(doc["calibration"], 0)
    summary = (tmp_path / "merged" / "summary.md").read_text()
    assert "| PASS | — |" in summary and "Why believe a verdict" not in summary
    with pytest.raises(merge.MergeError, match="different schema versions"):
        merge.merge([old, new])
