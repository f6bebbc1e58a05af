"""Bad input never becomes a verdict: each case is one clear line at the right moment, the right
exit code, no traceback, no INTERNALERROR, and no report lost.

Every row of CASES runs pytest (or the mechcheck command) in a subprocess on a tiny claim file
written into tmp_path, as a user would; the toy model keeps them fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = "mechcheck/toy-reverse-increment"
USAGE, FAILED, DIFF_BAD = 4, 1, 2

HEADER = f'''
import pytest
from mechcheck.core.claim import Source, at_least
SRC = Source("doc", "where")
def claim(**kw):
    return pytest.mark.claim(**{{"id": "C", "statement": "s", "source": SRC, "model": "{TOY}",
                                 "expect": at_least(0.5), **kw}})
'''
PASSING = '''
@claim(id="OK")
def test_ok(measure):
    measure.record(0.9)
'''
FAILING = '''
@claim(id="LOW")
def test_low(measure):
    measure.record(0.1)
'''
MALFORMED = '''
@pytest.mark.claim(id="M", statement="s", model="x")
def test_m(measure):
    measure.record(1.0)
'''
NAN_TOY = '''
from mechcheck.studies import toy_circuit
@claim(id="NAN", expect=at_least(0.4))
def test_nan_checkpoint(measure, mc_device, mc_load):
    loaded = mc_load("mechcheck/toy-reverse-increment", checkpoint=r"{ckpt}")
    measure.record(**toy_circuit.ablation_drop(toy_circuit.ToyRun(loaded.bridge, mc_device), "mlp.W_out"))
'''


def _nan_toy(tmp: Path) -> Path:
    """The shipped toy seed 0 with one NaN weight (the issue's case)."""
    from safetensors.torch import load_file, save_file

    from mechcheck.models import toy

    state = load_file(str(toy.get_checkpoint(toy.TrainConfig(seed=0))))
    name = next(k for k in state if k.endswith("mlp.fc_out.weight"))
    state[name][0, 0] = float("nan")
    path = tmp / "nan.safetensors"
    save_file(state, str(path))
    return path


def _data_dir(tmp: Path, tokenizer: str | None = None, tagger: bool = False) -> Path:
    data = tmp / "data"
    (data / "tokenizer" / "gpt2").mkdir(parents=True)
    if tokenizer is not None:
        (data / "tokenizer" / "gpt2" / "tokenizer.json").write_text(tokenizer)
    return data


# (id, claim body, extra args, environment changes, expected one-line message, exit code)
CASES = [
    ("report-is-a-file", PASSING, ["--mc-report", "{tmp}/file.txt"], {},
     "--mc-report {tmp}/file.txt: is an existing file, not a folder", USAGE),
    ("report-under-a-file", PASSING, ["--mc-report", "{tmp}/file.txt/rep"], {},
     "is a file, so no folder can be made under it", USAGE),
    ("report-unwritable", PASSING, ["--mc-report", "/proc/mechcheck-report"], {},
     "--mc-report /proc/mechcheck-report: cannot write in /proc", USAGE),
    ("report-name-is-a-folder", PASSING, ["--mc-report", "{tmp}/rep"], {},
     "rep/index.html is a folder; the report needs that name for a file", USAGE),
    ("report-empty", PASSING, ["--mc-report", ""], {}, "--mc-report '' names no directory", USAGE),
    ("model-twice", PASSING, ["--mc-model", f"{TOY}={{tmp}}/file.txt", "--mc-model", f"{TOY}={{tmp}}/file.txt"], {},
     f"--mc-model {TOY}=... given 2 times; give each model once", USAGE),
    ("ioi-names-empty-item", PASSING, ["--mc-ioi-names", "John,,Mary"], {}, "has an empty name", USAGE),
    ("ioi-names-empty", PASSING, ["--mc-ioi-names", ""], {}, "--mc-ioi-names is empty", USAGE),
    ("ioi-names-one", PASSING, ["--mc-ioi-names", "John"], {}, "need at least two distinct names", USAGE),
    ("ioi-names-duplicate", PASSING, ["--mc-ioi-names", "John,Mary,John"], {}, "repeats John; each name once", USAGE),
    ("offline-no-data", "\ndef test_tok(mc_tokenizer):\n    pass\n", [], {"MECHCHECK_DATA": None},
     "the GPT-2 tokenizer (gpt2) is not available offline (HF_HUB_OFFLINE=1 and it is not in the HF cache); "
     "give the data directory with --mc-data DIR or $MECHCHECK_DATA", FAILED),
    ("corrupt-tokenizer", "\ndef test_tok(mc_tokenizer):\n    pass\n", ["--mc-data", "{data_bad_tok}"], {},
     "{data_bad_tok}/tokenizer/gpt2/tokenizer.json: not a readable tokenizer.json", FAILED),
    ("missing-tagger", "\nfrom mechcheck import tagging\ndef test_tagger(mc_data):\n    tagging.use_data_dir(mc_data)\n",
     ["--mc-data", "{data_no_tagger}"], {},
     "NLTK tagger averaged_perceptron_tagger_eng not found (looked in {data_no_tagger}/nltk_data/taggers/averaged_perceptron_tagger_eng and", FAILED),
    ("unknown-model-in-marker", PASSING + '\n@claim(id="X", model="no such/model")\ndef test_x(measure):\n    measure.record(1.0)\n',
     [], {}, "ClaimError: @pytest.mark.claim(model=...): unknown model 'no such/model': neither a registered name", FAILED),
    ("record-dict", PASSING + '\n@claim(id="D")\ndef test_d(measure):\n    measure.record({"a": 1.0})\n', [], {},
     "ClaimError: measured value must be a real number or an array of numbers, got dict", FAILED),
    ("record-string", PASSING + '\n@claim(id="S")\ndef test_s(measure):\n    measure.record("0.7")\n', [], {},
     "ClaimError: measured value must be a real number or an array of numbers, got str '0.7'", FAILED),
    ("malformed-marker", PASSING + MALFORMED, [], {}, "ClaimError: test_claims.py::test_m: bad @pytest.mark.claim", FAILED),
    ("nan-checkpoint", NAN_TOY, ["--mc-claims-nonfatal"], {},
     f"NonFiniteError: non-finite activations (NaN or inf) in {TOY}, first at hook blocks.0.mlp.out.hook_out", FAILED),
]


def _run(argv, tmp: Path, env_changes: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf"),
           "MECHCHECK_CACHE": os.environ.get("MECHCHECK_CACHE", str(tmp / "cache")), "NLTK_DATA": str(tmp / "nltk")}
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp, env=env, timeout=600)


@pytest.mark.parametrize("body, args, env, message, code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(tmp_path, body, args, env, message, code):
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "rep" / "index.html").mkdir(parents=True)
    (tmp_path / "rep" / "index.html" / "x").write_text("")
    subs = {"tmp": str(tmp_path)}
    if "{data_bad_tok}" in message:
        subs["data_bad_tok"] = str(_data_dir(tmp_path, tokenizer='{"not": "a tokenizer"'))
        env = {**env, "MECHCHECK_CACHE": str(tmp_path / "cache")}
    if "{data_no_tagger}" in message:
        subs["data_no_tagger"] = str(_data_dir(tmp_path))
    body = body.replace("{ckpt}", str(_nan_toy(tmp_path))) if "{ckpt}" in body else body
    (tmp_path / "test_claims.py").write_text(HEADER + body)
    args = [a.format(**subs) for a in args]
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--rootdir", str(tmp_path), *args, "test_claims.py"], tmp_path, env)
    text = out.stdout + out.stderr
    message = message.format(**subs)
    assert out.returncode == code, text[-3000:]
    assert message in text, text[-3000:]
    assert "Traceback" not in text and "INTERNALERROR" not in text, text[-3000:]
    line = next(x for x in text.splitlines() if message in x)
    assert len(line) < 400, line
    if code == FAILED and "test_ok" in body:
        assert "1 passed" in out.stdout  # the rest of the session ran


def test_nan_checkpoint_reported_as_error_with_strict_json(tmp_path):
    """The NaN checkpoint is an error in results.json (never a FAIL with invented values), and
    non-finite numbers a claim recorded are null with a reason: strict JSON."""
    body = NAN_TOY.replace("{ckpt}", str(_nan_toy(tmp_path))) + '''
@claim(id="NANDETAIL")
def test_nan_detail(measure):
    measure.record(0.9, spread=float("nan"), per_item=[1.0, float("inf")])
'''
    (tmp_path / "test_claims.py").write_text(HEADER + body)
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                "--mc-report", "rep", "--mc-claims-nonfatal", "test_claims.py"], tmp_path, {})
    assert out.returncode == FAILED, out.stdout[-2000:]

    def refuse(name):
        raise ValueError(f"bare {name} in results.json")

    doc = json.loads((tmp_path / "rep" / "results.json").read_text(), parse_constant=refuse)
    recs = {r["id"]: r for r in doc["claims"]}
    assert recs["NAN"]["status"] == "error" and "blocks.0.mlp.out.hook_out" in recs["NAN"]["message"]
    assert recs["NAN"]["measured"] is None  # no value computed from NaN activations is shown
    detail = recs["NANDETAIL"]["measured"]
    assert recs["NANDETAIL"]["status"] == "pass"
    assert detail["details"] == {"spread": None, "per_item": [1.0, None]}
    assert detail["nonfinite"] == "non-finite numbers written as null at: details.spread, details.per_item[1]"


def _report_run(tmp_path, *args, body=FAILING + PASSING):
    (tmp_path / "test_claims.py").write_text(HEADER + body)
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--rootdir", str(tmp_path), "--mc-report", "rep", *args, "test_claims.py"], tmp_path, {})
    return out, json.loads((tmp_path / "rep" / "results.json").read_text())


@pytest.mark.parametrize("args, reason", [
    (["-x"], "stopped early"),
    (["-k", "ok"], "1 claim test(s) deselected"),
    ([], None),
])
def test_partial_runs_say_so(tmp_path, args, reason):
    out, doc = _report_run(tmp_path, *args)
    assert out.returncode == FAILED if args != ["-k", "ok"] else out.returncode == 0
    partial = doc["run"]["partial"]
    assert (partial is None) if reason is None else (reason in partial), partial
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert ("PARTIAL RUN" in summary) is (reason is not None)


def test_malformed_claim_is_an_error_in_the_report(tmp_path):
    import jsonschema

    from mechcheck.report import SCHEMA_FILE

    out, doc = _report_run(tmp_path, body=PASSING + MALFORMED)
    assert out.returncode == FAILED, out.stdout[-2000:]
    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
    assert {r["id"]: r["status"] for r in doc["claims"]} == {"OK": "pass", "M": "error"}


def test_ioi_names_used_are_recorded(tmp_path):
    _, doc = _report_run(tmp_path, "--mc-ioi-names", "Tom,Sue")
    assert doc["run"]["ioi_names"] == ["Tom", "Sue"]


def test_three_report_files_are_replaced_together(tmp_path):
    """A failure to replace one file puts the others back: all old or all new."""
    from mechcheck.report import ReportError, replace_together

    rep = tmp_path / "rep"
    rep.mkdir()
    for name in ("results.json", "summary.md"):
        (rep / name).write_text("old")
    (rep / "index.html").mkdir()  # replacing it must fail
    (rep / "index.html" / "keep").write_text("")
    with pytest.raises(ReportError, match="previous report is unchanged"):
        replace_together(rep, {"results.json": "new", "summary.md": "new", "index.html": "new"})
    assert (rep / "results.json").read_text() == (rep / "summary.md").read_text() == "old"
    assert sorted(p.name for p in rep.iterdir()) == ["index.html", "results.json", "summary.md"]
    replace_together(rep / "fresh", {"results.json": "new", "summary.md": "new"})
    assert sorted(p.name for p in (rep / "fresh").iterdir()) == ["results.json", "summary.md"]


@pytest.mark.parametrize("target, message", [
    ("{tmp}/file.txt/standins", "is a file, so no folder can be made under it"),
    ("/proc/mechcheck-standins", "mechcheck standins /proc/mechcheck-standins: cannot write in /proc"),
])
def test_standins_into_an_unwritable_folder(tmp_path, target, message):
    (tmp_path / "file.txt").write_text("x")
    out = _run([sys.executable, "-m", "mechcheck", "standins", target.format(tmp=tmp_path)], tmp_path, {})
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("doc, message", [
    ({}, "not a mechcheck results.json (no 'schema' field)"),
    ([], "not a mechcheck results.json (no 'schema' field)"),
    ({"claims": []}, "not a mechcheck results.json (no 'schema' field)"),
    ({"schema": "mechcheck.results/1", "claims": []}, "schema 'mechcheck.results/1'"),
    ({"schema": "SCHEMA", "claims": [{"nodeid": "a", "status": "maybe"}]}, "a has unknown status 'maybe'"),
    ("not json", "cannot read"),
])
def test_diff_bad_input_exits_2_with_one_line(tmp_path, doc, message):
    from mechcheck.report import SCHEMA

    good = {"schema": SCHEMA, "run": {}, "claims": []}
    (tmp_path / "base.json").write_text(json.dumps(good))
    bad = tmp_path / "new.json"
    if isinstance(doc, dict) and doc.get("schema") == "SCHEMA":
        doc = {**doc, "schema": SCHEMA}
    bad.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    out = _run([sys.executable, "-m", "mechcheck", "diff", "base.json", "new.json"], tmp_path, {})
    assert out.returncode == DIFF_BAD, out.stdout + out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
