"""Bad input never becomes a verdict: each case is one clear line at the right moment, the right
exit code, no traceback, no INTERNALERROR, and no report lost.

The table CASES reads: input -> one line -> exit code -> report state (the records of the claims
that did run, or no report at all); every report written is validated against
results.schema.json with jsonschema. Rows run pytest on a tiny claim file written into a pytester
folder, in-process (pytester.runpytest_inprocess: the plugin, its options, hooks and report are
the same code a user's `pytest` runs), except the rows marked "subprocess": those change the
environment a library reads once at import (HF_HOME, NLTK_DATA, the tokenizer cache), which only a
fresh interpreter sees. The toy model keeps them fast. The `mechcheck merge`, `diff` and
`standins` cases call the command's main() in-process: their one line, exit code and files are
what the console script gives (tests/test_merge.py and test_diff.py run the real shards)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from mechcheck import report
from mechcheck.__main__ import main as mechcheck_main
from mechcheck.models import finite

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
TOY = "mechcheck/toy-reverse-increment"
TS1M = "roneneldan/TinyStories-1M"
USAGE, FAILED, NO_TESTS, CMD_BAD = 4, 1, 5, 2

HEADER = f"""
import pytest
from mechcheck.core.claim import Source, at_least, within
SRC = Source("doc", "where")
def claim(**kw):
    return pytest.mark.claim(**{{"id": "C", "statement": "s", "source": SRC, "model": "{TOY}",
                                 "expect": at_least(0.5), **kw}})
"""
PASSING = """
@claim(id="OK")
def test_ok(measure):
    measure.record(0.9)
"""
FAILING = """
@claim(id="LOW")
def test_low(measure):
    measure.record(0.1)
"""
MALFORMED = """
@pytest.mark.claim(id="M", statement="s", model="x")
def test_m(measure):
    measure.record(1.0)
"""
NAN_TOY = """
from mechcheck.studies import toy_circuit
@claim(id="NAN", expect=at_least(0.4))
def test_nan_checkpoint(measure, mc_device, mc_load):
    loaded = mc_load("mechcheck/toy-reverse-increment", checkpoint=r"{ckpt}")
    measure.record(**toy_circuit.ablation_drop(toy_circuit.ToyRun(loaded.bridge, mc_device), "mlp.W_out"))
"""
LOAD_TOY = """
@claim(id="LOAD")
def test_load(measure, mc_load):
    measure.record(float(mc_load("mechcheck/toy-reverse-increment", checkpoint=r"{ckpt}").bridge.cfg.n_layers))
"""
LOAD_1M = f"""
@claim(id="HF", model="{TS1M}", expect=at_least(0.0))
def test_hf(measure, mc_load):
    measure.record(float(mc_load("{TS1M}").bridge.cfg.n_layers))
"""
TOK = "\ndef test_tok(mc_tokenizer):\n    pass\n"


def _toy_state():
    from safetensors.torch import load_file

    from mechcheck.models import toy

    return load_file(str(toy.get_checkpoint(toy.TrainConfig(seed=0))))


def _save(state, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file(state, str(path))
    return path


def _nan_toy(tmp: Path) -> Path:
    """The shipped toy seed 0 with one NaN weight."""
    state = _toy_state()
    name = next(k for k in state if k.endswith("mlp.fc_out.weight"))
    state[name][0, 0] = float("nan")
    return _save(state, tmp / "nan.safetensors")


def _toy_without_head(tmp: Path) -> Path:
    state = _toy_state()
    del state["head.weight"]
    return _save(state, tmp / "nohead.safetensors")


def _toy_with_extra(tmp: Path) -> Path:
    state = _toy_state()
    state["extra.weight"] = state["head.weight"].clone()
    return _save(state, tmp / "extra.safetensors")


def _hf_1m(tmp: Path, keep) -> Path:
    """An exact-config TinyStories-1M stand-in whose weights keep only the tensors `keep` accepts."""
    from safetensors.torch import load_file

    from mechcheck import models

    folder = models.save_random(TS1M, tmp / "ts1m")
    state = load_file(str(folder / "model.safetensors"))
    kept = {k: v for i, (k, v) in enumerate(sorted(state.items())) if keep(i, k)}
    _save(kept, folder / "model.safetensors")
    return folder


def _data_dir(tmp: Path, tokenizer: str | None = None) -> Path:
    data = tmp / "data"
    (data / "tokenizer" / "gpt2").mkdir(parents=True)
    if tokenizer is not None:
        (data / "tokenizer" / "gpt2" / "tokenizer.json").write_text(tokenizer)
    return data


MAKE = {  # placeholders a row's body, arguments or message may use -> what makes them
    "{ckpt_nan}": _nan_toy, "{ckpt_nohead}": _toy_without_head, "{ckpt_extra}": _toy_with_extra,
    "{hf_no_layer3}": lambda t: _hf_1m(t, lambda i, k: ".h.3." not in k),
    "{hf_one_tensor}": lambda t: _hf_1m(t, lambda i, k: k == "transformer.h.0.ln_1.weight"),
    "{data_bad_tok}": lambda t: _data_dir(t, tokenizer='{"not": "a tokenizer"'),
    "{data_no_tagger}": lambda t: _data_dir(t),
}
NONE = None  # report state: no report written (the default folder does not exist)

# (id, claim body, extra args, environment changes, one-line message, exit code, report state:
#  NONE or the (id, status) records of results.json, sorted; "subprocess" rows run in a fresh interpreter)
CASES = [
    ("report-is-a-file", PASSING, ["--mc-report", "{tmp}/file.txt"], {},
     "--mc-report {tmp}/file.txt: is an existing file, not a folder", USAGE, NONE),
    ("report-under-a-file", PASSING, ["--mc-report", "{tmp}/file.txt/rep"], {},
     "is a file, so no folder can be made under it", USAGE, NONE),
    ("report-unwritable", PASSING, ["--mc-report", "/proc/mechcheck-report"], {},
     "--mc-report /proc/mechcheck-report: cannot write in /proc", USAGE, NONE),
    ("report-name-is-a-folder", PASSING, ["--mc-report", "{tmp}/rep"], {},
     "rep/index.html is a folder; the report needs that name for a file", USAGE, NONE),
    ("report-empty", PASSING, ["--mc-report", ""], {}, "--mc-report '' names no directory", USAGE, NONE),
    ("model-twice", PASSING, ["--mc-model", f"{TOY}={{tmp}}/file.txt", "--mc-model", f"{TOY}={{tmp}}/file.txt"], {},
     f"--mc-model {TOY}=... given 2 times; give each model once", USAGE, NONE),
    ("model-and-series", PASSING, ["--mc-model", f"{TOY}={{tmp}}/file.txt", "--mc-series", f"{TOY}={{tmp}}"], {},
     f"--mc-model {TOY}=... and --mc-series {TOY}=... both given; give one checkpoint (--mc-model) or one "
     "series (--mc-series) per model", USAGE, NONE),
    ("ioi-names-empty-item", PASSING, ["--mc-ioi-names", "John,,Mary"], {}, "has an empty name", USAGE, NONE),
    ("ioi-names-empty", PASSING, ["--mc-ioi-names", ""], {}, "--mc-ioi-names is empty", USAGE, NONE),
    ("ioi-names-one", PASSING, ["--mc-ioi-names", "John"], {}, "need at least two distinct names", USAGE, NONE),
    ("ioi-names-duplicate", PASSING, ["--mc-ioi-names", "John,Mary,John"], {}, "repeats John; each name once",
     USAGE, NONE),
    ("k-selects-nothing", PASSING, ["-k", "nonexistent"], {},
     "mechcheck: no claim ran (1 claim test(s) deselected), so no report was written; {tmp}/reports/latest is "
     "left as it was", NO_TESTS, NONE),
    ("offline-no-data", TOK, [], {"MECHCHECK_DATA": None, "subprocess": True},
     "the GPT-2 tokenizer (gpt2) is not available offline (HF_HUB_OFFLINE=1 and it is not in the HF cache); "
     "give the data directory with --mc-data DIR or $MECHCHECK_DATA", FAILED, NONE),
    ("corrupt-tokenizer", TOK, ["--mc-data", "{data_bad_tok}"], {"subprocess": True},
     "{data_bad_tok}/tokenizer/gpt2/tokenizer.json: not a readable tokenizer.json", FAILED, NONE),
    ("missing-tagger", "\nfrom mechcheck.data import tagging\ndef test_tagger(mc_data):\n    tagging.use_data_dir(mc_data)\n",
     ["--mc-data", "{data_no_tagger}"], {"subprocess": True},
     "NLTK tagger averaged_perceptron_tagger_eng not found (looked in {data_no_tagger}/nltk_data/taggers/"
     "averaged_perceptron_tagger_eng and", FAILED, NONE),
    ("unknown-model-in-marker", PASSING + '\n@claim(id="X", model="no such/model")\ndef test_x(measure):\n    measure.record(1.0)\n',
     [], {}, "ClaimError: @pytest.mark.claim(model=...): unknown model 'no such/model': neither a registered name", FAILED,
     [("OK", "pass"), ("X", "error")]),
    ("record-dict", PASSING + '\n@claim(id="D")\ndef test_d(measure):\n    measure.record({"a": 1.0})\n', [], {},
     "ClaimError: measured value must be a real number or an array of numbers, got dict", FAILED,
     [("D", "error"), ("OK", "pass")]),
    ("record-string", PASSING + '\n@claim(id="S")\ndef test_s(measure):\n    measure.record("0.7")\n', [], {},
     "ClaimError: measured value must be a real number or an array of numbers, got str '0.7'", FAILED,
     [("OK", "pass"), ("S", "error")]),
    ("malformed-marker", PASSING + MALFORMED, [], {}, "ClaimError: test_claims.py::test_m: bad @pytest.mark.claim",
     FAILED, [("M", "error"), ("OK", "pass")]),
    ("nan-threshold", PASSING + '\n@claim(id="NT", expect=at_least(float("nan")))\ndef test_nt(measure):\n    measure.record(0.9)\n',
     [], {}, "ClaimError: test_claims.py::test_nt: @pytest.mark.claim(id='NT'): expect=>= has a non-finite "
     "threshold=nan; such a declaration cannot be decided", FAILED, [("NT", "error"), ("OK", "pass")]),
    ("inf-threshold", PASSING + '\n@claim(id="IT", expect=at_least(float("inf")))\ndef test_it(measure):\n    measure.record(0.9)\n',
     [], {}, "expect=>= has a non-finite threshold=inf", FAILED, [("IT", "error"), ("OK", "pass")]),
    ("nan-published", PASSING + '\n@claim(id="NP", published=float("nan"))\ndef test_np(measure):\n    measure.record(0.9)\n',
     [], {}, "ClaimError: test_claims.py::test_np: @pytest.mark.claim(id='NP'): published=nan is not finite",
     FAILED, [("NP", "error"), ("OK", "pass")]),
    ("negative-tolerance", PASSING + '\n@claim(id="NEG", expect=within(0.9, -0.1))\ndef test_neg(measure):\n    measure.record(0.9)\n',
     [], {}, "@pytest.mark.claim(id='NEG'): expect=within(0.9, -0.1) has a negative tolerance", FAILED,
     [("NEG", "error"), ("OK", "pass")]),
    ("two-markers", PASSING + '\n@claim(id="TWO")\n@claim(id="TWO", statement="another")\ndef test_two(measure):\n    measure.record(0.9)\n',
     [], {}, "ClaimError: test_claims.py::test_two: 2 @pytest.mark.claim markers on one test (ids 'TWO', 'TWO'); "
     "one claim per test", FAILED, [("OK", "pass"), ("TWO", "error")]),
    ("same-claim-twice", PASSING + '\n@claim(id="OK")\ndef test_ok_again(measure):\n    measure.record(0.9)\n',
     [], {}, f"ClaimError: test_claims.py::test_ok_again: claim 'OK' on {TOY} is also declared by "
     "test_claims.py::test_ok; give each claim its own id", FAILED, [("OK", "error"), ("OK", "pass")]),
    ("nan-ci-bound", PASSING + '\n@claim(id="NCI")\ndef test_nci(measure):\n    measure.record(0.9, ci=(float("nan"), 1.0))\n',
     [], {}, "ClaimError: NCI: the CI [nan, 1.0] is not finite; cannot decide the claim on it", FAILED,
     [("NCI", "error"), ("OK", "pass")]),
    ("nan-checkpoint", NAN_TOY.replace("{ckpt}", "{ckpt_nan}"), ["--mc-claims-nonfatal"], {},
     f"NonFiniteError: non-finite activations (NaN or inf) in {TOY}, first at hook blocks.0.mlp.out.hook_out",
     FAILED, [("NAN", "error")]),
    ("toy-missing-tensor", PASSING + LOAD_TOY.replace("{ckpt}", "{ckpt_nohead}"), [], {},
     "CheckpointError: {ckpt_nohead}: not a toy reverse+increment checkpoint (missing 1 of 21 tensors: head.weight)",
     FAILED, [("LOAD", "error"), ("OK", "pass")]),
    ("toy-extra-tensor", PASSING + LOAD_TOY.replace("{ckpt}", "{ckpt_extra}"), [], {},
     "MechcheckWarning: {ckpt_extra}: 1 tensors that toy reverse+increment does not use were ignored (extra.weight)",
     0, [("LOAD", "pass"), ("OK", "pass")]),
    ("hf-missing-layer", PASSING + LOAD_1M, ["--mc-model", f"{TS1M}={{hf_no_layer3}}"], {},
     f"CheckpointError: {{hf_no_layer3}}: not a {TS1M} checkpoint (missing 13 of 108 tensors: "
     "transformer.h.3.attn.attention.k_proj.weight, transformer.h.3.attn.attention.out_proj.bias, "
     "transformer.h.3.attn.attention.out_proj.weight, transformer.h.3.attn.attention.q_proj.weight and 9 more)",
     FAILED, [("HF", "error"), ("OK", "pass")]),
    ("hf-one-tensor-of-all", PASSING + LOAD_1M, ["--mc-model", f"{TS1M}={{hf_one_tensor}}"], {},
     f"CheckpointError: {{hf_one_tensor}}: not a {TS1M} checkpoint (missing 10",  # transformers: 107 or all 108
     FAILED, [("HF", "error"), ("OK", "pass")]),
]


@pytest.fixture(autouse=True)
def _no_watch_from_an_earlier_run():
    """In-process runs share this interpreter: the NaN watch on an earlier run's model
    (mechcheck.models.finite keeps one per live bridge, process-wide) must not reach the next run."""
    finite._WATCHES.clear()
    yield
    finite._WATCHES.clear()


def _schema_valid(doc: dict) -> None:
    jsonschema.validate(doc, json.loads(report.SCHEMA_FILE.read_text()))


def _run(pytester, monkeypatch, args, env: dict):
    """pytest on test_claims.py: in-process unless the row changes what a library reads at import."""
    env = dict(env)
    fresh = env.pop("subprocess", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if fresh:
        monkeypatch.setenv("HF_HOME", str(pytester.path / "hf"))
        monkeypatch.setenv("NLTK_DATA", str(pytester.path / "nltk"))
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    argv = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args, "test_claims.py"]
    if not fresh:  # the plugin is already imported in this interpreter: pytest says it cannot rewrite it
        argv = ["-W", "ignore::pytest.PytestAssertRewriteWarning", *argv]
    result = pytester.runpytest_subprocess(*argv, timeout=600) if fresh else pytester.runpytest_inprocess(*argv)
    return result, "\n".join(result.outlines + result.errlines)


@pytest.mark.parametrize("body, args, env, message, code, records", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(pytester, monkeypatch, body, args, env, message, code, records):
    tmp = pytester.path
    (tmp / "file.txt").write_text("not a folder\n")
    (tmp / "rep" / "index.html").mkdir(parents=True)
    (tmp / "rep" / "index.html" / "x").write_text("")
    subs = {"{tmp}": str(tmp)}
    for key, make in MAKE.items():
        if any(key in x for x in (body, message, *args)):
            subs[key] = str(Path(make(tmp)).resolve())
    if "{data_bad_tok}" in subs:
        env = {**env, "MECHCHECK_CACHE": str(tmp / "cache")}

    def fill(x: str) -> str:
        for key, value in subs.items():
            x = x.replace(key, value)
        return x

    (tmp / "test_claims.py").write_text(HEADER + fill(body))
    result, text = _run(pytester, monkeypatch, [fill(a) for a in args], env)
    message = fill(message)
    assert result.ret == code, text[-3000:]
    assert message in text, text[-3000:]
    assert "Traceback" not in text and "INTERNALERROR" not in text, text[-3000:]
    line = next(x for x in text.splitlines() if message in x)
    assert len(line) < 500, line
    if code == FAILED and "test_ok(" in body:
        assert "1 passed" in text  # the rest of the session ran
    results = tmp / "reports" / "latest" / "results.json"
    if records is NONE:
        assert not results.exists()
        return
    doc = json.loads(results.read_text())
    _schema_valid(doc)  # every file mechcheck writes validates against its schema
    assert sorted((r["id"], r["status"]) for r in doc["claims"]) == records
    assert (tmp / "reports" / "latest" / "summary.md").exists() and (tmp / "reports" / "latest" / "index.html").exists()


def test_nan_checkpoint_reported_as_error_with_strict_json(pytester):
    """In-process (the plugin's decision and writer are the point, not the interpreter): the NaN
    checkpoint is an error in results.json (never a FAIL with invented values), and non-finite
    numbers a claim recorded are null with a reason: strict JSON that validates against the schema."""
    body = NAN_TOY.replace("{ckpt}", str(_nan_toy(pytester.path))) + """
@claim(id="NANDETAIL", model="mechcheck/induction-organism")  # not the NaN toy: mc_load watches per model name
def test_nan_detail(measure):
    measure.record(0.9, spread=float("nan"), per_item=[1.0, float("inf")])
"""
    (pytester.path / "test_claims.py").write_text(HEADER + body)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--mc-report", "rep",
                                          "--mc-claims-nonfatal", "test_claims.py")
    assert result.ret == FAILED, "\n".join(result.outlines[-40:])

    def refuse(name):
        raise ValueError(f"bare {name} in results.json")

    doc = json.loads((pytester.path / "rep" / "results.json").read_text(), parse_constant=refuse)
    _schema_valid(doc)
    recs = {r["id"]: r for r in doc["claims"]}
    assert recs["NAN"]["status"] == "error" and "blocks.0.mlp.out.hook_out" in recs["NAN"]["message"]
    assert recs["NAN"]["measured"] is None  # no value computed from NaN activations is shown
    detail = recs["NANDETAIL"]["measured"]
    assert recs["NANDETAIL"]["status"] == "pass"
    assert detail["details"] == {"spread": None, "per_item": [1.0, None]}
    assert detail["nonfinite"] == "non-finite numbers written as null at: details.spread, details.per_item[1]"


def _report_run(pytester, *args, body=FAILING + PASSING):
    (pytester.path / "test_claims.py").write_text(HEADER + body)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                                          "--mc-report", "rep", *args, "test_claims.py")
    doc = json.loads((pytester.path / "rep" / "results.json").read_text())
    _schema_valid(doc)
    return result, doc


@pytest.mark.parametrize("args, reason", [
    (["-x"], "stopped early"),
    (["-k", "ok"], "1 claim test(s) deselected"),
    ([], None),
])
def test_partial_runs_say_so(pytester, args, reason):
    """In-process: run.partial and PARTIAL RUN come from the plugin's session hooks."""
    result, doc = _report_run(pytester, *args)
    assert result.ret == (0 if args == ["-k", "ok"] else FAILED)
    partial = doc["run"]["partial"]
    assert (partial is None) if reason is None else (reason in partial), partial
    summary = (pytester.path / "rep" / "summary.md").read_text()
    assert ("PARTIAL RUN" in summary) is (reason is not None)


def test_malformed_claim_is_an_error_in_the_report(pytester):
    """In-process: the malformed claim's record is an error beside the passing one."""
    result, doc = _report_run(pytester, body=PASSING + MALFORMED)
    assert result.ret == FAILED
    assert {r["id"]: r["status"] for r in doc["claims"]} == {"OK": "pass", "M": "error"}


def test_ioi_names_used_are_recorded(pytester):
    """In-process: --mc-ioi-names reaches results.json."""
    _, doc = _report_run(pytester, "--mc-ioi-names", "Tom,Sue")
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


# ------------------------------------------------------------------ the writer never loses the report

def record(nodeid: str, cid: str, status: str = "pass", **changes) -> dict:
    """A schema-valid claim record (what the plugin writes), with `changes`."""
    r = {"nodeid": nodeid, "id": cid, "statement": "s", "source": {"document": "doc", "where": "w"},
         "model": {"name": TOY}, "expected": {"op": ">=", "text": ">= 0.5", "threshold": 0.5}, "published": None,
         "tolerance": "", "param": None, "measured": {"value": 0.9, "text": "0.9", "ci": [0.8, 1.0], "n": 10, "details": {}},
         "status": status, "message": "", "timing": {"setup_s": 0.0, "call_s": 0.1}, "seed": None}
    return {**r, **changes}


def run_info(**changes) -> dict:
    return {"device": "cpu", "python": "3.11", "torch": "2.13.0", "transformer_lens": "4.3", "overrides": {},
            "data_dir": None, "ioi_names": ["John", "Mary"], "partial": None, **changes}


def test_writer_never_loses_the_report(tmp_path):
    """A NaN threshold, published value or CI bound that reaches the writer is null in strict,
    schema-valid JSON; a record the summary cannot render costs that page (which says so), not
    results.json."""
    odd = record("t.py::test_odd", "ODD", published=float("nan"),
                 expected={"op": ">=", "text": ">= nan", "threshold": float("nan")},
                 measured={"value": 0.9, "text": "0.9", "ci": [None, 1.0], "n": None, "details": {}})
    unrenderable = record("t.py::test_bad", "BAD", timing={"setup_s": 0.0, "call_s": 0.1}, source=None)
    doc = report.write(tmp_path / "rep", [record("t.py::test_ok", "OK"), odd, unrenderable], run_info(), "now")
    text = (tmp_path / "rep" / "results.json").read_text()
    assert "NaN" not in text and json.loads(text) == doc
    recs = {r["id"]: r for r in doc["claims"]}
    assert recs["ODD"]["published"] is None and recs["ODD"]["expected"]["threshold"] is None
    _schema_valid({**doc, "claims": [recs["OK"], recs["ODD"]]})  # BAD's source is not a source: not schema-valid
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert summary.startswith("# mechcheck report") and "could not be rendered (TypeError" in summary
    assert "could not be rendered" in (tmp_path / "rep" / "index.html").read_text()


# ------------------------------------------------------------------ mechcheck merge

def _shard(tmp: Path, name: str, records: list[dict], group: int | None = None, splits: int = 3,
           suite: str = "a" * 64, run_id: str | None = None, **run) -> Path:
    shard = {"run_id": run_id, "suite": suite, "splits": splits, "group": group} if group else None
    info = run_info(partial=f"shard {group} of {splits}" if group else None, **run)
    report.write(tmp / name, records, {**info, "shard": shard} if shard else info, "now")
    return tmp / name


def _damaged(tmp: Path, change) -> Path:
    """Shard 2 of a good split, its results.json edited by hand (`change(doc)`, or text -> text)."""
    path = _shard(tmp, "shard2", [record("t.py::test_b", "B")], group=2) / "results.json"
    if isinstance(change, str):
        path.write_text(path.read_text().replace(*change.split(" -> ")))
    else:
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))
    return path.parent


def _set(path: str, value):
    def change(doc):
        *keys, last = path.split(".")
        target = doc
        for k in keys:
            target = target[int(k)] if k.isdigit() else target[k]
        if value is KeyError:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return change


# (case, shard 2 edited, one line)
DAMAGED = [
    ("unknown-status", _set("claims.0.status", "maybe"),
     "claims[0] (t.py::test_b): status is 'maybe', expected one of pass, fail, inconclusive, skip, error, not-encoded"),
    ("no-id", _set("claims.0.id", KeyError), "claims[0] (t.py::test_b): the record has no 'id'"),
    ("no-nodeid", _set("claims.0.nodeid", KeyError), "claims[0]: the record has no 'nodeid'"),
    ("no-model", _set("claims.0.model", KeyError), "claims[0] (t.py::test_b): the record has no 'model'"),
    ("no-timing", _set("claims.0.timing", KeyError), "claims[0] (t.py::test_b): the record has no 'timing'"),
    ("expected-a-string", _set("claims.0.expected", ">= 0.5"),
     "claims[0] (t.py::test_b): expected is '>= 0.5', expected object"),
    ("measured-a-string", _set("claims.0.measured", "0.9"),
     "claims[0] (t.py::test_b): measured is '0.9', expected object"),
    ("null-record", _set("claims.0", None), "claims[0] is None, expected a claim record (object)"),
    ("nan", '"value": 0.9 -> "value": NaN', "not valid JSON (NaN is not strict JSON"),
    ("step-a-string", _set("claims.0.step", "250"), "claims[0] (t.py::test_b): step is '250', expected integer"),
]


@pytest.mark.parametrize("change, line", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_damaged_shard_is_one_line_and_nothing_is_written(tmp_path, capsys, change, line):
    """In-process main(): a hand-edited or damaged shard is one line naming record and field, exit 2."""
    good = _shard(tmp_path, "shard1", [record("t.py::test_a", "A")], group=1)
    bad = _damaged(tmp_path, change)
    assert mechcheck_main(["merge", str(tmp_path / "out"), str(good), str(bad)]) == CMD_BAD
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"mechcheck merge: {bad}/results.json: ") and line in out, out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make_out, line", [
    (lambda t: (t / "file.txt").write_text("x") and t / "file.txt", "OUT {tmp}/file.txt: is an existing file, not a folder"),
    (lambda t: Path("/proc/mechcheck-merge"), "OUT /proc/mechcheck-merge: cannot write in /proc"),
])
def test_merge_into_a_file_or_an_unwritable_folder_is_one_line(tmp_path, capsys, make_out, line):
    parts = [_shard(tmp_path, f"s{g}", [record(f"t.py::test_{g}", f"C{g}")], group=g) for g in (1, 2, 3)]
    out = make_out(tmp_path)
    assert mechcheck_main(["merge", str(out), *map(str, parts)]) == CMD_BAD
    text = capsys.readouterr().out
    assert text == f"mechcheck merge: {line.format(tmp=tmp_path)} (Permission denied)\n" or (
        text.count("\n") == 1 and line.format(tmp=tmp_path) in text), text


@pytest.mark.parametrize("groups, partial", [
    ([(1, "a"), (2, "a"), (3, "a")], None),
    ([(1, "a"), (3, "a")], "group(s) 2 of 3 missing"),
    ([(1, "a"), (2, "b"), (3, "a")], "shards of 2 different splits, not one complete split "
                                     "(group(s) 1, 3 of 3 (suite aaaaaaaa); group(s) 2 of 3 (suite bbbbbbbb))"),
])
def test_merge_is_partial_unless_every_group_of_one_split_is_there(tmp_path, capsys, groups, partial):
    """The issue's case: toy shards 1 and 3 plus an organism shard 2 (another suite, same settings)
    are not a complete run. The merged results.json validates against the schema."""
    parts = [_shard(tmp_path, f"s{g}", [record(f"t.py::test_{g}", f"C{g}")], group=g, suite=s * 64) for g, s in groups]
    assert mechcheck_main(["merge", str(tmp_path / "out"), *map(str, parts)]) == 0
    line = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    _schema_valid(doc)
    assert doc["run"]["partial"] == partial and "shard" not in doc["run"]
    assert (f"(PARTIAL: {partial})" in line) if partial else "PARTIAL" not in line
    assert ("PARTIAL RUN" in (tmp_path / "out" / "summary.md").read_text()) is (partial is not None)


# ------------------------------------------------------------------ mechcheck diff

def _diff_doc(*records) -> dict:
    return report.build(list(records), run_info())


DIFF_BAD_INPUT = [
    ({}, "not a mechcheck results.json (no 'schema' field)"),
    ([], "not a mechcheck results.json (no 'schema' field)"),
    ({"claims": []}, "not a mechcheck results.json (no 'schema' field)"),
    ({"schema": "mechcheck.results/1", "claims": []}, "schema 'mechcheck.results/1'"),
    ({"schema": "SCHEMA", "claims": [{"nodeid": "a", "status": "maybe"}]}, "a has unknown status 'maybe'"),
    ({"schema": "SCHEMA", "claims": [{"nodeid": "a", "status": "pass", "measured": "0.9"}]},
     "NEW: a: measured is str '0.9', expected an object or null"),
    ({"schema": "SCHEMA", "claims": [{"nodeid": "a", "status": "pass", "measured": {"value": "0.9"}}]},
     "NEW: a: measured.value is str '0.9', expected a number"),
    ("not json", "cannot read"),
    ('{"schema": "SCHEMA", "claims": [{"nodeid": "a", "status": "pass", "measured": {"value": NaN}}]}',
     "NaN is not strict JSON"),
]


@pytest.mark.parametrize("doc, message", DIFF_BAD_INPUT, ids=[f"diff-{i}" for i in range(len(DIFF_BAD_INPUT))])
def test_diff_bad_input_exits_2_with_one_line(tmp_path, capsys, doc, message):
    """In-process main(): not a results.json of this version is one line on stderr and exit 2."""
    (tmp_path / "base.json").write_text(json.dumps({"schema": report.SCHEMA, "run": {}, "claims": []}))
    text = doc.replace("SCHEMA", report.SCHEMA) if isinstance(doc, str) else json.dumps(doc).replace(
        '"SCHEMA"', json.dumps(report.SCHEMA))
    (tmp_path / "new.json").write_text(text)
    assert mechcheck_main(["diff", str(tmp_path / "base.json"), str(tmp_path / "new.json")]) == CMD_BAD
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("new, code, strict_code, line", [
    ([record("t.py::test_a", "A", measured={"value": None, "text": "nan", "ci": None, "n": None, "details": {},
                                             "nonfinite": "non-finite numbers written as null at: value"})],
     0, 1, "A: measured value 0.9 in BASE, non-finite numbers written as null at: value in NEW"),
    ([record("other.py::test_renamed", "A", status="error", measured=None, message="CheckpointError: x")],
     1, 1, "regressions (1):\n  A: pass -> error (mechcheck/toy-reverse-increment) CheckpointError: x"),
    ([record("t.py::test_a", "A", status="error", measured=None)], 1, 1, "A: fail -> error"),
])
def test_diff_sees_broken_new_runs(tmp_path, capsys, new, code, strict_code, line):
    """In-process main(): a value NEW lost (NaN written as null) is a change (fails with --strict);
    an ERROR for a claim BASE decided is a regression, also under another test id."""
    base = [record("t.py::test_a", "A", status="fail" if "fail ->" in line else "pass")]
    (tmp_path / "base.json").write_text(json.dumps(_diff_doc(*base)))
    (tmp_path / "new.json").write_text(json.dumps(_diff_doc(*new)))
    argv = ["diff", str(tmp_path / "base.json"), str(tmp_path / "new.json")]
    assert mechcheck_main(argv) == code
    assert line in capsys.readouterr().out
    assert mechcheck_main([*argv, "--strict"]) == strict_code


# ------------------------------------------------------------------ mechcheck standins

@pytest.mark.parametrize("target, message", [
    ("{tmp}/file.txt/standins", "is a file, so no folder can be made under it"),
    ("/proc/mechcheck-standins", "mechcheck standins /proc/mechcheck-standins: cannot write in /proc"),
])
def test_standins_into_an_unwritable_folder(tmp_path, capsys, target, message):
    """In-process main(): the destination is refused before any checkpoint is built."""
    (tmp_path / "file.txt").write_text("x")
    assert mechcheck_main(["standins", target.format(tmp=tmp_path)]) == CMD_BAD
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
