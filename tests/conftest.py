"""mechcheck's own tests run offline: no hub lookups (they hang ~23 s before failing).

Shared claim runs (issue #24): each claims run that several tests read is made once per test
session, at its first use, and kept: `claims_run` (`pytest claims/` offline, as CI runs it),
`dry_run` (one claim file on the exact-config random stand-ins) and `standins` (the stand-in
checkpoints). Every test that reads one says in its docstring what it still checks.

`make test` runs under `-n 2 --dist loadgroup` (issue #24). `claims_run` and the stand-ins are made
once for the whole session, by whichever xdist worker asks first, in the folder the workers share
(claim_runs.made_once: a file lock); the other worker waits for it and reads it. So the tests that
read them need no xdist group and spread over both workers (they used to share one group, and one
worker ran the claims run and the three more runs of its readers in a row). Each worker gets its
share of the cores (torch threads, and OMP_NUM_THREADS for the claims runs it starts): two workers
each running torch on every core spin-wait on each other.
"""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# The plugin imports TransformerLens at first use (mechcheck.models.checkpoints); the tests import it
# up front: pytester's in-process runs remove the modules first imported inside them, and `datasets`
# (imported by TransformerLens) cannot be imported twice in one process (pyarrow extension types).
import transformer_lens.model_bridge  # noqa: E402, F401

from claim_runs import CLAIMS_RUN_ARGS, DRY_RUNS, DRYRUN, ROOT, Once, claims_subprocess, made_once, session_root  # noqa: E402
from standins import Standins  # noqa: E402

_SERIAL_THREADS = []  # torch's thread count before a worker took its share: a serial run's


def pytest_configure(config):
    """In an xdist worker: torch threads = cores // workers here and in every process it starts
    (tests compare runs made within one session, all under the same setting)."""
    import torch

    from mechcheck.pytest_plugin.scheduling import share_cpu_threads

    _SERIAL_THREADS.append(torch.get_num_threads())
    threads = share_cpu_threads()
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)


@pytest.fixture
def serial_threads():
    """torch with a serial run's thread count for one test, under xdist too: a test that compares
    bytes with a file made outside the session (the shipped checkpoints were trained serially) needs
    the same reductions, and torch's CPU reductions depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(_SERIAL_THREADS[0])
    yield _SERIAL_THREADS[0]
    torch.set_num_threads(before)


@pytest.fixture
def run_claims():
    """run(claim_file, report_dir, *pytest_args) -> results.json of a claims run in a subprocess
    (a fresh session, as a user would run it); the run must end with exit 0."""

    def run(claim_file: str, report: Path, *args: str) -> dict:
        return claims_subprocess([ROOT / "claims" / claim_file], report, *args)

    return run


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> Standins:
    """The stand-in checkpoints of the hub models, each written once per session (by the first
    worker that needs it) at first use."""
    return Standins(session_root(tmp_path_factory) / "standins")


@pytest.fixture(scope="session")
def dry_run(standins):
    """dry_run(family) -> results.json of the dry run of that family's claim file (DRY_RUNS:
    ioi, pos, one_layer) on the stand-ins with --mc-claims-nonfatal, run once per session; the
    report stays in reports/dryrun/<family>/ (the time of every measurement)."""

    def run(family: str) -> dict:
        claim_file, names, args = DRY_RUNS[family]
        return claims_subprocess([ROOT / "claims" / claim_file], DRYRUN / family, "--mc-claims-nonfatal",
                                 *standins.args(*names), *args)

    return Once(run)


@pytest.fixture(scope="session")
def claims_run(tmp_path_factory) -> tuple[Path, dict]:
    """(report folder, results.json) of `pytest claims/ -p no:randomly --mc-claims-nonfatal`,
    serial, no model overrides, once per session: the toy claims on the shipped seeds, O1/O2 on
    the organism's shipped series, every hub-model claim skipped with its reason."""
    folder = made_once(session_root(tmp_path_factory) / "claims-run" / "serial",
                       lambda f: claims_subprocess([ROOT / "claims"], f, *CLAIMS_RUN_ARGS))
    return folder, json.loads((folder / "results.json").read_text())
