"""`mechcheck diff`: regressions (exit 1), improvements, drift beyond tolerance, added/removed."""

from __future__ import annotations

import copy
import json

from mechcheck.diff import compare, main


def _doc():
    rec = lambda nid, status, value: {  # noqa: E731
        "nodeid": nid, "id": nid.upper(), "param": None, "status": status, "message": "",
        "model": {"name": "m"}, "measured": {"value": value, "text": str(value)}}
    return {"claims": [rec("a", "pass", 0.9), rec("b", "fail", 0.1), rec("c", "pass", [1.0, 2.0]), rec("d", "pass", 5.0)]}


def test_compare_classifies_changes():
    base, new = _doc(), _doc()
    new["claims"][0].update(status="fail", measured={"value": 0.2, "text": "0.2"})  # regression + drift
    new["claims"][1].update(status="pass")  # improvement
    new["claims"][2]["measured"]["value"] = [1.0, 2.01]  # within tolerance
    del new["claims"][3]
    out = compare(base, new)
    assert out["regressions"] == ["A: pass -> fail (m)"]
    assert out["improvements"] == ["B: fail -> pass (m)"]
    assert len(out["drifts"]) == 1 and out["drifts"][0].startswith("A: value moved by 0.7")
    assert out["removed"] == ["d"] and out["added"] == []


def test_cli_exit_codes(tmp_path, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_doc()))
    same = tmp_path / "same.json"
    same.write_text(json.dumps(_doc()))
    assert main([str(base), str(same)]) == 0
    worse = copy.deepcopy(_doc())
    worse["claims"][3]["status"] = "error"
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    assert main([str(base), str(tmp_path / "worse.json")]) == 1
    assert "D: pass -> error" in capsys.readouterr().out
    assert main([str(base), str(tmp_path / "missing.json")]) == 2
