"""What a claim test measured and the record the report is built from.

Why apart from the hooks: the plugin decides (mechcheck.pytest_plugin.hooks), this module only assembles; a
record is plain JSON that travels on the test report, so pytest-xdist workers' records reach the
controller. Values are kept raw for the decision and rounded (6 significant digits, stable files)
only here, for output; non-finite numbers become null with a reason (results.json is strict JSON).
"""

from __future__ import annotations

import math
from importlib.metadata import version
import platform

import numpy as np

from mechcheck.core import claim as _claim
from mechcheck.core.result import Result
from mechcheck.data.ioi_prompts import NAMES
from mechcheck import models as _models
from mechcheck import testing as _testing

PROP = "mechcheck"


def _shared_key(model):
    """A checkpoint's sha256 keys the preparation the claims on it share (None: the object)."""
    sha = getattr(model, "sha256", None)
    return ("sha256", sha) if sha else None


class Measurement:
    """What a claim test measured: `record(value, ci=..., n=..., **details)`. `.model` is the
    measured LoadedModel (set by the plugin from mc_load; a test may set it itself) and `.seed`
    the training seed where the claim file knows it."""

    def __init__(self):
        self.value = None
        self.ci = None
        self.n = None
        self.details: dict = {}
        self.model = None
        self.seed: int | None = None
        self.claim: _claim.Claim | None = None  # set by the `measure` fixture
        self.shared = None  # the session's shared store (mc_shared), for Measure.on

    def run(self, model, **details) -> dict:
        """Run this claim's bound measure (`Claim.measure`) on `model` (a LoadedModel, which then
        is the measured model of the record, or a bridge) and record it; `details` are added."""
        if self.claim is None or self.claim.measure is None:
            raise _claim.ClaimError("measure.run(model) needs a claim declared with measure=...")
        if hasattr(model, "bridge"):
            self.model = model
        bridge = getattr(model, "bridge", model)
        measure = self.claim.measure
        if isinstance(measure, _claim.Measure):
            out = measure(bridge, self.shared, key=_shared_key(model))
        else:
            out = measure(bridge)
        self.record(**{**out, **details})
        return out

    def prepare(self, model) -> None:
        """Compute the claim's shared preparation (`Measure(..., on=...)`) of `model` now. Called
        from the fixture that loads the model, it is timed as set-up: the first claim on a model
        is not charged with the forward pass every claim on it reads."""
        measure = self.claim.measure if self.claim is not None else None
        if isinstance(measure, _claim.Measure) and self.shared is not None:
            measure.prepare(getattr(model, "bridge", model), self.shared, key=_shared_key(model))

    def record(self, value, *, ci=None, n=None, **details):
        if isinstance(value, Result):  # a measurement's typed result (mechcheck.core.result)
            value, ci, n, details = value.value, value.ci, value.n, {**value.details, **details}
        value = _raw(value)
        _claim.check_measured(value)
        if ci is not None:
            try:
                ci = [float(ci[0]), float(ci[1])]
            except (TypeError, ValueError, IndexError):
                raise _claim.ClaimError(f"ci must be a (low, high) pair of numbers, got {ci!r:.60}") from None
        self.value = value
        self.ci = ci
        self.n = None if n is None else int(n)
        self.details.update({str(k): _raw(v) for k, v in details.items()})

    def to_json(self, expect: _claim.Expectation) -> dict | None:
        if self.value is None:
            return None
        try:
            text = expect.explain(self.value) if _claim.all_finite(self.value) else _claim.summarize(self.value)
        except (_claim.ClaimError, TypeError, ValueError):
            text = _claim.summarize(self.value)
        nulls: list[str] = []
        out = {"value": output(self.value, "value", nulls), "text": text, "ci": output(self.ci, "ci", nulls),
               "n": self.n, "details": output(self.details, "details", nulls)}
        if nulls:
            out["nonfinite"] = f"non-finite numbers written as null at: {', '.join(nulls[:10])}" + (
                f" and {len(nulls) - 10} more" if len(nulls) > 10 else "")
        return out


def _raw(x):
    """numpy/torch values -> plain Python, unrounded (the decision reads these)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        # numpy has no bfloat16: half-precision values are written as float32 (exact)
        x = (x.float() if x.is_floating_point() and x.element_size() < 4 else x).numpy()
    if isinstance(x, dict):
        return {str(k): _raw(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_raw(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    return x


def output(x, path: str = "", nulls: list | None = None):
    """Raw value -> what results.json stores: floats rounded to 6 significant digits, NaN/inf
    as null (their paths appended to `nulls`)."""
    if isinstance(x, dict):
        return {k: output(v, f"{path}.{k}", nulls) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [output(v, f"{path}[{i}]", nulls) for i, v in enumerate(x)]
    if isinstance(x, float):
        if math.isfinite(x):
            return float(f"{x:.6g}")
        if nulls is not None:
            nulls.append(path)
        return None
    return x


XFAIL_FAIL = "claim does not hold: "  # --mc-claims-nonfatal's xfail reasons (mechcheck.pytest_plugin.hooks)
XFAIL_INCONCLUSIVE = "claim inconclusive: "


def status(rep, call, allowed: str | None = None) -> tuple[str, str]:
    """(status, one-line message) of a claim test from its pytest report. `allowed`: the reason
    of an inconclusive verdict that --mc-allow-inconclusive let pass."""
    if rep.outcome == "passed":
        return ("inconclusive", allowed) if allowed else ("pass", "")
    if hasattr(rep, "wasxfail"):  # --mc-claims-nonfatal: the claim did not hold, or is inconclusive
        if rep.wasxfail.startswith(XFAIL_INCONCLUSIVE):
            return "inconclusive", rep.wasxfail.removeprefix(XFAIL_INCONCLUSIVE)
        return "fail", rep.wasxfail.removeprefix(XFAIL_FAIL)
    if rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        return "skip", reason.removeprefix("Skipped: ")
    exc = call.excinfo.value if call.excinfo else None
    msg = _models.error_line(exc).splitlines()[0][:500] if exc else str(rep.longrepr)[:500]
    if rep.when == "call" and isinstance(exc, _claim.ClaimFailed):
        return "fail", str(exc)
    if rep.when == "call" and isinstance(exc, _claim.ClaimInconclusive):
        return "inconclusive", str(exc)
    return "error", msg


def control_fields(c: _claim.Claim, results: list[dict] | None, mode: str, decided: bool = True) -> dict:
    """The record's evidence for its verdict: `controls` (each run with the claim's bound measure),
    `calibration` ({state, reason}), `detectable_effect` (absence claims), `controls_mode`."""
    if not decided and (c.controls or c.missing_control):
        results = None
        calibration = {"state": "not-run", "reason": "the claim was not decided here (skip or error); controls not run"}
    else:
        calibration = _testing.calibration(c, results, mode)
    shown = []
    for r in results or []:
        nulls: list = []
        shown.append({k: output(v, k, nulls) for k, v in r.items()})
    return {"controls": shown, "calibration": calibration,
            "detectable_effect": _testing.detectable_effect(c, results), "controls_mode": mode}


def record(item, c: _claim.Claim, m: Measurement | None, state: dict, model_name: str,
           controls: list[dict] | None = None, mode: str = "reuse") -> dict:
    """The JSON record of one claim test."""
    model = m.model.info() if m is not None and m.model is not None else {"name": model_name}
    param = getattr(getattr(item, "callspec", None), "id", None)
    try:
        measured = m.to_json(c.expect) if m is not None else None
    except Exception as exc:  # assembling must never crash the session (INTERNALERROR)
        measured = None
        state = {**state, "status": "error", "message": f"measurement not reportable: {type(exc).__name__}: {exc}"[:500]}
    return {
        "nodeid": item.nodeid,
        **c.to_json(),
        "param": param,
        "model": model,
        "measured": measured,
        "status": state.get("status", "error"),
        "message": state.get("message", ""),
        "timing": {"setup_s": round(state.get("setup_s", 0.0), 3), "call_s": round(state.get("call_s", 0.0), 3),
                   **({"controls_s": round(state["controls_s"], 3)} if "controls_s" in state else {})},
        "seed": m.seed if m is not None else None,
        **control_fields(c, controls, mode, decided=state.get("status") in ("pass", "fail", "inconclusive")),
    }


def invalid_record(item, message: str) -> dict:
    """The record of a test whose @pytest.mark.claim could not be read: an error in the report,
    so a malformed claim is never missing from it."""
    kw = getattr(item.get_closest_marker("claim"), "kwargs", {})
    text = lambda k: kw.get(k) if isinstance(kw.get(k), str) else ""  # noqa: E731
    return {
        "nodeid": item.nodeid, "id": text("id") or item.name, "statement": text("statement"),
        "source": {"document": "", "where": ""}, "model": {"name": text("model")},
        "expected": {"op": "invalid", "text": "malformed claim"}, "published": None, "tolerance": "",
        "param": getattr(getattr(item, "callspec", None), "id", None), "measured": None,
        "status": "error", "message": message[:500], "timing": {"setup_s": 0.0, "call_s": 0.0}, "seed": None,
    }


class Collector:
    """Collects claim records from test reports; on the controller this sees xdist workers' too."""

    def __init__(self, records: list):
        self.records = records

    def pytest_runtest_logreport(self, report):
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == PROP:
                self.records.append(value)


def run_info(state, partial: str | None) -> dict:
    """results.json `run`: what produced these records."""
    return {
        "device": state.device,
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformer_lens": version("transformer-lens"),
        "overrides": {k: str(v) for k, v in sorted(state.overrides.items())},
        "data_dir": str(state.data) if state.data else None,
        "ioi_names": list(state.ioi_names or NAMES),
        "partial": partial,
        "controls": state.controls.mode if state.controls is not None else "skip",  # --mc-controls
    }
