"""Checkpoint series (mechcheck.pytest_plugin.series): discovery with one-line errors, `--mc-series` runs (a
step per checkpoint, a broken checkpoint an error record, the rest still run), the report's series
sections, and the headline counting each series' last checkpoint. Series made here: exact-config
random stand-ins of roneneldan/TinyStories-1M, and the induction organism saved every 25 steps
(81 checkpoints, trained once and cached under $MECHCHECK_CACHE by its recipe key; slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mechcheck import models
from mechcheck.models import organisms
from mechcheck.models import series
from mechcheck.core.warning import MechcheckWarning
from mechcheck.report import series as series_report

from claim_runs import untimed  # tests/claim_runs.py: records apart from timings

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
TS1M = "roneneldan/TinyStories-1M"


def _config(d: Path, **kw) -> None:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "gpt_neo", "num_layers": 8, "hidden_size": 64, **kw}))


# ------------------------------------------------------------------ discovery

def test_discover_hf_folders_sorted_numerically(tmp_path):
    for name in ("checkpoint-1000", "step9", "global_step10", "notes", "step20x"):
        _config(tmp_path / name)
    (tmp_path / "README.md").write_text("not a checkpoint")
    with pytest.warns(MechcheckWarning) as caught:
        found = series.discover(tmp_path, TS1M)
    assert [str(w.message) for w in caught] == [
        f"series {tmp_path}: 3 entries are not checkpoints of the series and were not run (README.md, notes/, step20x/); "
        "name them <stem>-step<N>.safetensors, step<N>/ or list them in series.json"]
    assert [(c.step, c.path.name, c.id) for c in found] == [
        (9, "step9", "step0009"), (10, "global_step10", "step0010"), (1000, "checkpoint-1000", "step1000")]


def test_discover_series_json_and_organism_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "series.json").write_text(json.dumps([{"step": 20000, "path": "b"}, {"step": 500, "path": "a"}]))
    assert [(c.step, c.path.name, c.id) for c in series.discover(tmp_path)] == [(500, "a", "step00500"),
                                                                               (20000, "b", "step20000")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MechcheckWarning)  # every shipped file is a step or its sidecar
        shipped = series.discover(organisms.SERIES_DIR)
    assert [c.step for c in shipped] == [s for s, _ in organisms.series()]


def test_files_that_are_not_steps_are_named_and_the_headline_says_its_step(tmp_path):
    """`-stepfinal` / `-step1e3` files next to numeric steps are named in one warning (never
    skipped silently), and the headline names the step it counts."""
    for src in sorted(organisms.SERIES_DIR.glob("*-step000[0-9].*"))[:2] + sorted(organisms.SERIES_DIR.glob("*-step0250.*")):
        (tmp_path / src.name).symlink_to(src)
    (tmp_path / "induction-stepfinal.safetensors").write_bytes(b"x")
    (tmp_path / "induction-step1e3.safetensors").write_bytes(b"x")
    with pytest.warns(MechcheckWarning, match=r"2 entries are not checkpoints of the series and were not run "
                      r"\(induction-step1e3.safetensors, induction-stepfinal.safetensors\)"):
        assert [c.step for c in series.discover(tmp_path)] == [0, 250]
    recs = [{"id": "O1", "model": {"name": "m"}, "step": s, "param": f"step{s:04d}", "nodeid": f"t::o[{s}]",
             "status": "pass"} for s in (0, 250)]
    assert series_report.headline_note(recs).startswith("Counts are of each checkpoint series' last checkpoint "
                                                       "(step 250 of m; 1 earlier")


@pytest.mark.parametrize("make,message", [
    (lambda d: d.rmdir(), "not a directory"),
    (lambda d: None, "no checkpoints (expected step1000/"),
    (lambda d: (_config(d / "step100"), _config(d / "checkpoint-100")), "step 100 occurs twice (checkpoint-100 and step100)"),
    (lambda d: (_config(d / "step1"), _config(d / "step2", num_layers=4)),
     "mixed architectures: step 1 and step 2 differ (num_layers 8 vs 4)"),
    (lambda d: (d / "series.json").write_text('{"checkpoints": [{"step": 1}]}'), "series.json: expected a list of"),
    (lambda d: (d / "series.json").write_text('[{"step": 1, "path": "gone"}]'), "step 1: "),
])
def test_bad_series_is_one_line(tmp_path, make, message):
    d = tmp_path / "run"
    d.mkdir()
    make(d)
    with pytest.raises(series.SeriesError) as err:
        series.discover(d)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_option_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x(): pass")
    for value, line in [("no such/model=/tmp", "ERROR: --mc-series 'no such/model=/tmp': unknown model*"),
                        (f"{TS1M}", "ERROR: --mc-series *: expected NAME=DIR*"),
                        (f"{TS1M}={pytester.path}", "ERROR: series *: no checkpoints*")]:
        result = pytester.runpytest("--mc-series", value)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([line])


# ------------------------------------------------------------------ report parts

def _rec(step, status, value, param=None, cid="X1"):
    return {"nodeid": f"t.py::test[{param or f'step{step:04d}'}]", "id": cid, "model": {"name": "m"}, "step": step,
            "param": param or f"step{step:04d}", "status": status,
            "measured": {"value": value, "ci": [value - 0.1, value + 0.1]} if value is not None else None,
            "expected": {"op": ">=", "text": ">= 0.5", "threshold": 0.5}}


SERIES = [_rec(0, "fail", 0.1), _rec(25, "pass", 0.6), _rec(50, "fail", 0.4), _rec(75, "error", None),
          _rec(100, "pass", 0.7), _rec(125, "fail", 0.3), _rec(150, "pass", 0.8)]


def test_transitions_first_hold_and_last_flip_back():
    assert series_report.transitions(SERIES) == (25, 125)
    assert series_report.transitions(SERIES[:2]) == (25, None)
    assert series_report.transitions([_rec(0, "fail", 0.1)]) == (None, None)


def test_headline_keeps_each_series_last_checkpoint():
    plain = {"nodeid": "a.py::t", "id": "Y", "model": {"name": "m"}, "status": "fail"}
    seeded = [_rec(s, st, 0.6, param=f"seed{k}-step{s:04d}") for k, (s, st) in
              enumerate([(0, "pass"), (10, "fail")]) for _ in (0,)]
    seeded += [_rec(5, "pass", 0.6, param="seed0-step0005")]
    kept = series_report.headline([plain, *SERIES, *seeded])
    assert plain in kept and SERIES[-1] in kept and all(r not in kept for r in SERIES[:-1])
    assert {r["param"] for r in kept if r["id"] == "X1" and r["param"].startswith("seed")} == \
        {"seed0-step0005", "seed1-step0010"}


def test_series_sections_plot_and_table():
    md, frag = series_report.series_sections(SERIES)
    text = "\n".join(md)
    assert "## Checkpoint series: X1 on m" in text
    assert "Holds first at step 25; flips back at step 125." in text and "Last checkpoint: PASS" in text
    assert "| 75 | — | — | ERROR |" in text and "| 25 | 0.6 | [0.5, 0.7] | PASS |" in text
    assert frag.count("data:image/png;base64,") == 1
    assert series_report.series_sections(SERIES)[1] == frag  # byte-stable
    assert series_report.series_markdown(SERIES) == md


# ------------------------------------------------------------------ --mc-series runs

CLAIM_1M = '''
import os, pytest
from mechcheck.core.claim import Source, at_least

@pytest.mark.claim(id="S1", statement="the stand-in loads", source=Source("doc.md", "s"), model="{model}",
                   expect=at_least(0.0))
def test_s1(mc_load, measure):
    loaded = mc_load("{model}")
    measure.record(float(loaded.bridge.cfg.n_layers))

@pytest.mark.claim(id="S2", statement="again, same checkpoint", source=Source("doc.md", "s"), model="{model}",
                   expect=at_least(0.0))
def test_s2(mc_load, measure):
    measure.record(float(mc_load("{model}").bridge.cfg.d_model))
'''

LOADLOG = '''
import os
from mechcheck import models
_orig = models.load_hf

def _logged(name, path, *a, **k):
    with open(os.environ["MC_LOADLOG"], "a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {path}\\n")
    return _orig(name, path, *a, **k)

models.load_hf = _logged
'''


@pytest.fixture(scope="module")
def standin_series(tmp_path_factory):
    """Three exact-config stand-ins of TinyStories-1M as a training run's step0/step1000/step2000,
    and a copy whose middle checkpoint is broken."""
    d = tmp_path_factory.mktemp("ts1m-run")
    for seed, step in enumerate((0, 1000, 2000)):
        models.save_random(TS1M, d / f"checkpoint-{step}", seed=seed)
    broken = tmp_path_factory.mktemp("ts1m-broken")
    for p in d.iterdir():
        (broken / p.name).symlink_to(p, target_is_directory=True)
    (broken / "checkpoint-1000").unlink()
    (broken / "checkpoint-1000").mkdir()
    for f in (d / "checkpoint-1000").iterdir():
        (broken / "checkpoint-1000" / f.name).write_bytes(f.read_bytes()[:100] if "safetensors" in f.name
                                                          else f.read_bytes())
    return d, broken


def _run(folder: Path, name, *args):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_s.py").write_text(CLAIM_1M.format(model=TS1M))
    (folder / "loadlog.py").write_text(LOADLOG)
    log = folder / f"{name}.loads"
    env = {"MC_LOADLOG": str(log), "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "loadlog", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-q", "--mc-report", name, *args], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, **env})
    doc = json.loads((folder / name / "results.json").read_text())
    loads = log.read_text().split("\n")[:-1] if log.exists() else []
    return proc, doc, loads


@pytest.fixture(scope="module")
def serial_series(tmp_path_factory, standin_series):
    """(folder, (process, results.json, loads)) of the serial --mc-series run over the good series, made
    once for the two tests that read it (issue #24: the parallel test ran its own serial run)."""
    good, _ = standin_series
    folder = tmp_path_factory.mktemp("series-serial")
    # -W error: the series fixture raised pytest's PytestRemovedIn10Warning on every series run
    return folder, _run(folder, "rep", "--mc-series", f"{TS1M}={good}", "-W", "error::pytest.PytestRemovedIn10Warning")


def test_standin_series_one_record_per_step_and_load(serial_series):
    folder, (proc, doc, loads) = serial_series
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "PytestRemovedIn10Warning" not in proc.stdout
    got = [(r["id"], r["param"], r["step"], r["status"]) for r in doc["claims"]]
    assert got == [(c, f"step{s:04d}", s, "pass") for c in ("S1", "S2") for s in (0, 1000, 2000)]
    assert sorted(p.rsplit("/", 1)[1] for p in (line.split()[1] for line in loads)) == \
        ["checkpoint-0", "checkpoint-1000", "checkpoint-2000"]  # each step loaded once
    assert doc["counts"]["pass"] == 2  # the headline: the last checkpoint of each claim
    summary = (folder / "rep" / "summary.md").read_text()
    assert "## Checkpoint series: S1 on roneneldan/TinyStories-1M" in summary
    assert "2 pass, 0 fail, 0 inconclusive, 0 skip, 0 error, 0 not encoded. Counts are of each checkpoint series' last " \
        "checkpoint (step 2000 of roneneldan/TinyStories-1M; 4 earlier checkpoints' records are in the series sections)." in summary
    assert (folder / "rep" / "index.html").read_text().count("data:image/png;base64,") == 2


def test_broken_checkpoint_mid_series_is_an_error_record(tmp_path, standin_series):
    _, broken = standin_series
    proc, doc, _ = _run(tmp_path, "rep", "--mc-series", f"{TS1M}={broken}")
    assert proc.returncode == 1
    by = {(r["id"], r["step"]): r for r in doc["claims"]}
    assert [by[("S1", s)]["status"] for s in (0, 1000, 2000)] == ["pass", "error", "pass"]
    assert "checkpoint-1000: weights cannot be read" in by[("S1", 1000)]["message"]
    assert "\n" not in by[("S1", 1000)]["message"]


def test_standin_series_parallel_loads_once_and_equals_serial(tmp_path, standin_series, serial_series):
    """Against the serial run of the test above (serial_series), in a folder of its own."""
    good, _ = standin_series
    serial = serial_series[1][1]
    proc, par, loads = _run(tmp_path, "par", "--mc-series", f"{TS1M}={good}", "-n", "2", "--dist", "loadgroup")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert len(loads) == 3 and len({line.split()[1] for line in loads}) == 3  # once in total
    assert {line.split()[0] for line in loads} == {"gw0", "gw1"}
    assert untimed(par["claims"]) == untimed(serial["claims"])


# ------------------------------------------------------------------ the organism, every 25 steps

@pytest.fixture(scope="session")
def organism_every25() -> Path:
    """The induction organism (full 2000-step recipe) saved every 25 steps: 81 checkpoints,
    trained once in a test session and cached under $MECHCHECK_CACHE."""
    from mechcheck.tools.bench_series import every25

    return every25()


@pytest.mark.slow
def test_organism_series_of_81_checkpoints(tmp_path, organism_every25):
    """O1/O2 over the organism's training run saved every 25 steps (81 checkpoints, 162 records):
    a record per step, the phase change found, the headline of step 2000 only. Slow: the run is
    trained (about 2 minutes on 2 cores) unless $MECHCHECK_CACHE holds it under its recipe key.
    Every check but the scale also runs in `make test` on the shipped 9-checkpoint series
    (test_organisms.py) and on stand-in series (above)."""
    report = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "claims" / "test_induction_organism.py"),
                           "-q", "-p", "no:randomly", "--mc-report", str(report), "--mc-claims-nonfatal",
                           "--mc-series", f"{models.INDUCTION_ORGANISM}={organism_every25}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    doc = json.loads((report / "results.json").read_text())
    steps = sorted({r["step"] for r in doc["claims"]})
    assert steps == list(range(0, 2001, 25)) and len(doc["claims"]) == 4 * 81
    o1 = [r for r in doc["claims"] if r["id"] == "O1"]
    assert all(r["status"] in ("pass", "fail", "inconclusive") for r in o1)  # near the phase change the CI straddles
    first, _ = series_report.transitions(sorted(o1, key=lambda r: r["step"]))
    assert next(r for r in o1 if r["step"] == 0)["status"] == "fail" and first is not None and first > 0
    assert doc["counts"]["pass"] + doc["counts"]["fail"] + doc["counts"]["inconclusive"] == 4  # headline: step 2000 only
    phase = [r for r in doc["claims"] if r["id"] == "O1.phase"]  # decided once, at the last checkpoint, over all 81
    assert [r["step"] for r in phase if r["status"] != "skip"] == [2000]
    assert len(next(r for r in phase if r["step"] == 2000)["measured"]["details"]["steps"]) == 81
    summary = (report / "summary.md").read_text()
    assert f"Holds first at step {first}" in summary


def test_bench_series_smoke(tmp_path, monkeypatch):
    """`mechcheck bench series` on 2 checkpoints, serial: it runs and counts one load per
    checkpoint (timings are not asserted). Its checkpoints come from the shipped series (every 250
    steps) instead of the every-25 run, which is trained when not cached (the slow test above).
    Issue #24: serial only (--workers 1, one claims run instead of two); that a `-n 2 --dist
    loadgroup` series run loads each checkpoint once in total and reports what the serial run does
    is checked by test_standin_series_parallel_loads_once_and_equals_serial."""
    from mechcheck.tools import bench_series

    monkeypatch.setattr(bench_series, "every25", lambda: organisms.SERIES_DIR)
    assert bench_series.main(["--out", str(tmp_path), "--sizes", "2", "--workers", "1"]) == 0
    rows = json.loads((tmp_path / "bench_series.json").read_text())
    assert [(r["checkpoints"], r["workers"], r["records"], r["loads"], r["distinct_loaded"]) for r in rows] == \
        [(2, 1, 6, 2, 2)]  # O1, O2, O2.kcomp at 2 checkpoints (O1.phase deselected: too few)
    assert "| checkpoints | workers |" in (tmp_path / "bench_series.md").read_text()


def test_claim_that_loads_its_own_model_is_an_error_not_a_silent_pass(pytester, standin_series):
    good, _ = standin_series
    pytester.makepyfile(test_own=OWN_LOADER.format(model=TS1M))
    result = pytester.runpytest("--mc-series", f"{TS1M}={good}", "--mc-report", "rep")
    result.assert_outcomes(errors=3)
    doc = json.loads((pytester.path / "rep" / "results.json").read_text())
    assert {r["status"] for r in doc["claims"]} == {"error"} and len(doc["claims"]) == 3
    assert all("loads its model itself" in r["message"] for r in doc["claims"])


OWN_LOADER = """
import pytest
from mechcheck.core.claim import Source, at_least

@pytest.mark.claim(id="S9", statement="ignores the series", source=Source("d", "s"), model="{model}",
                   expect=at_least(0))
def test_s9(measure):
    measure.record(1.0)
"""
