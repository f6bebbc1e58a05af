"""Same seed, same CPU: byte-identical results.json apart from timings; and a parallel run
(pytest-xdist, claims grouped per model) reports exactly what a serial run does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(out: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "claims"), "-q", "-p", "no:cacheprovider",
                           "--mc-report", str(out), *extra], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stdout[-2000:]
    return json.loads((out / "results.json").read_text())


def _without_timing(doc: dict) -> str:
    for r in doc["claims"]:
        r.pop("timing")
    return json.dumps(doc, sort_keys=True)


def test_results_are_byte_identical_apart_from_timings(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    assert a["counts"]["pass"] > 0
    assert _without_timing(a) == _without_timing(b)


def test_parallel_run_reports_what_a_serial_run_does(tmp_path):
    serial = _run(tmp_path / "serial")
    parallel = _run(tmp_path / "parallel", "-n", "2", "--dist", "loadfile")
    assert _without_timing(serial) == _without_timing(parallel)
