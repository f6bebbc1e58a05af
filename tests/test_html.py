"""index.html: self-contained, every claim present with its figure, and it renders in a real
headless browser (Debian chromium; skipped where it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    run = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "claims" / "test_toy_reverse_increment.py"),
                          "-q", "-k", "seed0", "--mc-report", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode in (0, 1), run.stdout[-2000:]
    return out


def test_page_is_self_contained_and_complete(report):
    page = (report / "index.html").read_text()
    doc = json.loads((report / "results.json").read_text())
    assert not re.search(r"(src|href)=['\"]https?://", page) and "<script" not in page
    for r in doc["claims"]:
        assert f">{r['id']}[{r['param']}]<" in page
    images = re.findall(r"<img src='data:image/png;base64,", page)
    assert len(images) >= 3  # T2's attention pattern, T3 and T4 ablation bars


def test_page_renders_in_headless_chromium(report, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed (apt-get install chromium); see scripts/screenshot_report.sh")
    png = tmp_path / "report.png"
    subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"), str(report / "index.html"), str(png)],
                   check=True, timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a real page, not a blank frame
