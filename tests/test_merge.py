"""`mechcheck merge`: the whole offline `pytest claims/` run (the toy claims on the shipped seeds,
O1/O2 on the organism's series, every hub-model claim's skip with its reason) split in 3 shards by
pytest-split (`--splits 3 --group i`), run one after another and merged, equals the session's serial
run (conftest.claims_run) apart from timings, creation time and whether a control was read from the
cache; reports that do not fit together are refused with one line, and nothing is written.

Issue #24: the shards used to be of the toy claims only, beside a serial run of their own (4 runs);
now 3 runs, and the serial report is the one the session already made. The merge covers every
claim family, dict-valued `published` values (B2's statistics, P1's per-tag F1s) and skip records
included, which the toy claims alone did not.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mechcheck import report
from mechcheck.report.merge import main as merge

from claim_runs import CLAIMS_RUN_ARGS, claims_subprocess, untimed  # tests/claim_runs.py

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shards(tmp_path_factory, request):
    """(serial report, [3 shard reports]) of the offline claims run, the serial one the session's,
    asked for after the shards ran: another xdist worker may be making it meanwhile."""
    d = tmp_path_factory.mktemp("shards")
    for i in (1, 2, 3):
        claims_subprocess([ROOT / "claims"], d / f"shard{i}", *CLAIMS_RUN_ARGS, "--splits", "3", "--group", str(i),
                          "--durations-path", str(d / "none.json"))
    return request.getfixturevalue("claims_run")[0], [d / f"shard{i}" for i in (1, 2, 3)]


def _doc(d: Path) -> dict:
    return json.loads((d / "results.json").read_text())


def _untimed(text: str) -> str:
    """A rendered report without its creation time, timings and cache provenance of controls."""
    text = re.sub(r"Created [^.]*UTC", "Created -", text)
    text = re.sub(r"(\d+) controls, \d+ read from the cache (.*?), \d+ measured", r"\1 controls, - read from the cache \2, - measured", text)
    text = text.replace(" (cached)", "")
    text = re.sub(r"\| \d+\.\d\d \|$", "| - |", text, flags=re.M)
    text = re.sub(r"<td>\d+\.\d\d</td>", "<td>-</td>", text)
    return re.sub(r"Time: .* set-up \(", "Time: - (", text)


def test_three_shards_merged_equal_the_serial_report(shards, tmp_path, capsys):
    serial, parts = shards
    sizes = [len(_doc(p)["claims"]) for p in parts]
    n = len(_doc(serial)["claims"])
    assert all(sizes) and sum(sizes) == n
    assert {r["model"]["name"] for r in _doc(serial)["claims"]} >= {
        "mechcheck/toy-reverse-increment", "roneneldan/TinyStories-1M", "gpt2"}  # every family, skips included
    assert merge([str(tmp_path / "all"), *map(str, parts)]) == 0
    assert f"{n} records from 3 reports" in capsys.readouterr().out
    a, b = _doc(serial), _doc(tmp_path / "all")
    strip = lambda d: {**d, "claims": untimed(d["claims"])}  # noqa: E731
    assert strip(a) == strip(b)
    for name in ("summary.md", "index.html"):
        assert _untimed((tmp_path / "all" / name).read_text()) == _untimed((serial / name).read_text())


def _changed(src: Path, dst: Path, change) -> Path:
    doc = _doc(src)
    change(doc)
    dst.mkdir()
    (dst / "results.json").write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("case,line", [
    ("overlap", "*::test_* is in both *shard1/results.json and *shard3/results.json (overlapping shards)"),
    ("twice", "*shard1/results.json is given twice"),
    ("schema", "*schema 'mechcheck.results/0', expected 'mechcheck.results/3' of * (reports of different schema versions)"),
    ("settings", "* come from runs with different settings (device 'cpu' vs 'cuda')"),
    ("missing", "*nowhere/results.json: cannot be read (No such file or directory)"),
    ("garbage", "*bad.json: not valid JSON *"),
    ("into-a-shard", "*: OUT is one of the reports; merge into a new folder"),
])
def test_bad_merges_are_one_line_and_write_nothing(shards, tmp_path, capsys, case, line):
    _, (p1, p2, p3) = shards
    out = tmp_path / "out"
    args = {
        "overlap": [p1, p2, _changed(p1, tmp_path / "shard3", lambda d: None)],
        "twice": [p1, p2, p1],
        "schema": [p1, _changed(p2, tmp_path / "old", lambda d: d.update(schema="mechcheck.results/0"))],
        "settings": [p1, _changed(p2, tmp_path / "gpu", lambda d: d["run"].update(device="cuda"))],
        "missing": [p1, tmp_path / "nowhere"],
        "garbage": [p1, tmp_path / "bad.json"],
        "into-a-shard": [p1, p2],
    }[case]
    (tmp_path / "bad.json").write_text("{not json")
    if case == "into-a-shard":
        out = p1
    before = (p1 / "summary.md").read_text()
    assert merge([str(out), *map(str, args)]) == 2
    text = capsys.readouterr().out
    assert text.count("\n") == 1 and fnmatch.fnmatchcase(text.strip(), "mechcheck merge: " + line), text
    assert (case == "into-a-shard" or not out.exists()) and (p1 / "summary.md").read_text() == before


def test_merge_command_is_listed():
    out = subprocess.run([sys.executable, "-m", "mechcheck"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "merge" in out.stdout
    assert report.SCHEMA.startswith("mechcheck.results/")
