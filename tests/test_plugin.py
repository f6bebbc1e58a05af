"""The pytest plugin itself, through pytester: every status, the report files, xdist merge,
bad options, interrupted runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claim_runs import untimed  # tests/claim_runs.py: records apart from timings

pytest_plugins = ["pytester"]

CLAIMS = '''
import math
import pytest
from mechcheck.core.claim import Source, at_least, at_most, within, rank_at_most, argmax_is

SRC = Source("doc.md", "fig 1")
TOY = "mechcheck/toy-reverse-increment"

@pytest.mark.claim(id="C1", statement="passes", source=SRC, model=TOY, expect=at_least(0.5), published=0.9)
def test_pass(measure):
    measure.record(0.75, ci=(0.7, 0.8), n=10)

@pytest.mark.claim(id="C2", statement="fails", source=SRC, model=TOY, expect=at_most(0.1), published=0.05)
def test_fail(measure):
    measure.record(0.75)

@pytest.mark.claim(id="C3", statement="skips", source=SRC, model=TOY, expect=at_least(0.5))
def test_skip(measure):
    pytest.skip("checkpoint not reachable")

@pytest.mark.claim(id="C4", statement="errors", source=SRC, model=TOY, expect=at_least(0.5))
def test_error(measure):
    raise RuntimeError("boom")

@pytest.mark.claim(id="C5", statement="nan", source=SRC, model=TOY, expect=at_least(0.5))
def test_nan(measure):
    measure.record(math.nan)

@pytest.mark.claim(id="C6", statement="records nothing", source=SRC, model=TOY, expect=at_least(0.5))
def test_nothing(measure):
    pass

@pytest.mark.claim(id="C7", statement="rank", source=SRC, model=TOY, expect=rank_at_most(2, (1, 1)))
@pytest.mark.parametrize("seed", [0, 1])
def test_rank(measure, seed):
    measure.seed = seed
    measure.record([[0.1, 0.2], [0.9, 0.5 if seed == 0 else 0.05]])

@pytest.mark.claim(id="C8", statement="head that does not exist", source=SRC, model=TOY, expect=argmax_is((7, 7)))
def test_missing_head(measure):
    measure.record([[0.1, 0.2], [0.3, 0.4]])

def test_plain():
    assert True
'''

EXPECTED = {
    "C1": "pass", "C2": "fail", "C3": "skip", "C4": "error", "C5": "error", "C6": "error",
    "C7": ["pass", "fail"], "C8": "error",
}


def _statuses(doc):
    out = {}
    for r in doc["claims"]:
        out.setdefault(r["id"], []).append(r["status"])
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _read(path):
    return json.loads(path.read_text())


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_claims=CLAIMS)
    return pytester


def test_every_status_reaches_the_report(suite):
    result = suite.runpytest("--mc-report", "rep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=6, skipped=1)
    doc = _read(suite.path / "rep" / "results.json")
    assert _statuses(doc) == EXPECTED
    assert doc["counts"] == {"pass": 2, "fail": 2, "inconclusive": 0, "skip": 1, "error": 4, "not-encoded": 0}
    c1 = next(r for r in doc["claims"] if r["id"] == "C1")
    assert c1["measured"]["value"] == 0.75 and c1["measured"]["ci"] == [0.7, 0.8]
    assert c1["expected"] == {"op": ">=", "text": ">= 0.5", "threshold": 0.5}
    assert c1["published"] == 0.9 and c1["source"] == {"document": "doc.md", "where": "fig 1"}
    assert set(c1["timing"]) == {"setup_s", "call_s"}
    messages = {r["id"]: r["message"] for r in doc["claims"]}
    assert "not finite" in messages["C5"]
    assert "recorded no measurement" in messages["C6"]
    assert "(7, 7) does not exist" in messages["C8"]
    assert messages["C3"] == "checkpoint not reachable"
    summary = (suite.path / "rep" / "summary.md").read_text()
    assert "| C1 | doc.md: fig 1 | mechcheck/toy-reverse-increment | 0.75 [0.7, 0.8] | >= 0.5 | 0.9 | PASS |" in summary
    assert "C7 on mechcheck/toy-reverse-increment: holds in 1 of 2 decided runs" in summary
    # a claim failure is one line, not a traceback
    result.stdout.fnmatch_lines(["ClaimFailed: C2: measured 0.75 does not satisfy <= 0.1"])


def test_nonfatal_mode_reports_fail_as_xfail(suite):
    result = suite.runpytest("--mc-report", "rep", "--mc-claims-nonfatal", "-k", "fail or pass")
    result.assert_outcomes(passed=1, xfailed=1)
    doc = _read(suite.path / "rep" / "results.json")
    assert _statuses(doc) == {"C1": "pass", "C2": "fail"}


def test_xdist_merge_equals_serial(suite):
    serial = suite.runpytest_subprocess("--mc-report", "serial", "-p", "no:randomly")
    par = suite.runpytest_subprocess("--mc-report", "par", "-n", "2", "--dist", "loadfile")
    assert serial.ret == par.ret == 1
    a, b = _read(suite.path / "serial" / "results.json"), _read(suite.path / "par" / "results.json")
    assert len(a["claims"]) == len(b["claims"]) == 9
    assert untimed(a["claims"]) == untimed(b["claims"])


def test_unknown_model_in_override_is_one_line(suite):
    result = suite.runpytest("--mc-model", "no such/model=/tmp")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown model 'no such/model': neither a registered name*"])


def test_missing_override_path_is_one_line(suite):
    result = suite.runpytest("--mc-model", "roneneldan/TinyStories-1M=/nonexistent")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --mc-model roneneldan/TinyStories-1M=/nonexistent: no such file or directory*"])
    assert "Traceback" not in result.stderr.str()


def test_unknown_model_in_claim_marker(pytester):
    pytester.makepyfile(test_x='''
import pytest
from mechcheck.core.claim import Source, at_least
@pytest.mark.claim(id="X", statement="s", source=Source("d", "w"), model="no such/model", expect=at_least(0))
def test_x(measure):
    measure.record(1.0)
''')
    result = pytester.runpytest()
    assert result.ret != 0
    assert "unknown model 'no such/model'" in result.stdout.str() + result.stderr.str()


def test_interrupt_keeps_previous_report(pytester):
    pytester.makepyfile(test_a='''
import pytest
from mechcheck.core.claim import Source, at_least
@pytest.mark.claim(id="A", statement="s", source=Source("d", "w"), model="mechcheck/toy-reverse-increment", expect=at_least(0))
def test_a(measure):
    measure.record(1.0)
def test_b():
    raise KeyboardInterrupt
''')
    rep = pytester.path / "rep"
    rep.mkdir()
    (rep / "results.json").write_text('{"previous": true}\n')
    result = pytester.runpytest_subprocess("--mc-report", str(rep))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _read(rep / "results.json") == {"previous": True}
    assert sorted(p.name for p in rep.iterdir()) == ["results.json"]


def test_kill_midway_leaves_no_partial_report(pytester, tmp_path):
    marker = tmp_path / "started"
    pytester.makepyfile(test_slow=f'''
import pathlib, time
from mechcheck.core.claim import Source, at_least
import pytest
@pytest.mark.claim(id="A", statement="s", source=Source("d", "w"), model="mechcheck/toy-reverse-increment", expect=at_least(0))
def test_a(measure):
    measure.record(1.0)
def test_slow():
    pathlib.Path({str(marker)!r}).write_text("x")
    time.sleep(60)
''')
    rep = pytester.path / "rep"
    rep.mkdir()
    (rep / "results.json").write_text('{"previous": true}\n')
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--mc-report", str(rep), "-q"],
                            cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _read(rep / "results.json") == {"previous": True}
    assert sorted(p.name for p in rep.iterdir()) == ["results.json"]


def test_no_claims_no_report(pytester):
    pytester.makepyfile(test_plain="def test_x():\n    assert 1\n")
    result = pytester.runpytest("--mc-report", "rep")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "rep").exists()


def test_reports_validate_against_the_json_schema(suite):
    import jsonschema

    from mechcheck.report import SCHEMA_FILE

    schema = json.loads(SCHEMA_FILE.read_text())
    suite.runpytest("--mc-report", "rep")
    jsonschema.validate(_read(suite.path / "rep" / "results.json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": "mechcheck.results/1", "run": {}, "counts": {}, "claims": []}, schema)


def test_the_repos_own_claim_report_validates(claims_run):
    """results.json of the repository's own offline claims run (conftest.claims_run: toy, organism
    series, skips) validates against the schema."""
    import jsonschema

    from mechcheck.report import SCHEMA_FILE

    jsonschema.validate(_read(claims_run[0] / "results.json"), json.loads(SCHEMA_FILE.read_text()))


SHARED_PREPARATION = '''
import os
from types import SimpleNamespace

import pytest

from mechcheck.core.claim import Claim, Measure, Source, at_least

PHASES = []
MODEL = SimpleNamespace(sha256="ab" * 32)


def forward_pass(model):
    PHASES.append(os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[-1])
    return 1.0


def value(prepared):
    return dict(value=prepared)


def claim(cid):
    return Claim(id=cid, statement="s", source=Source("d", "w"), model="m", expect=at_least(0.5),
                 measure=Measure(value, on=forward_pass))


@pytest.fixture
def model(measure):
    measure.prepare(MODEL)
    return MODEL


@pytest.mark.claim(claim("a"))
def test_a(model, measure):
    measure.run(model)


@pytest.mark.claim(claim("b"))
def test_b(model, measure):
    measure.run(model)
    assert PHASES == ["(setup)"]
'''


def test_a_shared_preparation_made_in_a_fixture_is_set_up_time_and_made_once(pytester):
    """`measure.prepare(model)` in the fixture that loads the model computes the claims' shared
    preparation (Measure(..., on=...)) during set-up, once for every claim on that checkpoint: the
    first claim's measured time is its own measurement, not the forward pass all of them read."""
    pytester.makepyfile(test_shared=SHARED_PREPARATION)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--mc-report", "rep", "--mc-controls", "skip")
    result.assert_outcomes(passed=2)
