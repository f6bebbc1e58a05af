"""`mechcheck diff`: regressions (exit 1), weakenings and claims not run (exit 1 only with
--strict), improvements, drift only when larger than the noise, bad input (exit 2)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mechcheck.report.diff import DiffError, compare, drift, main
from mechcheck.report import SCHEMA
from mechcheck.core.stats import mean_ci


def _rec(nid, status, value, ci=None, **details):
    return {"nodeid": nid, "id": nid.upper(), "param": None, "status": status, "message": "",
            "model": {"name": "m"}, "measured": {"value": value, "text": str(value), "ci": ci, "details": details}}


def _doc(*records):
    records = records or (_rec("a", "pass", 0.9), _rec("b", "fail", 0.1), _rec("c", "pass", [1.0, 2.0]),
                          _rec("d", "pass", 5.0))
    return {"schema": SCHEMA, "run": {"partial": None}, "claims": list(records)}


def test_compare_classifies_changes():
    base, new = _doc(), _doc()
    new["claims"][0].update(status="fail", measured={"value": 0.2, "text": "0.2"})  # regression + drift
    new["claims"][1].update(status="pass")  # improvement
    new["claims"][2]["measured"]["value"] = [1.0, 2.01]  # an exact statistic within tolerance
    del new["claims"][3]
    out = compare(base, new)
    assert out["regressions"] == ["A: pass -> fail (m)"]
    assert out["improvements"] == ["B: fail -> pass (m)"]
    assert len(out["drifts"]) == 1 and out["drifts"][0].startswith("A: value moved by 0.7")
    assert out["not_run"] == ["D: pass in BASE, not run in NEW"] and out["added"] == []


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_exit_codes(tmp_path, capsys):
    base = _write(tmp_path, "base.json", _doc())
    assert main([base, _write(tmp_path, "same.json", _doc())]) == 0
    worse = copy.deepcopy(_doc())
    worse["claims"][3]["status"] = "error"
    assert main([base, _write(tmp_path, "worse.json", worse)]) == 1
    assert "D: pass -> error" in capsys.readouterr().out
    assert main([base, str(tmp_path / "missing.json")]) == 2


def test_inconclusive_is_a_weakening_and_fails_only_with_strict(tmp_path, capsys):
    new = _doc()
    new["claims"][0]["status"] = "inconclusive"
    base, path = _write(tmp_path, "base.json", _doc()), _write(tmp_path, "new.json", new)
    assert compare(_doc(), new)["weakenings"] == ["A: pass -> inconclusive (m)"]
    assert main([base, path]) == 0
    assert main([base, path, "--strict"]) == 1


def test_missing_claims_are_listed_as_not_run_and_fail_with_strict(tmp_path, capsys):
    new = _doc(*_doc()["claims"][:2])
    new["run"]["partial"] = "stopped early (-x)"
    base, path = _write(tmp_path, "base.json", _doc()), _write(tmp_path, "new.json", new)
    assert main([base, path]) == 0
    out = capsys.readouterr().out
    assert "C: pass in BASE, not run in NEW (NEW is a partial run: stopped early (-x))" in out
    assert main([base, path, "--strict"]) == 1


@pytest.mark.parametrize("doc, message", [
    ({}, "not a mechcheck results.json"),
    ([], "not a mechcheck results.json"),
    ({"schema": "mechcheck.results/1", "claims": []}, "schema 'mechcheck.results/1', but this mechcheck reads"),
    ({"schema": SCHEMA, "claims": [{"nodeid": "x", "status": "great"}]}, "unknown status 'great'"),
    ({"schema": SCHEMA, "claims": {}}, "'claims' must be a list"),
])
def test_bad_input_is_refused(doc, message):
    with pytest.raises(DiffError, match=message):
        compare(_doc(), doc)


def _sampled(seed: int, shift: float = 0.0, n: int = 400):
    """A sampled measurement (mean over n items with its bootstrap CI), drawn with `seed`."""
    items = np.random.default_rng(seed).binomial(1, 0.7, n).astype(float)
    value, ci = mean_ci(items)
    return _rec("s", "pass", value + shift, [ci[0] + shift, ci[1] + shift])


def test_two_seeds_of_the_same_run_are_not_flagged():
    for seed in range(1, 8):
        assert drift(_sampled(0), _sampled(seed)) is None, seed


def test_a_planted_change_of_three_cis_is_flagged():
    base = _sampled(0)
    width = base["measured"]["ci"][1] - base["measured"]["ci"][0]
    why = drift(base, _sampled(1, shift=3 * width))
    assert why is not None and "do not overlap" in why


def test_paired_bootstrap_over_shared_items():
    rng = np.random.default_rng(0)
    items = rng.normal(1.0, 0.5, 200)
    same = items + rng.normal(0, 0.01, 200)  # a rerun on the same prompts: tiny numerical noise
    base = _rec("p", "pass", items.mean(), None, per_item=items.tolist())
    assert drift(base, _rec("p", "pass", same.mean(), None, per_item=same.tolist())) is None
    moved = items + 0.05  # small next to the spread, but every prompt moved
    why = drift(base, _rec("p", "pass", moved.mean(), None, per_item=moved.tolist()))
    assert why is not None and "paired-bootstrap" in why


def test_exact_statistics_keep_rtol_atol():
    assert drift(_rec("e", "pass", 10.0), _rec("e", "pass", 10.2)) is None
    assert "exact statistic" in drift(_rec("e", "pass", 10.0), _rec("e", "pass", 11.0))


def _as_record(nid, measured: dict):
    """A record as the plugin writes it from a measurement's dict (value, ci, n, the rest details)."""
    details = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in measured.items()
               if k not in ("value", "ci", "n")}
    return _rec(nid, "pass", measured["value"], list(measured["ci"]), **details)


def test_claims_store_their_prompts_so_a_shift_inside_the_ci_is_seen():
    """The IOI claims record through stats.mean_record, which keeps the per-prompt values: a shift
    of every prompt by a tenth of the CI width overlaps the CIs (not drift by that rule) but the
    paired bootstrap over the shared prompts sees it; the same run twice is not flagged. The
    toy's 5536 sequences exceed PER_ITEM_MAX and keep the CI rule."""
    from mechcheck.core.stats import PER_ITEM_MAX, mean_record

    items = np.random.default_rng(1).normal(2.0, 1.5, 120)  # 120 prompts, like mechcheck.studies.ioi
    base = mean_record(items)
    width = base["ci"][1] - base["ci"][0]
    moved = mean_record(items + 0.1 * width)
    assert len(base["per_item"]) == 120
    why = drift(_as_record("i4", base), _as_record("i4", moved))
    assert why is not None and "paired-bootstrap" in why
    no_items = [{k: v for k, v in m.items() if k != "per_item"} for m in (base, moved)]
    assert drift(_as_record("i4", no_items[0]), _as_record("i4", no_items[1])) is None  # CIs overlap
    assert drift(_as_record("i4", base), _as_record("i4", mean_record(items))) is None
    assert "per_item" not in mean_record(np.zeros(PER_ITEM_MAX + 1))


def test_a_drift_names_a_change_of_processing_state():
    """Same weights, other dtype / TL processing / versions: the drift line names it as the likely cause."""
    model = {"name": "m", "sha256": "a" * 64, "dtype": "float32", "weights_dtype": "bfloat16",
             "processing": {"compatibility_mode": True, "fold_ln": True}, "versions": {"transformers": "5.24.0"}}
    base, new = _doc(_rec("a", "pass", 0.9)), _doc(_rec("a", "pass", 0.5))
    base["claims"][0]["model"] = model
    new["claims"][0]["model"] = {**model, "dtype": "bfloat16", "processing": {"compatibility_mode": True, "fold_ln": False}}
    (line,) = compare(base, new)["drifts"]
    assert line.endswith("; likely cause: processing state changed (dtype float32 -> bfloat16, fold_ln True -> False); "
                         "same weights")
    new["claims"][0]["model"] = {**model, "sha256": "b" * 64}  # only the weights changed: no processing cause
    (line,) = compare(base, new)["drifts"]
    assert "likely cause" not in line
    new["claims"][0]["model"] = {**model, "versions": {"transformers": "5.25.0"}}
    assert compare(base, new)["drifts"][0].endswith("(transformers 5.24.0 -> 5.25.0); same weights")
