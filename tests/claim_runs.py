"""Claims runs in a fresh Python, shared by tests (imported by name: tests/ is on sys.path).

Why shared: a claims run in a subprocess costs about 10 s of CPU before its first claim (Python,
torch, TransformerLens), and the dry run of a claim file on the stand-ins costs minutes, so each
run that several tests read is made once per session (tests/conftest.py's fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock  # torch's own dependency

ROOT = Path(__file__).resolve().parent.parent
DRYRUN = ROOT / "reports" / "dryrun"  # the dry runs' reports (timings per claim), kept for reading

# The dry run of each stand-in claim file: (claim file, hub models it needs, extra arguments).
# IOI: 3 names (24 prompts) and without the four GPT-2 patching sweeps (slow: test_ioi.py).
# IOI and POS: --mc-controls skip, their controls cost minutes each cold and are checked one by one
# by tests/test_controls.py's generated tests in `make test-controls` (SLOW_CONTROLS; CI runs it).
DRY_RUNS = {
    "ioi": ("test_ioi_tinystories_8m.py", ("roneneldan/TinyStories-8M", "gpt2", "roneneldan/TinyStories-1M",
                                          "roneneldan/TinyStories-3M"),
            ("--mc-ioi-names", "John,Mary,Tom", "-k", "not gpt2_sweep", "--mc-controls", "skip")),
    "pos": ("test_pos_heads_tinystories_1m.py", ("roneneldan/TinyStories-1M",), ("--mc-controls", "skip")),
    "one_layer": ("test_one_layer_tinystories.py", ("roneneldan/TinyStories-1Layer-21M",), ()),
}

# `pytest claims/` as the shared offline run makes it (conftest.claims_run)
CLAIMS_RUN_ARGS = ("-p", "no:randomly", "--mc-claims-nonfatal")


def claims_subprocess(paths, report: Path, *args: str, ok=(0,)) -> dict:
    """results.json of `pytest <paths> --mc-report report args` in a fresh Python (as a user runs
    it), from the repository root; its exit status must be in `ok`."""
    report = Path(report)
    out = subprocess.run([sys.executable, "-m", "pytest", *map(str, paths), "-q", "-p", "no:cacheprovider",
                          "--mc-report", str(report), *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode in ok, out.stdout[-3000:] + out.stderr[-1000:]
    return json.loads((report / "results.json").read_text())


def records_of(doc: dict, claim_file: str) -> list[dict]:
    """The records of one claim file in a report of several."""
    return [r for r in doc["claims"] if r["nodeid"].startswith(f"claims/{claim_file}::")]


def session_root(tmp_path_factory) -> Path:
    """The temporary folder every process of this test session shares: under xdist each worker's
    base folder is popen-gwN inside the session's, so the parent; outside xdist the base itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(folder: Path, make) -> Path:
    """`folder`, filled by make(folder) in whichever worker of the session asks first; the others
    wait on the lock and read the same folder (issue #24: a shared run used to keep every test that
    reads it on one xdist worker, which then ran them all in a row). Done only when make returned:
    a run that failed is made again, and fails again, in the next worker that asks."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder.with_name(folder.name + ".done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            make(folder)
            done.touch()
    return folder


class Once:
    """make(key) computed at first use and kept; a failure is kept too and raised again, so a
    broken shared run fails each test that reads it, with its message, without running again."""

    def __init__(self, make):
        self._make, self._done = make, {}

    def __call__(self, key):
        if key not in self._done:
            try:
                self._done[key] = (True, self._make(key))
            except Exception as exc:  # kept and raised again to every reader
                self._done[key] = (False, exc)
        ok, value = self._done[key]
        if not ok:
            raise value
        return value


def untimed(records: list[dict]) -> list[dict]:
    """Records without what may differ between two runs of the same claims: `timing`, and each
    control's `cached` (whether this run measured the control or read what an earlier run wrote to
    the controls cache: a second run reuses the first's). The controls' values and statuses are
    still compared."""
    return [{k: ([{a: b for a, b in c.items() if a != "cached"} for c in v] if k == "controls" and isinstance(v, list)
                 else v) for k, v in r.items() if k != "timing"} for r in records]
