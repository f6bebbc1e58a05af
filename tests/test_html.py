"""index.html: self-contained, every claim present with its figure, and it renders in a real
headless browser (Debian chromium; skipped where it is not installed). The page is the one of the
session's offline `pytest claims/` run (conftest.claims_run: toy claims with figures, the
organism's series plots, skipped hub-model claims)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(claims_run):
    return claims_run[0]


def test_page_is_self_contained_and_complete(report):
    page = (report / "index.html").read_text()
    doc = json.loads((report / "results.json").read_text())
    assert not re.search(r"(src|href)=['\"]https?://", page) and "<script" not in page
    for r in doc["claims"]:
        assert ">" + r["id"] + (f"[{r['param']}]" if r["param"] else "") + "<" in page
    images = re.findall(r"<img src='data:image/png;base64,", page)
    assert len(images) >= 3 * 3 + 2  # T2's attention pattern, T3 and T4 ablation bars per seed; O1/O2 series


def test_page_renders_in_headless_chromium(report, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed (apt-get install chromium); see scripts/screenshot_report.sh")
    png = tmp_path / "report.png"
    subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"), str(report / "index.html"), str(png)],
                   check=True, timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a real page, not a blank frame
