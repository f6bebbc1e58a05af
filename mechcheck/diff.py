"""`mechcheck diff BASE/results.json NEW/results.json`: what changed between two runs.

Why: the regression use (a new checkpoint, a new library version) needs a verdict a CI job can
act on: claims whose status got worse are regressions (exit 1); status improvements, values that
drifted beyond tolerance, and claims present in only one run are listed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RANK = {"pass": 0, "not-encoded": 0, "skip": 1, "fail": 2, "error": 3}


def _value(record):
    m = record.get("measured") or {}
    try:
        return np.asarray(m.get("value"), dtype=float)
    except (TypeError, ValueError):
        return None


def compare(base: dict, new: dict, rtol: float = 0.05, atol: float = 1e-3) -> dict:
    """{"regressions", "improvements", "drifts", "added", "removed"}, each a list of lines."""
    a = {r["nodeid"]: r for r in base["claims"]}
    b = {r["nodeid"]: r for r in new["claims"]}
    out = {"regressions": [], "improvements": [], "drifts": [], "added": sorted(set(b) - set(a)),
           "removed": sorted(set(a) - set(b))}
    for nodeid in sorted(set(a) & set(b)):
        ra, rb = a[nodeid], b[nodeid]
        pid = rb["id"] + (f"[{rb['param']}]" if rb.get("param") else "")
        if ra["status"] != rb["status"]:
            line = f"{pid}: {ra['status']} -> {rb['status']} ({rb['model']['name']}) {rb.get('message', '')}".rstrip()
            worse = RANK[rb["status"]] > RANK[ra["status"]] and ra["status"] == "pass"
            (out["regressions"] if worse else out["improvements"] if rb["status"] == "pass" else out["drifts"]).append(line)
        va, vb = _value(ra), _value(rb)
        if va is not None and vb is not None and va.shape == vb.shape and va.size:
            gap = float(np.max(np.abs(vb - va)))
            if gap > atol + rtol * float(np.max(np.abs(va))):
                out["drifts"].append(f"{pid}: value moved by {gap:.4g} "
                                     f"({(rb.get('measured') or {}).get('text', '')} vs {(ra.get('measured') or {}).get('text', '')})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mechcheck diff", description=__doc__)
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rtol", type=float, default=0.05, help="relative tolerance for value drift (default 0.05)")
    parser.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance for value drift (default 1e-3)")
    args = parser.parse_args(argv)
    docs = []
    for path in (args.base, args.new):
        path = path / "results.json" if path.is_dir() else path
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"mechcheck diff: cannot read {path}: {exc}")
            return 2
    result = compare(*docs, rtol=args.rtol, atol=args.atol)
    for key, lines in result.items():
        if lines:
            print(f"{key} ({len(lines)}):")
            print("\n".join(f"  {x}" for x in lines))
    n = len(result["regressions"])
    print(f"{n} regression{'s' if n != 1 else ''}")
    return 1 if n else 0
