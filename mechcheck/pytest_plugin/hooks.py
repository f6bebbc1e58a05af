"""The pytest plugin's hooks (entry point `pytest11: mechcheck` = this module); options and run state: mechcheck.pytest_plugin.state.

A claim test carries `@pytest.mark.claim(...)` (mechcheck.core.claim.Claim) and records what it
measured with the `measure` fixture (mechcheck.pytest_plugin.fixtures); the hooks here decide it in one
place (mechcheck.core.claim.decide: pass, fail, or inconclusive when a CI straddles the threshold), time the call (set-up reported apart), and at the end of the session have
mechcheck.pytest_plugin.records / mechcheck.report write results.json, summary.md and index.html.
Every option and the report destination are checked before any claim runs: bad input is one
line and exit != 0, never a verdict.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import time
from pathlib import Path

import pytest

from mechcheck import models as _models
from mechcheck import report as _report
from mechcheck.core import claim as _claim
from mechcheck.core.warning import MechcheckWarning
from mechcheck.data import DataError, data_dir
from mechcheck.models import finite
from mechcheck.pytest_plugin import fixtures
from mechcheck.pytest_plugin import records as _records
from mechcheck.pytest_plugin import scheduling as _scheduling
from mechcheck.pytest_plugin import series as _series
from mechcheck.pytest_plugin.state import (_ALLOWED, _CLAIM_ERROR, _EXTRA, _STATE, _TIMES, CLAIM, CONTROLS, LOADED,
                                           MEASUREMENT, ONE_LINE, RunState, _ioi_names, _report_dir, add_options,
                                           claim_of, is_claim, model_name, run_state)
from mechcheck.testing import ControlRunner


def pytest_addoption(parser, pluginmanager):
    add_options(parser)
    pluginmanager.register(fixtures, "mechcheck-fixtures")


def pytest_configure(config):
    _scheduling.keep_large_blocks_on_the_heap()
    if config.getoption("mc_share_cores"):
        _scheduling.share_cpu_threads()
        if not hasattr(config, "workerinput"):
            config.issue_config_time_warning(MechcheckWarning(
                "--mc-share-cores: each xdist worker's torch uses cores // workers threads, so values may differ "
                "from a serial run in the last digits"), stacklevel=2)

    config.addinivalue_line(
        "markers", "claim(CLAIM) or claim(id, statement, source, model, expect, published=None, tolerance='', "
        "measure=None, controls=(), evidence=None, absence=False): a published claim this test checks (mechcheck)")
    values = config.getoption("mc_model")
    names = [v.partition("=")[0] for v in values]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise pytest.UsageError(f"--mc-model {dup}=... given {names.count(dup)} times; give each model once")
    both = sorted(set(names) & {v.partition("=")[0] for v in config.getoption("mc_series")})
    if both:  # the series would win silently while run.overrides recorded the unused file
        raise pytest.UsageError(f"--mc-model {both[0]}=... and --mc-series {both[0]}=... both given; "
                                "give one checkpoint (--mc-model) or one series (--mc-series) per model")
    try:
        state = RunState(
            overrides=_models.parse_overrides(values),
            device=_scheduling.worker_device(config.getoption("mc_device")),  # xdist worker gwI -> cuda:(I mod G)
            data=data_dir(config.getoption("mc_data")),
            ioi_names=_ioi_names(config.getoption("mc_ioi_names")),
            report_dir=_report_dir(config),
            controls=ControlRunner(config.getoption("mc_controls")),
            dtype=config.getoption("mc_dtype"),
        )
    except (_models.ModelError, DataError) as exc:
        raise pytest.UsageError(str(exc)) from None
    if state.report_dir is not None and config.getoption("mc_report") and not hasattr(config, "workerinput"):
        try:  # an explicit destination is checked before anything runs
            _report.check_destination(state.report_dir)
        except _report.ReportError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[_STATE] = state
    config.pluginmanager.register(_records.Collector(state.records), "mechcheck-collector")
    config.pluginmanager.register(_scheduling.Plugin(config), "mechcheck-scheduling")
    config.pluginmanager.register(_series.Plugin(config), "mechcheck-series")


def pytest_deselected(items):
    if items:
        config = items[0].config
        run_state(config).deselected += sum(is_claim(item) for item in items)


_SUITE = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def suite_fingerprint(session, config, items):
    """Before -k / -m and pytest-split select: what every shard of one split collects (run.shard.suite)."""
    config.stash[_SUITE] = hashlib.sha256("\n".join(sorted(i.nodeid for i in items)).encode()).hexdigest()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    modules_seen = set()
    any_claim = False
    declared: dict[tuple, str] = {}  # (claim id, model, parameters) -> the first test declaring it
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module not in modules_seen:
            modules_seen.add(module)
            # NOT_ENCODED statements ride on the module's first selected test (one record, xdist-safe)
            extra = [n.record(item.nodeid.split("::")[0]) for n in getattr(module, "NOT_ENCODED", [])]
            if extra:
                item.stash[_EXTRA] = extra
        any_claim = any_claim or is_claim(item)
        c = claim_of(item)
        if c is None:
            continue
        try:
            _models.spec(model_name(item, c))
        except _models.UnknownModelError as exc:
            item.stash[_CLAIM_ERROR] = _claim.ClaimError(f"@pytest.mark.claim(model=...): {exc}")
        key = (c.id, model_name(item, c), getattr(getattr(item, "callspec", None), "id", None))
        if key in declared:  # two records of one claim would count it twice and diff/merge could not tell them apart
            item.stash.setdefault(_CLAIM_ERROR, _claim.ClaimError(
                f"{item.nodeid}: claim {c.id!r} on {key[1]}" + (f" [{key[2]}]" if key[2] else "")
                + f" is also declared by {declared[key]}; give each claim its own id"))
        declared.setdefault(key, item.nodeid)
    state = run_state(config)
    if any_claim and state.report_dir is not None and not config.getoption("mc_report"):
        try:  # the default destination, checked once claims are known to run
            _report.check_destination(state.report_dir, "the default report folder (change it with --mc-report)")
        except _report.ReportError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_itemcollected(item):
    """xdist --dist loadgroup: all claims on one model go to one worker, which loads it once
    (honoured through mechcheck.pytest_plugin.scheduling; a series adds the checkpoint to the group)."""  # issue13
    c = claim_of(item)  # the one parse of the claim marker, kept on the item
    if c is not None:
        item.add_marker(pytest.mark.xdist_group(model_name(item, c).replace("/", "_")))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    run_state(item.config).current = item  # session-scoped fixtures (mc_load) ask which test runs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    t0 = time.perf_counter()
    try:
        if _CLAIM_ERROR in item.stash:
            raise item.stash[_CLAIM_ERROR]
        try:
            return (yield)
        except Exception:  # a fixture computed from NaN activations: say so, not its traceback
            c = item.stash.get(CLAIM, None)
            if c is not None:
                _check_unmeasured(item, c)
            raise
    finally:
        item.stash.setdefault(_TIMES, {})["setup_s"] = time.perf_counter() - t0


def _bridge(m):
    return getattr(getattr(m, "model", None), "bridge", None)


def _measured_model(item, m) -> None:
    """The measurement's model: the one mc_load loaded for this claim's model (attached here, so
    claim files never set it), unless the test set one itself."""
    if m is not None and m.model is None and LOADED in item.stash:
        m.model = item.stash[LOADED]


def _check_unmeasured(item, c) -> None:
    """The finiteness check of a claim without a measured model (its fixtures failed, or it built
    its model itself): the model mc_load loaded for this test, else the checkpoints watched under
    the claim's model name at this test's series step, never another step's NaN checkpoint."""
    name = model_name(item, c)
    loaded = item.stash.get(LOADED, None)
    if loaded is not None:
        finite.check(loaded.bridge, name)
    else:
        finite.check(None, name, _series.checkpoint_for(item, name))


def _check_finite(item, c, m) -> None:
    """Non-finite activations decide before anything computed from them (a value or an exception),
    and values computed from them are not reported."""
    try:
        if m is not None and m.model is not None:
            finite.check(_bridge(m), m.model.name)
        else:
            _check_unmeasured(item, c)
    except finite.NonFiniteError:
        if m is not None:
            m.value, m.ci, m.details = None, None, {}
        raise


def _run_controls(item, c) -> None:
    """The claim's controls, with its own bound measure (mechcheck.testing.ControlRunner: once per
    claim and settings, cached across runs); their time is reported apart from the claim's."""
    runner = run_state(item.config).controls
    if not c.controls or runner.mode == "skip":
        return
    t0 = time.perf_counter()
    try:
        item.stash[CONTROLS] = runner.run(c)
    finally:
        item.stash.setdefault(_TIMES, {})["controls_s"] = time.perf_counter() - t0


def _decide(item, c, m) -> None:
    """The verdict (mechcheck.core.claim.decide), turned into pytest's outcome: a pass returns, a
    fail or inconclusive raises, or is an xfail with --mc-claims-nonfatal (the record's status
    comes from the xfail reason: mechcheck.pytest_plugin.records.status)."""
    try:
        _claim.decide(c, None if m is None else m.value, None if m is None else m.ci)
    except _claim.ClaimInconclusive as exc:
        if item.config.getoption("mc_allow_inconclusive"):
            item.stash[_ALLOWED] = str(exc)
        elif item.config.getoption("mc_claims_nonfatal"):
            pytest.xfail(f"{_records.XFAIL_INCONCLUSIVE}{exc}")
        else:
            raise
    except _claim.ClaimFailed as exc:
        if item.config.getoption("mc_claims_nonfatal"):
            pytest.xfail(f"{_records.XFAIL_FAIL}{exc}")
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    t0 = time.perf_counter()
    failure = None
    try:
        result = yield
    except Exception as exc:  # pytest's skip/xfail outcomes are BaseException and pass through
        failure = exc
    finally:
        item.stash.setdefault(_TIMES, {})["call_s"] = time.perf_counter() - t0
    c = item.stash.get(CLAIM, None)
    m = item.stash.get(MEASUREMENT, None)
    if c is not None:
        _measured_model(item, m)
        _check_finite(item, c, m)
    if failure is not None:
        raise failure
    if c is not None:
        _run_controls(item, c)
        _decide(item, c, m)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    one_line = call.excinfo is not None and call.excinfo.errisinstance(ONE_LINE)
    if one_line:
        # the report shows one line (below): pytest need not format the whole traceback first. Each
        # entry's source is parsed; a claim erroring in a fixture has ~400 entries, and one bad
        # checkpoint's 31 claim errors cost 25 s of formatting on 2 cores (issue #24)
        call.excinfo.traceback = call.excinfo.traceback[-1:]
    rep = yield
    if one_line:
        rep.longrepr = _models.error_line(call.excinfo.value)
    if rep.when == "teardown":
        for record in item.stash.get(_EXTRA, []):
            rep.user_properties.append((_records.PROP, record))
    c = item.stash.get(CLAIM, None)
    if c is None:
        if rep.when == "teardown" and _CLAIM_ERROR in item.stash:
            exc = item.stash[_CLAIM_ERROR]
            rep.user_properties.append((_records.PROP, _records.invalid_record(item, f"{type(exc).__name__}: {exc}")))
        return rep
    state = item.stash.setdefault(_TIMES, {})
    if rep.when == "setup" and rep.outcome != "passed" or rep.when == "call":
        state["status"], state["message"] = _records.status(rep, call, item.stash.get(_ALLOWED, None))
    elif rep.when == "teardown":
        if rep.outcome == "failed" and state.get("status") in (None, "pass"):
            state["status"], state["message"] = "error", f"teardown: {call.excinfo.value}"
        rep.user_properties.append((_records.PROP, _records.record(
            item, c, item.stash.get(MEASUREMENT, None), state, model_name(item, c),
            item.stash.get(CONTROLS, None), run_state(item.config).controls.mode)))
    return rep


def _partial(session) -> str | None:
    """Why this run is not the whole selected suite (None when it is)."""
    config = session.config
    state = run_state(config)
    if session.shouldfail or session.shouldstop:
        return f"stopped early ({session.shouldfail or session.shouldstop})"
    splits = getattr(config.option, "splits", None)  # pytest-split: `mechcheck merge` joins the shards
    if splits:
        return f"shard {config.option.group} of {splits}"
    if state.deselected:
        return f"{state.deselected} claim test(s) deselected (-k / -m / --deselect)"
    opts = config.option  # under xdist the controller does not collect: it sees the options only
    if getattr(opts, "dist", "no") != "no" and (opts.keyword or opts.markexpr):
        return "a -k / -m selection"
    if any("::" in str(a) for a in config.args):
        return "individual tests named on the command line"
    return None


def _shard(session) -> dict | None:
    """results.json `run.shard`: which shard set this report belongs to, so `mechcheck merge` can
    tell a complete split from shards of different runs (None when not a pytest-split shard)."""
    config = session.config
    splits = getattr(config.option, "splits", None)
    if not splits:
        return None
    env = os.environ
    run_id = env.get("MECHCHECK_RUN_ID") or (
        f"github-{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}" if env.get("GITHUB_RUN_ID") else
        f"slurm-{env['SLURM_ARRAY_JOB_ID']}" if env.get("SLURM_ARRAY_JOB_ID") else None)
    return {"run_id": run_id, "suite": config.stash.get(_SUITE, None), "splits": int(splits),
            "group": int(config.option.group)}


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes
        return
    state = run_state(config)
    directory = state.report_dir
    if not state.records and directory is not None and (
            exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED or state.deselected):
        why = f" ({state.deselected} claim test(s) deselected)" if state.deselected else ""
        state.note = f"mechcheck: no claim ran{why}, so no report was written; {directory} is left as it was"
    if not state.records or directory is None:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        state.note = f"mechcheck: run interrupted; report in {directory} left as it was"
        return
    partial = _partial(session)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        run = _records.run_info(state, partial)
        shard = _shard(session)
        _report.write(directory, state.records, {**run, "shard": shard} if shard else run, created)
    except Exception as exc:  # noqa: BLE001  (ReportError, or a bug: one line, never an INTERNALERROR that hides pytest's own summary)
        why = str(exc) if isinstance(exc, _report.ReportError) else f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        state.note = f"mechcheck: report NOT written: {why}"
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    state.note = (f"mechcheck: {len(state.records)} claims -> {directory}/results.json, summary.md, index.html"
                  + (f" (PARTIAL run: {partial})" if partial else ""))


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput") or _STATE not in config.stash:
        return
    state = run_state(config)
    tr = terminalreporter
    if state.records:
        tr.section("mechcheck claims")
        width = max(len(r["status"]) for r in state.records)
        for r in sorted(state.records, key=lambda r: r["nodeid"]):
            pid = _report.record_id(r)
            tr.write_line(f"{r['status'].upper():{width}} {pid:28} {r['model']['name']:40} "
                          f"measured {_report.fmt_measured(r.get('measured')):28} expected {r['expected']['text']}")
        for line in _report.replication_lines(state.records, every=False):
            tr.write_line(line)
        tr.write_line(_report.counts_line(_report.counts(state.records)))
        controls = _report.calibration_line(_report.calibration_counts(state.records))
        if controls:
            tr.write_line(controls)
    if state.note:
        tr.write_line(state.note)
