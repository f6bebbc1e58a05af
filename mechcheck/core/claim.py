"""A claim: what a document says, where it says it, the measurement that checks it with every
setting bound, the named comparison that decides it, and the controls that show the check can decide.

Why: pass/fail must come from one comparison between the measurement and a stated expectation
(published value + tolerance, written next to the citation), never from asserts scattered per
test, so the report can always show measured vs expected vs published. And a reader must be able
to believe a verdict: the same bound measurement, run on a model where the mechanism is built in
(positive control) and on one of the same shape without it (negative control), must decide as
expected. One declaration binds all of it, so a control can never drift from its claim.

Declaring a claim (the API other claim files use)::

    T3 = Claim(
        id="T3", model=TOY, statement="...", source=Source(DOC, "section"), expect=at_least(0.4),
        published="drop 0.8233", tolerance="why 0.4",
        measure=Measure(partial(toy_circuit.ablation_drop, component="mlp.W_out"), on=toy_circuit.ToyRun),
        evidence=INTERVENTIONAL,                      # or OBSERVATIONAL (attention, scores, probes, lenses)
        controls=[toy_circuit.TRAINED, toy_circuit.RANDOM],   # Control(name, kind, build, description)
    )

    @pytest.mark.claim(T3)          # the marker carries the declaration (keyword form still works)
    def test_t3(toy_model, measure):
        measure.run(toy_model)       # claim.measure on the claim's model (a LoadedModel or a bridge)

- `measure` is a callable of the measured model (a TransformerBridge) returning the keyword
  arguments of `Measurement.record` (value=, ci=, n=, **details); every setting (prompt set,
  sequence length, BOS handling, vocabulary, heads) is bound in it (functools.partial). `Measure(fn,
  on=prepare)` adds a shared preparation: `prepare(model)` (e.g. one forward pass) is computed once
  per model and read by every claim whose measure has the same `on`. Its `identity()` (function
  names, bound arguments, source digests) keys the controls' cache.
- `controls`: `Control(name, kind, build, description, effect=None)`; `kind` is POSITIVE (the
  mechanism built or trained in) or NEGATIVE (the same shape without it); `build()` returns the
  model the measure takes, at the claim's own settings. The plugin runs `measure` on each and
  decides it with the claim's own rule (`verdict`); a presence claim expects PASS on a positive
  control and FAIL on a negative one; an absence claim (`absence=True`) the other way round, and its
  positive control carries `effect`, the planted strength the report gives as the detectable effect.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


class ClaimFailed(AssertionError):
    """The measurement does not satisfy the expectation."""


class ClaimInconclusive(AssertionError):
    """The measurement's CI straddles the expectation: neither satisfied nor violated."""


class ClaimError(Exception):
    """The claim could not be decided (no measurement, NaN, a head the model lacks...)."""


@dataclass(frozen=True)
class Source:
    document: str  # file under ../shared/seeds or a citation
    where: str  # section / figure / table

    def __str__(self) -> str:
        return f"{self.document}, {self.where}"


class Expectation:
    """A named comparison. `check` gets the measured value (scalar or array).

    A scalar comparison (AtLeast, AtMost, Within) also decides an interval (`check_interval`):
    a CI decides three ways. Comparisons over arrays (rank, argmax, leads) have no interval rule
    (`three_valued` False) and decide on the point value only."""

    op: str = ""
    three_valued = False  # (a plain class attribute, not a dataclass field of the subclasses)

    def check(self, value: Any) -> bool:
        raise NotImplementedError

    def check_interval(self, lo: float, hi: float) -> bool | None:
        """True: every value in [lo, hi] satisfies the expectation; False: none does; None: the
        interval straddles it."""
        raise NotImplementedError(f"'{self.describe()}' has no interval rule")

    def straddled(self) -> str:
        """What a straddling interval straddles, for the one-line reason."""
        return f"the threshold {self.describe()}"

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict:
        return {"op": self.op, "text": self.describe(), **self._params()}

    def explain(self, value) -> str:
        """The measured value as a person should read it against this expectation."""
        return summarize(value)

    def _params(self) -> dict:
        return {}


@dataclass(frozen=True)
class AtLeast(Expectation):
    threshold: float
    op: str = field(default=">=", init=False)

    three_valued = True

    def check(self, value):
        return float(value) >= self.threshold

    def check_interval(self, lo, hi):
        return True if lo >= self.threshold else False if hi < self.threshold else None

    def describe(self):
        return f">= {self.threshold:g}"

    def _params(self):
        return {"threshold": self.threshold}


@dataclass(frozen=True)
class AtMost(Expectation):
    threshold: float
    op: str = field(default="<=", init=False)

    three_valued = True

    def check(self, value):
        return float(value) <= self.threshold

    def check_interval(self, lo, hi):
        return True if hi <= self.threshold else False if lo > self.threshold else None

    def describe(self):
        return f"<= {self.threshold:g}"

    def _params(self):
        return {"threshold": self.threshold}


@dataclass(frozen=True)
class Within(Expectation):
    target: float
    tol: float
    op: str = field(default="within", init=False)

    three_valued = True

    def check(self, value):
        return abs(float(value) - self.target) <= self.tol

    def check_interval(self, lo, hi):
        low, high = self.target - self.tol, self.target + self.tol
        if low <= lo and hi <= high:
            return True
        return False if hi < low or lo > high else None

    def describe(self):
        return f"within {self.target:g} ± {self.tol:g}"

    def straddled(self):
        return f"an edge of the band {self.describe()} ([{self.target - self.tol:g}, {self.target + self.tol:g}])"

    def _params(self):
        return {"target": self.target, "tol": self.tol}


def _index(item, shape) -> int:
    if isinstance(item, (tuple, list)):
        if len(item) != len(shape) or any(not 0 <= i < n for i, n in zip(item, shape)):
            raise ClaimError(f"index {tuple(item)} does not exist in a measurement of shape {tuple(shape)}")
        return int(np.ravel_multi_index(tuple(item), shape))
    if not 0 <= item < int(np.prod(shape)):
        raise ClaimError(f"index {item} does not exist in a measurement of shape {tuple(shape)}")
    return int(item)


@dataclass(frozen=True)
class RankAtMost(Expectation):
    """`item` (e.g. a (layer, head)) is among the top k of the measured array (1 = largest)."""

    item: Any
    k: int
    op: str = field(default="rank <=", init=False)

    def rank(self, value) -> int:
        arr = np.asarray(value, dtype=float)
        flat = arr.ravel()
        target = flat[_index(self.item, arr.shape)]
        return int((flat > target).sum()) + 1

    def check(self, value):
        return self.rank(value) <= self.k

    def describe(self):
        return f"rank of {fmt_item(self.item)} <= {self.k}"

    def explain(self, value):
        arr = np.asarray(value, dtype=float)
        return f"{fmt_item(self.item)} = {arr.ravel()[_index(self.item, arr.shape)]:.4g}, rank {self.rank(value)}"

    def _params(self):
        return {"item": _jsonable(self.item), "k": self.k}


@dataclass(frozen=True)
class ArgmaxIs(Expectation):
    item: Any
    op: str = field(default="argmax ==", init=False)

    def check(self, value):
        arr = np.asarray(value, dtype=float)
        _index(self.item, arr.shape)
        return int(np.argmax(arr)) == _index(self.item, arr.shape)

    def describe(self):
        return f"argmax == {fmt_item(self.item)}"

    def _params(self):
        return {"item": _jsonable(self.item)}


@dataclass(frozen=True)
class Leads(Expectation):
    """The named items (heads) all score >= `minimum` and beat every other item by `margin`:
    "these heads, and no others, do this"."""

    items: tuple
    minimum: float
    margin: float = 0.0
    op: str = field(default="leads", init=False)

    def _split(self, value):
        arr = np.asarray(value, dtype=float)
        idx = [_index(i, arr.shape) for i in self.items]
        flat = arr.ravel()
        others = np.delete(flat, idx)
        runner = int(np.delete(np.arange(flat.size), idx)[np.argmax(others)]) if others.size else None
        return arr, flat, idx, runner

    def check(self, value):
        arr, flat, idx, runner = self._split(value)
        weakest = flat[idx].min()
        return bool(weakest >= self.minimum and (runner is None or weakest - flat[runner] >= self.margin))

    def describe(self):
        names = ", ".join(fmt_item(i) for i in self.items)
        return f"{names} >= {self.minimum:g} and ahead of every other by >= {self.margin:g}"

    def explain(self, value):
        arr, flat, idx, runner = self._split(value)
        named = ", ".join(f"{fmt_item(i)} {flat[j]:.3g}" for i, j in zip(self.items, idx))
        if runner is None:
            return named
        where = np.unravel_index(runner, arr.shape)
        item = int(where[0]) if len(where) == 1 else tuple(int(w) for w in where)
        return f"{named}; runner-up {fmt_item(item)} {flat[runner]:.3g}"

    def _params(self):
        return {"items": [_jsonable(i) for i in self.items], "minimum": self.minimum, "margin": self.margin}


def fmt_item(item) -> str:
    """Heads: (layer, head) -> LxHy; a bare int is a head of a one-layer model -> Hy."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return f"L{item[0]}H{item[1]}"
    if isinstance(item, (int, np.integer)):
        return f"H{item}"
    return str(item)


def _jsonable(x):
    if isinstance(x, tuple):
        return list(x)
    return x


def at_least(x: float) -> AtLeast:
    return AtLeast(float(x))


def at_most(x: float) -> AtMost:
    return AtMost(float(x))


def within(target: float, tol: float) -> Within:
    return Within(float(target), float(tol))


def rank_at_most(k: int, item) -> RankAtMost:
    return RankAtMost(item, int(k))


def argmax_is(item) -> ArgmaxIs:
    return ArgmaxIs(item)


def leads(items, minimum: float, margin: float = 0.0) -> Leads:
    return Leads(tuple(items), float(minimum), float(margin))


POSITIVE, NEGATIVE = "positive", "negative"  # a control's kind: the mechanism built in, or not
OBSERVATIONAL, INTERVENTIONAL = "observational", "interventional"  # the evidence rung of a measurement
EVIDENCE = (OBSERVATIONAL, INTERVENTIONAL)


def identity(obj) -> str:
    """A stable text of a callable with its bound settings: a functools.partial is its function,
    arguments and keywords; a function or class is module.qualname plus a digest of its module's
    source (an edited measurement is a new one); other values their repr without memory addresses.
    Why: the controls of a claim are cached under it, and two runs must agree on it."""
    if isinstance(obj, functools.partial):
        args = ", ".join([identity(a) for a in obj.args] + [f"{k}={identity(v)}" for k, v in sorted(obj.keywords.items())])
        return f"{identity(obj.func)}({args})"
    if isinstance(obj, Measure):
        return obj.identity()
    if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj):
        return f"{obj.__module__}.{obj.__qualname__}@{_source_digest(obj)}"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(identity(v) for v in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {identity(v)}" for k, v in sorted(obj.items(), key=lambda kv: repr(kv[0]))) + "}"
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def _source_digest(obj) -> str:
    try:
        return _file_digest(inspect.getsourcefile(obj))
    except (TypeError, OSError):
        return "builtin"


@dataclass(frozen=True)
class Measure:
    """A measurement with every setting bound. `fn(prepared)` returns the keyword arguments of
    `Measurement.record`; `on(model)` prepares what it reads (None: `fn` reads the model itself).

    Why `on`: the claims on one model share one preparation (e.g. one forward pass over the
    holdout set); the plugin computes it once per model and `on`, for the claim's model and for
    each control model alike."""

    fn: Callable
    on: Callable | None = None

    def __call__(self, model, shared=None, key=None) -> dict:
        """Measure `model`; `shared(key, build)` (the session's store) shares the preparation
        under `key` (which model it is: a checkpoint's sha256; default the object itself)."""
        return self.fn(self.prepare(model, shared, key))

    def prepare(self, model, shared=None, key=None):
        """What `fn` reads off `model`: `on(model)`, shared under `key` when a store is given
        (the model itself without `on`). Also called ahead, from a fixture, so that the shared
        preparation is timed as the claims' set-up (Measurement.prepare)."""
        if self.on is None:
            return model
        if shared is None:
            return self.on(model)
        which = key if key is not None else ("object", id(model))
        return shared(("measure-on", identity(self.on), which), lambda: self.on(model))

    def identity(self) -> str:
        return f"Measure({identity(self.fn)}, on={identity(self.on)})"


@dataclass(frozen=True)
class Control:
    """A model on which the claim's own bound measurement must decide a known way.

    kind POSITIVE: the mechanism built or trained in (a planted head, an organism, a constructed or
    trained model); NEGATIVE: the same shape without it (ablated, swapped, random). `build()`
    returns the model `Claim.measure` takes; `description` says in one line what it is; `effect`
    is the planted strength, for an absence claim's positive control (its detectable effect)."""

    name: str
    kind: str
    build: Callable[[], Any]
    description: str
    effect: float | None = None

    def expected(self, claim: "Claim") -> str:
        """The verdict this control must get: a presence claim passes where the mechanism is and
        fails where it is not; an absence claim the other way round."""
        present = self.kind == POSITIVE
        return ("fail" if present else "pass") if claim.absence else ("pass" if present else "fail")

    def identity(self) -> str:
        return f"Control({self.name!r}, {self.kind}, {identity(self.build)}, effect={self.effect!r})"


def positive(name: str, build: Callable, description: str, effect: float | None = None) -> Control:
    return Control(name, POSITIVE, build, description, effect)


def negative(name: str, build: Callable, description: str) -> Control:
    return Control(name, NEGATIVE, build, description)


@dataclass(frozen=True)
class Claim:
    """The declaration a test carries (`@pytest.mark.claim(T1)` with a Claim, or
    `@pytest.mark.claim(id=..., ...)`): the statement and its source, the expectation that decides
    it, and (new claims) the bound measurement, its evidence rung and its controls."""

    id: str
    statement: str
    source: Source
    model: str
    expect: Expectation
    published: Any = None
    tolerance: str = ""  # why the threshold is where it is, next to the citation
    measure: Callable | None = None  # the measured model -> Measurement.record kwargs, every setting bound
    controls: tuple = ()  # Control(...): at least one POSITIVE and one NEGATIVE
    evidence: str | None = None  # OBSERVATIONAL or INTERVENTIONAL
    absence: bool = False  # the claim says a mechanism is absent (its positive control must make it FAIL)
    hedge: str | None = None  # the document's own hedge words ("'~' and '?'"): a FAIL reads "the hedge was warranted"
    # why a kind of control could not be built (e.g. no model at the claim's settings carries the mechanism): the
    # claim is then reported uncalibrated with this reason, never silently calibrated
    missing_control: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "controls", tuple(self.controls or ()))

    @classmethod
    def from_marker(cls, mark, where: str = "") -> "Claim":
        """The one parser of `@pytest.mark.claim(...)` (plugin and claim_of); a malformed marker
        is one ClaimError line naming `where`."""
        prefix = f"{where}: " if where else ""
        if mark.args:
            if len(mark.args) == 1 and isinstance(mark.args[0], Claim) and not mark.kwargs:
                c = mark.args[0]
            else:
                raise ClaimError(f"{prefix}@pytest.mark.claim takes one Claim declaration or keyword arguments only "
                                 f"(id=..., statement=..., ...)")
        else:
            try:
                c = cls(**mark.kwargs)
            except TypeError as exc:
                raise ClaimError(f"{prefix}bad @pytest.mark.claim ({exc})") from None
        c.validate(prefix)
        why = undecidable(c)
        if why:
            raise ClaimError(f"{prefix}@pytest.mark.claim(id={c.id!r}): {why}; such a declaration cannot be decided")
        return c

    def validate(self, prefix: str = "") -> None:
        """One ClaimError line for a declaration that cannot be run or decided."""
        if not isinstance(self.expect, Expectation) or not isinstance(self.source, Source):
            raise ClaimError(f"{prefix}@pytest.mark.claim needs expect=<Expectation> and source=Source(...)")
        if not isinstance(self.id, str) or not self.id or not isinstance(self.model, str):
            raise ClaimError(f"{prefix}@pytest.mark.claim needs a non-empty id and a model name (strings)")
        if self.measure is not None and not callable(self.measure):
            raise ClaimError(f"{prefix}{self.id}: measure= must be a callable of the model (functools.partial or Measure)")
        if self.evidence is not None and self.evidence not in EVIDENCE:
            raise ClaimError(f"{prefix}{self.id}: evidence={self.evidence!r}; use one of {', '.join(EVIDENCE)}")
        for ctl in self.controls:
            if not isinstance(ctl, Control) or ctl.kind not in (POSITIVE, NEGATIVE) or not callable(ctl.build):
                raise ClaimError(f"{prefix}{self.id}: controls= takes Control(name, kind positive|negative, build, "
                                 f"description), got {ctl!r:.80}")
            if self.measure is None:
                raise ClaimError(f"{prefix}{self.id}: controls need measure= (they run the claim's bound measurement)")
        if self.missing_control is not None and (not isinstance(self.missing_control, str) or not self.missing_control):
            raise ClaimError(f"{prefix}{self.id}: missing_control= is the reason (a sentence) a kind of control is missing")
        names = [ctl.name for ctl in self.controls]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ClaimError(f"{prefix}{self.id}: two controls are named {dup!r}")

    def missing_kinds(self) -> list[str]:
        """The kinds of control (POSITIVE, NEGATIVE) this claim declares none of."""
        return [kind for kind in (POSITIVE, NEGATIVE) if all(ctl.kind != kind for ctl in self.controls)]

    def settings(self) -> str:
        """The bound measurement's identity (part of the controls' cache key)."""
        return identity(self.measure)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "statement": self.statement,
            "source": {"document": self.source.document, "where": self.source.where},
            "model": self.model,
            "expected": self.expect.to_json(),
            "published": self.published,
            "tolerance": self.tolerance,
            "evidence": self.evidence,
            "hedge": self.hedge,
        }


def _nonfinite(x) -> bool:
    """Whether a declared value holds a NaN or infinity (numbers, or lists/tuples/dicts of them)."""
    if isinstance(x, dict):
        return any(_nonfinite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return any(_nonfinite(v) for v in x)
    return isinstance(x, (float, np.floating)) and not math.isfinite(float(x))


def undecidable(c: Claim) -> str | None:
    """Why a declaration can never be decided (a NaN/inf threshold or published value, a negative
    tolerance or margin, a rank below 1), or None. Why here: a NaN threshold makes every
    comparison False, so the claim would be a FAIL computed from nothing."""
    e = c.expect
    numbers = {name: getattr(e, name) for name in ("threshold", "target", "tol", "minimum", "margin")
               if hasattr(e, name)}
    bad = [f"{name}={value!r}" for name, value in numbers.items() if _nonfinite(value)]
    if bad:
        return f"expect={e.op} has a non-finite {', '.join(bad)}"
    if isinstance(e, Within) and e.tol < 0:
        return f"expect=within({e.target:g}, {e.tol:g}) has a negative tolerance"
    if isinstance(e, Leads) and e.margin < 0:
        return f"expect=leads(...) has a negative margin {e.margin:g}"
    if isinstance(e, RankAtMost) and e.k < 1:
        return f"expect=rank_at_most({e.k}, ...) needs k >= 1"
    if _nonfinite(c.published):
        return f"published={c.published!r} is not finite"
    return None


@dataclass(frozen=True)
class NotEncoded:
    """A statement of a source document that is not a checkable claim, and why.

    Listed in a claim module's NOT_ENCODED; the report shows it, so a reader sees it was read
    and deliberately left out rather than forgotten."""

    id: str
    statement: str
    source: Source
    model: str
    reason: str

    def record(self, module_nodeid: str) -> dict:
        return {
            "nodeid": f"{module_nodeid}::{self.id}", "id": self.id, "statement": self.statement,
            "source": {"document": self.source.document, "where": self.source.where},
            "model": {"name": self.model}, "expected": {"op": "not encoded", "text": "not encoded"},
            "published": None, "tolerance": "", "param": None, "measured": None,
            "status": "not-encoded", "message": self.reason, "timing": {"setup_s": 0.0, "call_s": 0.0},
            "seed": None,
        }


def check_measured(value) -> None:
    """A measured value is a real number or an array of them (the expectation decides which it
    takes); anything else (a string, a dict, a bool) is one ClaimError line, never a verdict."""
    if isinstance(value, (str, bytes, dict, bool, np.bool_)) or value is None:
        raise ClaimError(f"measured value must be a real number or an array of numbers, got "
                         f"{type(value).__name__} {value!r:.60}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"measured value is not a number or a regular array ({exc})") from None
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise ClaimError(f"measured value must be a real number or a non-empty array of numbers, got "
                         f"{type(value).__name__} {str(value)[:60]!r}")


def all_finite(value) -> bool:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return True
    return bool(np.isfinite(arr).all())


def _decision_interval(expect: Expectation, value, ci) -> tuple[float, float] | None:
    """The interval a three-valued decision reads, or None (decide on the point value).

    The CI widened to contain the point estimate: a percentile bootstrap CI can miss it for a
    skewed statistic, and a claim is never PASS when its own estimate violates the expectation."""
    if ci is None or not expect.three_valued or np.ndim(value) != 0:
        return None
    try:
        lo, hi = float(ci[0]), float(ci[1])
    except (TypeError, ValueError, IndexError):
        raise ClaimError(f"ci must be a (low, high) pair of numbers, got {ci!r:.60}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ClaimError(f"the CI [{lo}, {hi}] is not finite; cannot decide the claim on it")
    if lo > hi:
        raise ClaimError(f"the CI [{lo:.6g}, {hi:.6g}] has low > high")
    v = float(value)
    return min(lo, v), max(hi, v)


def verdict(expect: Expectation, value, ci=None) -> str:
    """"pass", "fail" or "inconclusive": the rule `decide` applies, for the controls in tests/.

    With a CI and a scalar comparison: pass when the whole interval satisfies the expectation,
    fail when the whole interval violates it, inconclusive otherwise. Without a CI (an exact
    statistic), or for comparisons over arrays: pass or fail on the point value. Always on the
    unrounded numbers."""
    if not all_finite(value):
        raise ClaimError(f"measured value is not finite ({value!r})")
    interval = _decision_interval(expect, value, ci)
    if interval is None:
        return "pass" if expect.check(value) else "fail"
    holds = expect.check_interval(*interval)
    return "inconclusive" if holds is None else "pass" if holds else "fail"


def num(x: float, *refs: float) -> str:
    """`x` with 4 significant digits, or as many more as needed to tell it apart from `refs`
    (0.4999996 against 0.5 reads 0.4999996, not 0.5)."""
    for digits in range(4, 18):
        text = f"{x:.{digits}g}"
        if all(x == r or text != f"{r:.{digits}g}" for r in refs):
            return text
    return repr(x)


def _refs(expect: Expectation) -> tuple[float, ...]:
    if isinstance(expect, (AtLeast, AtMost)):
        return (expect.threshold,)
    if isinstance(expect, Within):
        return (expect.target - expect.tol, expect.target + expect.tol)
    return ()


def decide(claim: Claim, value, ci=None) -> str:
    """The one place a claim is decided (rule: `verdict`). Returns "pass"; raises ClaimError
    (undecidable), ClaimFailed or ClaimInconclusive, each with its one-line reason."""
    if value is None:
        raise ClaimError(f"{claim.id}: the test recorded no measurement")
    check_measured(value)
    if not all_finite(value):
        raise ClaimError(f"{claim.id}: measured value is not finite ({summarize(value)}); cannot decide the claim")
    try:
        outcome = verdict(claim.expect, value, ci)
    except ClaimError as exc:
        raise ClaimError(f"{claim.id}: {exc}") from None
    except (TypeError, ValueError) as exc:
        shape = np.shape(value)
        raise ClaimError(f"{claim.id}: a measurement of shape {shape} does not fit the expectation "
                         f"'{claim.expect.describe()}' ({exc})") from None
    if outcome == "pass":
        return outcome
    refs = _refs(claim.expect)
    shown = num(float(value), *refs) if np.ndim(value) == 0 else summarize(value)
    interval = _decision_interval(claim.expect, value, ci)
    ci_text = "" if interval is None else f" (95% CI [{num(interval[0], *refs)}, {num(interval[1], *refs)}])"
    if outcome == "inconclusive":
        raise ClaimInconclusive(f"{claim.id}: 95% CI [{num(interval[0], *refs)}, {num(interval[1], *refs)}] "
                                f"straddles {claim.expect.straddled()} (measured {shown})")
    raise ClaimFailed(f"{claim.id}: measured {shown}{ci_text} does not satisfy {claim.expect.describe()}")


def summarize(value) -> str:
    """A short human form of a measurement (scalar, or shape + max of an array)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if not np.isfinite(arr).all():
        return f"array{tuple(arr.shape)} with {int((~np.isfinite(arr)).sum())} non-finite entries"
    flat = int(np.argmax(arr))
    where = np.unravel_index(flat, arr.shape)
    return f"array{tuple(arr.shape)} max {arr.max():.4g} at {fmt_item(tuple(int(i) for i in where))}"


def claim_of(test_function) -> Claim:
    """The Claim declared on a test function by @pytest.mark.claim (for controls in tests/)."""
    for mark in getattr(test_function, "pytestmark", []):
        if mark.name == "claim":
            return Claim.from_marker(mark, test_function.__name__)
    raise ValueError(f"{test_function.__name__} carries no @pytest.mark.claim")


def outcome(claim: Claim, value, ci=None) -> tuple[str, str]:
    """(verdict, one-line reason) by `decide`: "pass" | "fail" | "inconclusive"; an undecidable
    measurement raises ClaimError. The plugin's decision as a value, for controls."""
    try:
        return decide(claim, value, ci), ""
    except ClaimFailed as exc:
        return "fail", str(exc)
    except ClaimInconclusive as exc:
        return "inconclusive", str(exc)


def satisfies(expect: Expectation, value) -> bool:
    """Whether a finite measurement's point value meets an expectation, for the positive and
    negative controls in tests/ (with a CI, use `verdict`: the three-valued rule `decide` applies)."""
    if not all_finite(value):
        raise ClaimError(f"measured value is not finite ({value!r})")
    return bool(expect.check(value))
