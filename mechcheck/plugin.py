"""The pytest plugin (entry point `pytest11: mechcheck`).

A claim test carries `@pytest.mark.claim(...)` (see mechcheck.claim.Claim) and records what it
measured with the `measure` fixture; the plugin decides pass/fail in one place, times the call
(set-up reported apart), and at the end of the session writes results.json, summary.md and
index.html.
Records travel on the test reports, so pytest-xdist workers' results reach the controller.
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
from pathlib import Path

import numpy as np
import pytest

from mechcheck import claim as _claim
from mechcheck import models as _models
from mechcheck import report as _report
from mechcheck.data import DataError, data_dir

PROP = "mechcheck"
_CLAIM = pytest.StashKey[_claim.Claim]()
_MEAS = pytest.StashKey["Measurement"]()
_TIMES = pytest.StashKey[dict]()
_EXTRA = pytest.StashKey[list]()
# Errors whose message says everything: reported as one line, no traceback.
ONE_LINE = (_models.ModelError, _claim.ClaimError, _claim.ClaimFailed, DataError, _models.OUT_OF_MEMORY)


def pytest_addoption(parser):
    g = parser.getgroup("mechcheck", "mechcheck: executable interpretability claims")
    g.addoption("--mc-report", metavar="DIR", default=None,
                help="write results.json and summary.md to DIR (default: <rootdir>/reports/latest when claims ran)")
    g.addoption("--mc-no-report", action="store_true", help="do not write a report")
    g.addoption("--mc-device", choices=["auto", "cpu", "cuda"], default="auto",
                help="device for the models (auto: CUDA when available, else CPU)")
    g.addoption("--mc-model", metavar="NAME=PATH", action="append", default=[],
                help="use the local checkpoint PATH for model NAME (repeatable)")
    g.addoption("--mc-claims-nonfatal", action="store_true",
                help="a claim that does not hold is reported as xfail (FAIL in the report) instead of "
                "failing the run; errors still fail")
    g.addoption("--mc-no-shared-cache", action="store_true",
                help="every claim computes its own forward passes instead of sharing one per model and "
                "input set (for the benchmark; results are the same)")
    g.addoption("--mc-ioi-names", metavar="NAME,NAME,...", default=None,
                help="names of the IOI prompt set (default: mechcheck.ioi.NAMES); fewer names, fewer prompts")
    g.addoption("--mc-data", metavar="DIR", default=None,
                help="offline data directory (tokenizer, NLTK tagger, TinyStories text); also $MECHCHECK_DATA")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "claim(id, statement, source, model, expect, published=None, tolerance=''): "
        "a published claim this test checks (mechcheck)")
    config.addinivalue_line("markers", "slow: long checks that CI does not select")
    try:
        config._mc_overrides = _models.parse_overrides(config.getoption("mc_model"))
        config._mc_device = _models.pick_device(config.getoption("mc_device"))
        config._mc_data = data_dir(config.getoption("mc_data"))
    except (_models.ModelError, DataError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config._mc_records = []
    config.pluginmanager.register(_Collector(config._mc_records), "mechcheck-collector")


def _claim_of(item) -> _claim.Claim | None:
    mark = item.get_closest_marker("claim")
    if mark is None:
        return None
    kw = dict(mark.kwargs)
    try:
        c = _claim.Claim(**kw)
    except TypeError as exc:
        raise pytest.UsageError(f"{item.nodeid}: bad @pytest.mark.claim ({exc})") from None
    if not isinstance(c.expect, _claim.Expectation) or not isinstance(c.source, _claim.Source):
        raise pytest.UsageError(f"{item.nodeid}: claim needs expect=<Expectation> and source=Source(...)")
    return c


def _model_name(item, model: str) -> str:
    """The claim's model, or the model a parametrization picks (a registry name among its params)."""
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        if isinstance(value, str) and value in _models.REGISTRY:
            return value
    return model


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config, items):
    modules_seen = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module not in modules_seen:
            modules_seen.add(module)
            # NOT_ENCODED statements ride on the module's first selected test (one record, xdist-safe)
            extra = [n.record(item.nodeid.split("::")[0]) for n in getattr(module, "NOT_ENCODED", [])]
            if extra:
                item.stash[_EXTRA] = extra
        c = _claim_of(item)
        if c is not None:
            item.stash[_CLAIM] = c
            _models.spec(c.model)  # an unknown model name is a collection-time error


def pytest_itemcollected(item):
    """xdist --dist loadgroup: all claims on one model go to one worker, which loads it once.
    Marked at collection, before xdist reads the groups in its own modifyitems hook. (xdist 3.8
    under pytest 9 was seen not to honour groups; the README recommends --dist loadfile.)"""
    mark = item.get_closest_marker("claim")
    if mark is not None and isinstance(mark.kwargs.get("model"), str):
        item.add_marker(pytest.mark.xdist_group(_model_name(item, mark.kwargs["model"]).replace("/", "_")))


class Measurement:
    """What a claim test measured. `record(value, ci=..., **details)`; set `.model` and `.seed`."""

    def __init__(self):
        self.value = None
        self.ci = None
        self.p = None
        self.n = None
        self.details: dict = {}
        self.model: _models.LoadedModel | None = None
        self.seed: int | None = None

    def record(self, value, *, ci=None, p=None, n=None, **details):
        self.value = _plain(value)
        self.ci = None if ci is None else [float(ci[0]), float(ci[1])]
        self.p = None if p is None else float(p)
        self.n = None if n is None else int(n)
        self.details.update({k: _plain(v) for k, v in details.items()})

    def to_json(self, expect: _claim.Expectation) -> dict | None:
        if self.value is None:
            return None
        try:
            text = expect.explain(self.value) if _claim.all_finite(self.value) else _claim.summarize(self.value)
        except _claim.ClaimError:
            text = _claim.summarize(self.value)
        return {"value": self.value, "text": text, "ci": self.ci, "p": self.p, "n": self.n, "details": self.details}


def _plain(x):
    """numpy/torch values -> JSON-ready Python (rounded to 6 significant digits for stable files)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic)):
        return _plain(x.tolist())
    if isinstance(x, float):
        return float(f"{x:.6g}") if np.isfinite(x) else x
    return x


@pytest.fixture
def measure(request) -> Measurement:
    """Record the measured value(s) of this claim; pass/fail is decided by the plugin."""
    m = Measurement()
    request.node.stash[_MEAS] = m
    return m


@pytest.fixture(scope="session")
def mc_device(pytestconfig) -> str:
    return pytestconfig._mc_device


@pytest.fixture(scope="session")
def mc_data(pytestconfig) -> Path | None:
    return pytestconfig._mc_data


@pytest.fixture(scope="session")
def mc_shared(pytestconfig):
    """shared(key, build): one computation per key per session (a model's forward pass over an
    input set, read by every claim on it); with --mc-no-shared-cache, build() on every call."""
    store: dict = {}
    off = pytestconfig.getoption("mc_no_shared_cache")

    def shared(key, build):
        if off:
            return build()
        if key not in store:
            store[key] = build()
        return store[key]

    return shared


@pytest.fixture(scope="session")
def mc_tokenizer(mc_data):
    from mechcheck.data import gpt2_tokenizer

    return gpt2_tokenizer(mc_data)


@pytest.fixture(scope="session")
def mc_load(pytestconfig, mc_device, request):
    """load(name, compat=True) -> LoadedModel, once per session, name and mode; skips when the
    checkpoint is unreachable. compat=True gives HookedTransformer numerics (folded LayerNorm,
    centred writing weights); compat=False the raw HF weights."""
    cache: dict[str, object] = {}

    def load(name: str, compat: bool = True) -> _models.LoadedModel:
        key = (name, compat)
        if key not in cache:
            try:
                path = _models.resolve_hf(name, pytestconfig._mc_overrides.get(name))
                tok = request.getfixturevalue("mc_tokenizer")
                cache[key] = _models.load_hf(name, path, mc_device, tok, compat=compat)
            except (_models.ModelError, DataError) as exc:
                cache[key] = exc
        got = cache[key]
        if isinstance(got, _models.CheckpointUnavailable):
            pytest.skip(str(got))
        if isinstance(got, Exception):
            raise got
        return got

    return load


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    t0 = time.perf_counter()
    try:
        return (yield)
    finally:
        item.stash.setdefault(_TIMES, {})["setup_s"] = time.perf_counter() - t0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    t0 = time.perf_counter()
    try:
        result = yield
    finally:
        item.stash.setdefault(_TIMES, {})["call_s"] = time.perf_counter() - t0
    c = item.stash.get(_CLAIM, None)
    if c is not None:
        m = item.stash.get(_MEAS, None)
        try:
            _claim.decide(c, None if m is None else m.value)
        except _claim.ClaimFailed as exc:
            if item.config.getoption("mc_claims_nonfatal"):
                pytest.xfail(f"claim does not hold: {exc}")
            raise
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ONE_LINE):
        rep.longrepr = _models.error_line(call.excinfo.value)
    if rep.when == "teardown":
        for record in item.stash.get(_EXTRA, []):
            rep.user_properties.append((PROP, record))
    c = item.stash.get(_CLAIM, None)
    if c is None:
        return rep
    state = item.stash.setdefault(_TIMES, {})
    if rep.when == "setup" and rep.outcome != "passed" or rep.when == "call":
        state["status"], state["message"] = _status(rep, call)
    elif rep.when == "teardown":
        if rep.outcome == "failed" and state.get("status") in (None, "pass"):
            state["status"], state["message"] = "error", f"teardown: {call.excinfo.value}"
        rep.user_properties.append((PROP, _record(item, c, state)))
    return rep


def _status(rep, call) -> tuple[str, str]:
    if rep.outcome == "passed":
        return "pass", ""
    if hasattr(rep, "wasxfail"):  # --mc-claims-nonfatal: the claim did not hold
        return "fail", rep.wasxfail.removeprefix("claim does not hold: ")
    if rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        return "skip", reason.removeprefix("Skipped: ")
    exc = call.excinfo.value if call.excinfo else None
    msg = _models.error_line(exc).splitlines()[0][:500] if exc else str(rep.longrepr)[:500]
    if rep.when == "call" and isinstance(exc, _claim.ClaimFailed):
        return "fail", str(exc)
    return "error", msg


def _record(item, c: _claim.Claim, state: dict) -> dict:
    m: Measurement | None = item.stash.get(_MEAS, None)
    model = m.model.info() if m is not None and m.model is not None else {"name": _model_name(item, c.model)}
    param = getattr(getattr(item, "callspec", None), "id", None)
    return {
        "nodeid": item.nodeid,
        **c.to_json(),
        "param": param,
        "model": model,
        "measured": m.to_json(c.expect) if m is not None else None,
        "status": state.get("status", "error"),
        "message": state.get("message", ""),
        "timing": {"setup_s": round(state.get("setup_s", 0.0), 3), "call_s": round(state.get("call_s", 0.0), 3)},
        "seed": m.seed if m is not None else None,
    }


class _Collector:
    """Collects claim records from test reports; on the controller this sees xdist workers' too."""

    def __init__(self, records: list):
        self.records = records

    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == PROP:
                self.records.append(value)


def _run_info(config) -> dict:
    from importlib.metadata import version

    return {
        "device": config._mc_device,
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformer_lens": version("transformer-lens"),
        "overrides": {k: str(v) for k, v in sorted(config._mc_overrides.items())},
        "data_dir": str(config._mc_data) if config._mc_data else None,
    }


def _report_dir(config) -> Path | None:
    if config.getoption("mc_no_report"):
        return None
    opt = config.getoption("mc_report")
    return Path(opt) if opt else Path(config.rootpath) / "reports" / "latest"


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes
        return
    records = config._mc_records
    directory = _report_dir(config)
    if not records or directory is None:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        config._mc_report_note = f"mechcheck: run interrupted; report in {directory} left as it was"
        return
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    _report.write(directory, records, _run_info(config), created)
    config._mc_report_note = f"mechcheck: {len(records)} claims -> {directory}/results.json, summary.md, index.html"


def pytest_terminal_summary(terminalreporter, config):
    records = getattr(config, "_mc_records", [])
    if not records or hasattr(config, "workerinput"):
        return
    tr = terminalreporter
    tr.section("mechcheck claims")
    for r in sorted(records, key=lambda r: r["nodeid"]):
        pid = r["id"] + (f"[{r['param']}]" if r.get("param") else "")
        tr.write_line(f"{r['status'].upper():5} {pid:28} {r['model']['name']:40} "
                      f"measured {_report.fmt_measured(r.get('measured')):28} expected {r['expected']['text']}")
    for cid, model, passed, decided, total in _report.replication(records):
        if total > 1:
            tr.write_line(f"{cid} on {model}: holds in {passed} of {decided} decided ({total} in all)")
    note = getattr(config, "_mc_report_note", None)
    if note:
        tr.write_line(note)
