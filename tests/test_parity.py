"""`mechcheck parity`: the record-by-record comparison decides each way, and the command runs the
dry run on two devices end to end (cpu vs cpu here: CI has no GPU)."""

from __future__ import annotations

import math

import pytest
import torch

from mechcheck.tools import parity


def rec(nodeid, status, value, ci=None, param=None):
    return {"nodeid": nodeid, "id": nodeid.upper(), "param": param, "status": status,
            "measured": None if value is None else {"value": value, "ci": ci}}


BASE = [rec("p1", "fail", 0.5, ci=[0.4, 0.6]), rec("p4", "pass", [[0.1, 0.2], [0.3, 0.4]]), rec("b1", "skip", None)]


def test_identical_runs_agree():
    rows, ok = parity.compare(BASE, BASE)
    assert ok and [r["rel_diff"] for r in rows] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("changed, agrees", [
    (rec("p1", "fail", 0.5 * (1 + 5e-5), ci=[0.4, 0.6]), True),   # within 1e-4 relative
    (rec("p1", "fail", 0.5 * (1 + 2e-4), ci=[0.4, 0.6]), False),  # beyond it
    (rec("p1", "fail", 0.5, ci=[0.4, 0.61]), False),               # a CI bound moved
    (rec("p1", "error", None), False),                             # an error on one device
    (rec("p1", "pass", 0.5, ci=[0.4, 0.6]), False),                # same value, other status
    (rec("p1", "fail", [0.5, 0.5], ci=[0.4, 0.6]), False),         # another shape
])
def test_a_difference_is_a_mismatch(changed, agrees):
    rows, ok = parity.compare(BASE, [changed] + BASE[1:])
    assert ok is agrees
    row = next(r for r in rows if r["nodeid"] == "p1")
    assert row["ok"] is agrees and row["status_equal"] is (changed["status"] == "fail")


def test_a_record_missing_on_one_side_is_a_mismatch():
    rows, ok = parity.compare(BASE, BASE[:2])
    assert not ok and next(r for r in rows if r["nodeid"] == "b1")["status"] == ("skip", "missing")


def test_near_zero_values_compare_absolutely():
    assert parity._differences(1e-11, 3e-11)[1] < 1e-4 and parity._differences(0.0, 1e-3)[1] == 1.0
    assert parity._differences([1.0, "L2H0"], [1.0, "L2H1"]) == (math.inf, math.inf)


def test_cuda_without_cuda_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parity.main(["--devices", "cpu", "cuda"]) == 2
    assert capsys.readouterr().out == "mechcheck parity: --mc-device cuda: no CUDA device is available here; use --mc-device cpu or auto\n"


def test_cpu_vs_cpu_on_a_subset(tmp_path, capsys, standins):
    """End to end on a cheap subset (a toy claim, and an IOI claim on the TinyStories-1M stand-in:
    I4.1m, about 5 s of claim time a side, where the POS P2 it replaced needed the 35-second POSRun
    on each side; the command, the stand-in overrides and the comparison are the same code); the
    full suite is what `python -m mechcheck parity` runs by default. The stand-in is the session's
    (conftest.standins, also read by the dry runs): parity finds it written and reuses it."""
    standins.args("roneneldan/TinyStories-1M")
    code = parity.main(["--devices", "cpu", "cpu", "--models", "roneneldan/TinyStories-1M", "--standins",
                        str(standins.folder), "--out", str(tmp_path / "parity.md"), "-k", "T1 and seed0 or test_i4_1m",
                        "claims/test_toy_reverse_increment.py", "claims/test_ioi_tinystories_8m.py"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verdict: PARITY" in out and "| T1[seed0] | pass | pass | yes | 0 | 0 | yes |" in out and "| I4.1m |" in out
    assert (tmp_path / "parity.md").read_text() == out


def test_bench_records_memory_and_claim_time_per_family(tmp_path):
    """`mechcheck bench`'s runner: one claims run records its peak memory (the bench module loaded
    as a pytest plugin) and its claim time per claim file."""
    from mechcheck.tools import bench

    seconds, doc, _ = bench.run_suite(["claims/test_toy_reverse_increment.py", "-k", "T1 and seed0",
                                       "--mc-device", "cpu"], tmp_path / "rep")
    assert seconds > 0 and doc["memory"]["peak_rss_mb"] > 100  # torch alone is more
    assert "peak_cuda_mb" not in doc["memory"]  # CPU run
    assert list(bench.family_times(doc["claims"])) == ["toy_reverse_increment"]


def test_bench_cuda_without_cuda_is_one_line(monkeypatch, capsys, tmp_path):
    from mechcheck.tools import bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("MECHCHECK_DATA", str(tmp_path))
    assert bench.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().out == "mechcheck bench: --mc-device cuda: no CUDA device is available here; use --mc-device cpu or auto\n"
