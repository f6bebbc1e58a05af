"""mechcheck's own tests run offline: no hub lookups (they hang ~23 s before failing)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_claims():
    """run(claim_file, report_dir, *pytest_args) -> results.json of a claims run in a subprocess
    (a fresh session, as a user would run it); the run must end with exit 0."""

    def run(claim_file: str, report: Path, *args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "claims" / claim_file), "-q",
                              "--mc-report", str(report), *args], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stdout[-3000:]
        return json.loads((Path(report) / "results.json").read_text())

    return run

