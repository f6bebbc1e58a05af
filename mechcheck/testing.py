"""Controls of a claim, run with the claim's own bound measurement and decided by the plugin's rule.

Why here (beside the plugin, below tools): the plugin runs every claim's controls into its record,
and tests/ runs the same controls as one generated test; both must decide them exactly as the
plugin decides a claim (`verdict_of`), so there is one rule and one runner.

Controls do not depend on the user's checkpoint: their measurements are cached once per (claim id,
bound settings, controls, mechcheck version + source digest) under `cache_root()/controls/`
(atomic writes), and their verdicts are re-decided from the cached numbers on every read, so a
changed threshold never reads a stale verdict. Modes: "run" (always measure, refresh the cache),
"reuse" (the cache when it holds the key, else measure and store), "skip" (no controls).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from mechcheck.core import claim as _claim
from mechcheck.core.claim import POSITIVE, Claim, ClaimError, Control
from mechcheck.core.files import atomic_write
from mechcheck.data import cache_root

MODES = ("run", "reuse", "skip")
# control models a runner holds at once: the claims next to each other share theirs; all of a claim file's
# would not fit in memory (the IOI file's slow controls, held to the end, reached 23 GB)
HELD = 4
_PKG = Path(__file__).resolve().parent


def verdict_of(claim: Claim, measured) -> str:
    """"pass" | "fail" | "inconclusive": the plugin's own decision (mechcheck.core.claim.decide) of
    `measured` (the dict a bound measure returns, or a Measurement) against `claim`. An
    undecidable measurement (NaN, a string, no value) raises ClaimError, as in the plugin."""
    value, ci = _value_ci(measured)
    return _claim.outcome(claim, value, ci)[0]


def _value_ci(measured):
    if isinstance(measured, dict):
        return measured.get("value"), measured.get("ci")
    return getattr(measured, "value", None), getattr(measured, "ci", None)


def _plain(x):
    """numpy/torch values -> plain Python (unrounded), for the decision and the cache."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


_CODE: list[str] = []
MEASURING = ("core", "data", "models", "metrics", "studies")  # the floors a measurement's numbers come from


def code_version() -> str:
    """mechcheck's version and a digest of the source its measurements run (the floors up to
    studies/): a control measured by other code is another control (an editable install keeps its
    version number while its code changes); the report's or the plugin's code does not count."""
    if not _CODE:
        try:
            v = version("mechcheck")
        except PackageNotFoundError:
            v = "unknown"
        h = hashlib.sha256()
        for path in sorted(p for floor in MEASURING for p in (_PKG / floor).rglob("*.py")):
            h.update(str(path.relative_to(_PKG)).encode() + b"\0" + path.read_bytes())
        _CODE.append(f"{v}+{h.hexdigest()[:12]}")
    return _CODE[0]


def cache_key(claim: Claim, control: Control) -> str:
    """The text a control's cached measurement is stored under."""
    return "\n".join((claim.id, claim.settings(), control.identity(), code_version()))


def cache_dir() -> Path:
    return cache_root() / "controls"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


class ControlRunner:
    """Runs claims' controls (mode run | reuse | skip), sharing each control model and its prepared
    input (Measure.on) across the claims of a session, and remembering each result."""

    def __init__(self, mode: str = "reuse", directory: Path | None = None):
        if mode not in MODES:
            raise ValueError(f"controls mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.directory = directory
        self._models: OrderedDict[str, object] = OrderedDict()
        self._shared: dict = {}
        self._done: dict[str, dict] = {}

    def _share(self, key, build):
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    def _model(self, control: Control):
        key = _claim.identity(control.build)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        model = self._models[key] = control.build()
        while len(self._models) > HELD:  # the oldest model goes, with the preparations made of it
            _, old = self._models.popitem(last=False)
            self._shared = {k: v for k, v in self._shared.items() if k[-1] != ("object", id(old))}
        return model

    def _path(self, key: str) -> Path:
        return (self.directory or cache_dir()) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def measure(self, claim: Claim, control: Control) -> dict:
        """{value, ci, n, cached, seconds} of the claim's bound measure on the control's model, or
        {error: one line}; measured once per key (memory, then disk in "reuse")."""
        key = cache_key(claim, control)
        if key in self._done:
            return self._done[key]
        path = self._path(key)
        got = None
        if self.mode == "reuse" and path.is_file():
            try:
                stored = json.loads(path.read_text())
                if stored.get("key") == key:
                    got = {**stored["measured"], "cached": True}
            except (OSError, ValueError, KeyError, TypeError):
                got = None  # an unreadable cache entry is measured again
        if got is None:
            t0 = time.perf_counter()
            try:
                out = claim.measure(self._model(control), self._share) if isinstance(claim.measure, _claim.Measure) \
                    else claim.measure(self._model(control))
                got = {"value": _plain(out.get("value")), "ci": _plain(out.get("ci")), "n": out.get("n")}
                _claim.check_measured(got["value"])
            except Exception as exc:  # a control that cannot be measured is that control's error, never a crash
                got = {"error": _one_line(exc)}
            else:
                got["seconds"] = round(time.perf_counter() - t0, 3)
                try:
                    text = json.dumps({"key": key, "measured": got}, allow_nan=True)
                    atomic_write(path, text)
                except (OSError, TypeError, ValueError):
                    pass  # no cache: measured again next time
                got = {**got, "cached": False}
        self._done[key] = got
        return got

    def run(self, claim: Claim) -> list[dict]:
        """One result per declared control: {name, kind, model, expected, value, ci, n, status,
        ok, cached[, effect][, message]}; status is verdict_of (or "error")."""
        out = []
        for control in claim.controls:
            got = self.measure(claim, control)
            result = {"name": control.name, "kind": control.kind, "model": control.description,
                      "expected": control.expected(claim), "value": got.get("value"), "ci": got.get("ci"),
                      "n": got.get("n"), "cached": got.get("cached", False)}
            if control.effect is not None:
                result["effect"] = control.effect
            if "error" in got:
                result.update(status="error", message=got["error"])
            else:
                try:
                    status, reason = _claim.outcome(claim, got["value"], got["ci"])
                    result.update(status=status, message=reason)
                except ClaimError as exc:
                    result.update(status="error", message=str(exc))
            result["ok"] = result["status"] == result["expected"]
            out.append(result)
        return out


def control_problem(claim: Claim, result: dict) -> str | None:
    """None when a control decided as it must; else the one line saying how it did not."""
    if result["ok"]:
        return None
    shown = _claim.summarize(result["value"]) if result.get("value") is not None else "no value"
    ci = result.get("ci")
    ci_text = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and None not in ci and np.ndim(result["value"]) == 0 else ""
    why = f": {result['message']}" if result["status"] == "error" else ""
    return (f"{claim.id}: {result['kind']} control '{result['name']}' ({result['model']}) gave "
            f"{result['status'].upper()} ({shown}{ci_text}), expected {result['expected'].upper()}{why}")


def calibration(claim: Claim, results: list[dict] | None, mode: str) -> dict:
    """{state, reason} of a claim's controls: calibrated (a positive and a negative control, each
    decided as it must), uncalibrated (one line naming the control that is not, or the kind
    missing), no-controls (an old-style claim), skipped (--mc-controls skip)."""
    missing = claim.missing_kinds()
    if not claim.controls and claim.missing_control is None:
        return {"state": "no-controls", "reason": "no controls declared"}
    if missing:
        why = f" ({claim.missing_control})" if claim.missing_control else ""
        return {"state": "uncalibrated", "reason": f"{claim.id}: declares no {' and no '.join(missing)} control{why}"}
    if mode == "skip" or results is None:
        return {"state": "skipped", "reason": "controls not run (--mc-controls skip)"}
    for r in results:
        problem = control_problem(claim, r)
        if problem:
            return {"state": "uncalibrated", "reason": problem}
    return {"state": "calibrated", "reason": ""}


def detectable_effect(claim: Claim, results: list[dict] | None) -> dict | None:
    """For an absence claim: the planted strength of its positive control(s) and whether the check
    detected it (the claim FAILED there): the report's "would detect >= X", itself a control."""
    planted = [r for r in results or [] if r["kind"] == POSITIVE and r.get("effect") is not None]
    if not planted:
        return None
    best = min(planted, key=lambda r: r["effect"])
    return {"effect": best["effect"], "control": best["name"], "detected": best["status"] == "fail"}


def declared_claims(module) -> list[Claim]:
    """The claims a claim module declares (its test functions' @pytest.mark.claim), in file order."""
    out = []
    for name, obj in vars(module).items():
        if name.startswith("test") and callable(obj):
            for mark in getattr(obj, "pytestmark", []):
                if mark.name == "claim":
                    out.append(Claim.from_marker(mark, f"{module.__name__}.{name}"))
    return out
