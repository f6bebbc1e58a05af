"""`mechcheck diff BASE/results.json NEW/results.json`: what changed between two runs.

Why: the regression use (a new checkpoint, a new library version) needs a verdict a CI job can
act on. A claim that went from PASS to FAIL or ERROR is a regression (exit 1). PASS to
INCONCLUSIVE or SKIP, and any other change for the worse, is a weakening; claims of BASE that NEW
did not run are listed as "not run" (never as passed); both fail the diff only with --strict.
A value is marked drifted only when the change is larger than the noise: when both runs stored
per-item values (details.per_item, the same prompts/sequences in the same order) a paired
bootstrap CI of the mean change must exclude 0; else when they carry 95% CIs the intervals must
not overlap; rtol/atol apply only to exact statistics (no CI). Bad input (not a results.json of
this schema version, an unknown status, a measurement of the wrong type, non-strict JSON such as
a bare NaN) is one line and exit 2. Records are matched by test id, then by claim id + model +
parameters, so an ERROR under a renamed test still counts against the claim BASE decided.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mechcheck.report import READABLE, SCHEMA
from mechcheck.report.text import record_id
from mechcheck.report.validate import strict_json

RANK = {"pass": 0, "not-encoded": 0, "inconclusive": 1, "skip": 1, "fail": 2, "error": 3}
BAD = ("fail", "error")
DECIDED = ("pass", "fail")


class DiffError(Exception):
    """A file that is not a results.json this diff can read (one line)."""


def check(doc, label: str = "results") -> dict:
    """`doc` if it is a results.json of this schema version with known statuses and readable
    measurements, else DiffError naming the record and the field (one line)."""
    if not isinstance(doc, dict) or "schema" not in doc:
        raise DiffError(f"{label}: not a mechcheck results.json (no 'schema' field)")
    if doc["schema"] not in READABLE:  # /2 records are /3 records without controls: comparable
        raise DiffError(f"{label}: schema {doc['schema']!r}, but this mechcheck reads {', '.join(map(repr, READABLE))}; "
                        "rerun the older suite or compare reports of the same version")
    claims = doc.get("claims")
    if not isinstance(claims, list) or not all(isinstance(r, dict) and isinstance(r.get("nodeid"), str) for r in claims):
        raise DiffError(f"{label}: 'claims' must be a list of claim records with a nodeid")
    for r in claims:
        if r.get("status") not in RANK:
            raise DiffError(f"{label}: {r['nodeid']} has unknown status {r.get('status')!r} "
                            f"(known: {', '.join(RANK)})")
        m = r.get("measured")
        why = (f"measured is {type(m).__name__} {m!r:.40}, expected an object or null" if m is not None and not isinstance(m, dict)
               else None if m is None else _measured_problem(m))
        if why:
            raise DiffError(f"{label}: {r['nodeid']}: {why}")
    return doc


def _measured_problem(m: dict) -> str | None:
    v, ci, details = m.get("value"), m.get("ci"), m.get("details")
    if isinstance(v, (str, dict, bool)):
        return f"measured.value is {type(v).__name__} {v!r:.40}, expected a number, an array of numbers or null"
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2
                               and all(x is None or isinstance(x, (int, float)) and not isinstance(x, bool) for x in ci)):
        return f"measured.ci is {ci!r:.40}, expected [low, high] or null"
    if details is not None and not isinstance(details, dict):
        return f"measured.details is {type(details).__name__}, expected an object"
    return None


def _value(record):
    m = record.get("measured") or {}
    v = m.get("value")
    if v is None or isinstance(v, (str, dict, bool)):
        return None
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size and np.isfinite(arr).all() else None


def _ci(record):
    ci = (record.get("measured") or {}).get("ci")
    return (float(ci[0]), float(ci[1])) if ci and None not in ci else None


def paired_bootstrap(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of b - a over shared items and its percentile bootstrap CI (seeded)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(1)
    alpha = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def drift(ra: dict, rb: dict, rtol: float = 0.05, atol: float = 1e-3) -> str | None:
    """Why the value of `rb` differs significantly from that of `ra`, or None."""
    ia = ((ra.get("measured") or {}).get("details") or {}).get("per_item")
    ib = ((rb.get("measured") or {}).get("details") or {}).get("per_item")
    if isinstance(ia, list) and isinstance(ib, list) and len(ia) == len(ib) >= 2:
        try:
            mean, lo, hi = paired_bootstrap(ia, ib)
        except (TypeError, ValueError):
            mean = None
        if mean is not None and np.isfinite([lo, hi]).all():
            return None if lo <= 0 <= hi else (
                f"mean change {mean:+.4g} over {len(ia)} shared items, paired-bootstrap 95% CI [{lo:.4g}, {hi:.4g}]")
    va, vb = _value(ra), _value(rb)
    if va is None or vb is None:
        return None
    if va.shape != vb.shape:
        return f"shape changed {va.shape} -> {vb.shape}"
    ca, cb = _ci(ra), _ci(rb)
    if ca and cb:
        if ca[1] < cb[0] or cb[1] < ca[0]:
            return f"95% CIs do not overlap: [{ca[0]:.4g}, {ca[1]:.4g}] -> [{cb[0]:.4g}, {cb[1]:.4g}]"
        return None
    if ca or cb:  # one run has a CI: the other's value must lie outside it
        lo, hi = ca or cb
        other = float((vb if ca else va).ravel()[0]) if va.size == 1 else None
        if other is not None and not lo <= other <= hi:
            return f"value {other:.4g} outside the other run's 95% CI [{lo:.4g}, {hi:.4g}]"
        return None
    gap = float(np.max(np.abs(vb - va)))  # an exact statistic: no noise to compare with
    if gap > atol + rtol * float(np.max(np.abs(va))):
        return f"value moved by {gap:.4g} (exact statistic; rtol {rtol:g}, atol {atol:g})"
    return None


IDENTITY = ("dtype", "weights_dtype", "processing", "versions", "revision")  # what changes numbers besides weights


def _flat(model: dict) -> dict:
    out = {}
    for key in IDENTITY:
        value = model.get(key)
        if isinstance(value, dict):
            out.update({k: v for k, v in value.items()})
        elif value is not None:
            out[key] = value
    return out


def processing_change(ra: dict, rb: dict) -> str | None:
    """The processing state (dtype, TransformerLens processing, library versions, hub revision)
    that differs between the two records' models, in words, or None: the likely cause of a drift
    that is not the weights."""
    ma, mb = ra.get("model") or {}, rb.get("model") or {}
    a, b = _flat(ma), _flat(mb)
    changed = [f"{k} {a.get(k, '?')} -> {b.get(k, '?')}" for k in sorted(set(a) | set(b))
               if k in a and k in b and a[k] != b[k]]
    if not changed:
        return None
    same = ma.get("sha256") and ma.get("sha256") == mb.get("sha256")
    return f"likely cause: processing state changed ({', '.join(changed)}){'; same weights' if same else ''}"


def _pid(r: dict) -> str:
    return record_id(r)


def _claim_key(r: dict) -> tuple:
    """What a record is a measurement of, whatever its test id: claim id, model, parameters, step."""
    return (r.get("id"), (r.get("model") or {}).get("name"), r.get("param"), r.get("step"))


def pairs(base: dict, new: dict) -> tuple[list[tuple[dict, dict]], list[dict], list[dict]]:
    """(matched (BASE, NEW) records, BASE-only, NEW-only): by test id, then the rest by claim id +
    model + parameters (+ step) where that names one record on each side (a renamed test or file)."""
    a = {r["nodeid"]: r for r in base["claims"]}
    b = {r["nodeid"]: r for r in new["claims"]}
    matched = [(a[n], b[n]) for n in sorted(set(a) & set(b))]
    left = [a[n] for n in sorted(set(a) - set(b))]
    right = [b[n] for n in sorted(set(b) - set(a))]
    keys_a, keys_b = [_claim_key(r) for r in left], [_claim_key(r) for r in right]
    for ra in list(left):
        k = _claim_key(ra)
        if keys_a.count(k) == 1 and keys_b.count(k) == 1:
            rb = next(r for r in right if _claim_key(r) == k)
            matched.append((ra, rb))
            left.remove(ra)
            right.remove(rb)
    return matched, left, right


def _lost_value(ra: dict, rb: dict) -> str | None:
    """NEW has no finite value where BASE had one (NaN/inf written as null, or nothing measured)."""
    if _value(ra) is None or _value(rb) is not None:
        return None
    mb = rb.get("measured") or {}
    what = mb.get("nonfinite") or ("NaN/inf or missing (measured.value is null)" if mb else "nothing measured")
    return f"{_pid(rb)}: measured value {(ra.get('measured') or {}).get('text', '')} in BASE, {what} in NEW"


def compare(base: dict, new: dict, rtol: float = 0.05, atol: float = 1e-3) -> dict:
    """{"regressions", "weakenings", "improvements", "drifts", "not_run", "added"}, each a list of lines.

    A regression: a claim BASE decided (pass or fail) that NEW fails after passing, or errors on;
    a weakening: any other change for the worse, and a value NEW lost (NaN/inf or nothing)."""
    base, new = check(base, "BASE"), check(new, "NEW")
    matched, only_a, only_b = pairs(base, new)
    partial = (new.get("run") or {}).get("partial")
    out = {"regressions": [], "weakenings": [], "improvements": [], "drifts": [],
           "not_run": [f"{_pid(r)}: {r['status']} in BASE, not run in NEW"
                       + (f" (NEW is a partial run: {partial})" if partial else "") for r in only_a],
           "added": [f"{_pid(r)}: {r['status']} in NEW, not in BASE" + (f" {r.get('message')}" if r.get("message") else "")
                     for r in only_b]}
    for ra, rb in sorted(matched, key=lambda p: p[1]["nodeid"]):
        sa, sb = ra["status"], rb["status"]
        if sa != sb:
            line = f"{_pid(rb)}: {sa} -> {sb} ({(rb.get('model') or {}).get('name', '?')}) {rb.get('message', '')}".rstrip()
            if RANK[sb] < RANK[sa]:
                out["improvements"].append(line)
            elif RANK[sb] > RANK[sa]:
                regression = sa == "pass" and sb in BAD or sa in DECIDED and sb == "error"
                out["regressions" if regression else "weakenings"].append(line)
        else:
            lost = _lost_value(ra, rb)
            if lost:
                out["weakenings"].append(lost)
        why = drift(ra, rb, rtol, atol)
        if why:
            cause = processing_change(ra, rb)
            out["drifts"].append(f"{_pid(rb)}: {why} ({(rb.get('measured') or {}).get('text', '')} "
                                 f"vs {(ra.get('measured') or {}).get('text', '')})" + (f"; {cause}" if cause else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mechcheck diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rtol", type=float, default=0.05, help="relative tolerance for exact statistics (default 0.05)")
    parser.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance for exact statistics (default 1e-3)")
    parser.add_argument("--strict", action="store_true",
                        help="also fail (exit 1) on weakenings (e.g. PASS -> INCONCLUSIVE) and claims NEW did not run")
    args = parser.parse_args(argv)
    docs = []
    for path in (args.base, args.new):
        path = path / "results.json" if path.is_dir() else path
        try:
            docs.append(strict_json(path.read_text()))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(f"mechcheck diff: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    try:
        result = compare(*docs, rtol=args.rtol, atol=args.atol)
    except DiffError as exc:
        print(f"mechcheck diff: {exc}", file=sys.stderr)
        return 2
    for key, lines in result.items():
        if lines:
            print(f"{key.replace('_', ' ')} ({len(lines)}):")
            print("\n".join(f"  {x}" for x in lines))
    n = len(result["regressions"])
    print(f"{n} regression{'s' if n != 1 else ''}, {len(result['weakenings'])} weakening(s), "
          f"{len(result['not_run'])} not run")
    if n or args.strict and (result["weakenings"] or result["not_run"]):
        return 1
    return 0
