"""The README's "Writing a claim" is a file a user can copy and run: examples/test_induction_head.py
is that file, byte for byte; run with the README's command on the shipped induction organism it
passes and the report shows the README's row; it fails on the organism's untrained checkpoint,
skips with the README's reason when its model cannot be reached, and examples/regression.sh turns
a worse checkpoint into `mechcheck diff`'s regression (exit 1) as the README shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "test_induction_head.py"
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### A claim about your own model\n"): README.index("\n## The report")]
SERIES = "fixtures/organisms/induction-series/induction-2L-db0c6e90edb6"


pytest_plugins = ["pytester"]


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _pytest(pytester, args: list[str], report: Path):
    """pytest in-process (pytester) with the README's repository-relative paths made absolute."""
    args = [re.sub(r"(^|=)((?:examples|fixtures)/)", lambda m: f"{m.group(1)}{ROOT}/{m.group(2)}", a) for a in args]
    return pytester.runpytest(*args, "-p", "no:cacheprovider", "--mc-report", str(report))


def _blocks(lang: str) -> list[str]:
    """The fenced blocks of the section opened with ```lang (lang "" : a plain fence)."""
    out, current = [], None
    for line in SECTION.splitlines(keepends=True):
        if current is None and line.startswith("```"):
            current = [] if line.strip() == f"```{lang}" else False
        elif current is not None and line.startswith("```"):
            if current is not False:
                out.append("".join(current))
            current = None
        elif current:
            current.append(line)
        elif current == []:
            current = [line]
    return out


def test_the_readme_shows_the_example_file():
    assert _blocks("python") == [EXAMPLE.read_text()]


def test_the_readme_command_passes_on_the_organism_and_the_report_says_so(pytester, tmp_path):
    (command,) = [line for block in _blocks("sh") for line in block.splitlines() if "fixtures/organisms" in line]
    args = shlex.split(command)
    assert args[0] == "pytest"
    result = _pytest(pytester, args[1:], tmp_path)
    assert result.ret == 0, result.stdout.str()[-2000:]
    summary = (tmp_path / "summary.md").read_text()
    (row,) = [b.strip() for b in _blocks("") if b.startswith("| my.induction")]
    assert row in summary  # the README's row, with its measured value and CI (CPU runs are byte-identical)
    (record,) = json.loads((tmp_path / "results.json").read_text())["claims"]
    assert record["status"] == "pass" and record["measured"]["details"]["head"].startswith("L1H")


def test_the_example_fails_on_the_untrained_checkpoint(pytester, tmp_path):
    assert f"{SERIES}-step0000.safetensors" in SECTION
    result = _pytest(pytester, [str(EXAMPLE), "--mc-claims-nonfatal", "--mc-model",
                                f"my-model={SERIES}-step0000.safetensors"], tmp_path)
    assert result.ret == 0, result.stdout.str()[-2000:]
    (record,) = json.loads((tmp_path / "results.json").read_text())["claims"]
    assert record["status"] == "fail" and record["measured"]["value"] < 0.3


def test_the_example_skips_when_its_model_is_unreachable(pytester, tmp_path):
    result = _pytest(pytester, [str(EXAMPLE)], tmp_path)
    assert result.ret == 0, result.stdout.str()[-2000:]
    (record,) = json.loads((tmp_path / "results.json").read_text())["claims"]
    assert record["status"] == "skip"
    assert record["message"].startswith("checkpoint my-model not reachable (")
    assert "provide it with --mc-model my-model=/path/to/checkpoint" in record["message"]
    assert "checkpoint my-model not reachable (" in SECTION


def test_the_regression_example_exits_1_as_the_readme_shows(tmp_path):
    old, new = f"{SERIES}-step2000.safetensors", f"{SERIES}-step0250.safetensors"
    result = subprocess.run(["sh", "examples/regression.sh", old, new, str(tmp_path)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (shown,) = [b for b in _blocks("") if b.startswith("regressions (1):")]
    assert shown in result.stdout
