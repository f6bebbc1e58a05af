"""The installable package: a wheel built from this checkout carries the shipped checkpoints
(package data mechcheck.shipped, read through importlib.resources), and the toy and organism
claims run from a directory outside the repository with no skips and no retraining."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_fixtures_and_runs_the_claims_outside_the_repo(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("mechcheck-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [n for n in (ROOT / "fixtures").rglob("*") if n.is_file()]
    for f in shipped:
        assert f"mechcheck/shipped/{f.relative_to(ROOT / 'fixtures').as_posix()}" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    for claim_file in ("test_toy_reverse_increment.py", "test_induction_organism.py"):
        shutil.copy(ROOT / "claims" / claim_file, work)
    env = {**os.environ, "PYTHONPATH": str(site), "MECHCHECK_CACHE": str(tmp_path / "empty-cache")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                          "--mc-claims-nonfatal", "--mc-report", str(tmp_path / "rep"), "."],
                         capture_output=True, text=True, cwd=work, env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert len(doc["claims"]) == 10 * 3 + 3 * 9 + 1 and "skip" not in {r["status"] for r in doc["claims"]}  # 10 toy claims x 3 seeds, O1/O2/O2.kcomp x 9 checkpoints, O1.phase once
    assert not (tmp_path / "empty-cache").exists()  # nothing was retrained
    import_path = subprocess.run([sys.executable, "-c", "import mechcheck; print(mechcheck.__file__)"],
                                 capture_output=True, text=True, cwd=work, env=env).stdout
    assert import_path.startswith(str(site))
