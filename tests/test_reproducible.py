"""Same seed, same CPU: byte-identical results.json apart from timings; and a parallel run
(pytest-xdist, one worker per claim file) reports exactly what a serial run does. Both compare
against the session's serial offline `pytest claims/` run (conftest.claims_run: the toy claims on
the shipped seeds, O1/O2 over the organism's shipped series, every hub-model claim's skip), so
each test starts one more run, not two."""

from __future__ import annotations

import json

from claim_runs import CLAIMS_RUN_ARGS, ROOT, claims_subprocess  # tests/claim_runs.py


def _without_timing(doc: dict) -> str:
    for r in doc["claims"]:
        r.pop("timing")
    return json.dumps(doc, sort_keys=True)


def _again(folder, *extra: str) -> dict:
    """The shared run's command once more (same arguments), plus `extra`."""
    return claims_subprocess([ROOT / "claims"], folder, *CLAIMS_RUN_ARGS, *extra)


def test_results_are_byte_identical_apart_from_timings(claims_run, tmp_path):
    """A second serial run in a fresh Python writes the same results.json as the first, apart
    from timings."""
    a, b = json.loads(json.dumps(claims_run[1])), _again(tmp_path / "b")
    assert a["counts"]["pass"] > 0
    assert _without_timing(a) == _without_timing(b)


def test_parallel_run_reports_what_a_serial_run_does(claims_run, tmp_path):
    """-n 2 --dist loadfile reports exactly what the serial run does, apart from timings."""
    serial = json.loads(json.dumps(claims_run[1]))
    parallel = _again(tmp_path / "parallel", "-n", "2", "--dist", "loadfile")
    assert _without_timing(serial) == _without_timing(parallel)
