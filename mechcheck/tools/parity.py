"""`python -m mechcheck parity`: the dry run of the claim suite on two devices, compared record
by record.

Why: a claim measured on a GPU must say what it says on the CPU. The dry run (every claim on the
exact-config random stand-ins, models.save_random) exercises every forward pass, mask and hook
on real shapes, so a tensor left on the wrong device shows up as an error on one side, and a
numerics difference as a value difference. Exit 1 when a status differs or a value (or CI
bound) differs by more than RTOL relative.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from mechcheck.tools.bench import STANDINS, device_name, prepare, run_suite
from mechcheck.report import atomic_write
from mechcheck.report.text import record_id

RTOL = 1e-4
# Relative difference |a-b| / max(|a|, |b|, FLOOR): values within 1e-6 of 0 on both sides (the
# report keeps 6 significant digits) compare absolutely instead of blowing up the ratio.
FLOOR = 1e-6


def _numbers(x) -> list:
    """A record's value (scalar, nested lists, dict) flattened, in order."""
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _numbers(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _numbers(item)]
    return [x]


def _differences(a, b) -> tuple[float, float]:
    """(largest absolute, largest relative difference) between two measured values; inf when
    their shapes or non-numeric parts differ."""
    xs, ys = _numbers(a), _numbers(b)
    if len(xs) != len(ys):
        return math.inf, math.inf
    abs_d = rel_d = 0.0
    for x, y in zip(xs, ys):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if x == y or (math.isnan(x) and math.isnan(y)):
                continue
            d = abs(x - y)
            abs_d, rel_d = max(abs_d, d), max(rel_d, d / max(abs(x), abs(y), FLOOR))
        elif x != y:
            return math.inf, math.inf
    return abs_d, rel_d


def _measured(record: dict):
    m = record.get("measured") or {}
    return {"value": m.get("value"), "ci": m.get("ci")}


def compare(a: list[dict], b: list[dict], rtol: float = RTOL) -> tuple[list[dict], bool]:
    """Rows (one per record of either run, by test id) and whether the two runs agree."""
    by_a, by_b = {r["nodeid"]: r for r in a}, {r["nodeid"]: r for r in b}
    rows, ok = [], True
    for nodeid in sorted(set(by_a) | set(by_b)):
        ra, rb = by_a.get(nodeid), by_b.get(nodeid)
        sa, sb = (r["status"] if r else "missing" for r in (ra, rb))
        abs_d, rel_d = _differences(_measured(ra), _measured(rb)) if ra and rb else (math.inf, math.inf)
        same = sa == sb and rel_d <= rtol
        ok &= same
        claim = record_id(ra or rb)
        rows.append({"claim": claim, "nodeid": nodeid, "status": (sa, sb), "status_equal": sa == sb,
                     "abs_diff": abs_d, "rel_diff": rel_d, "ok": same})
    return rows, ok


def markdown(rows: list[dict], devices: tuple[str, str], names: tuple[str, str], ok: bool, rtol: float) -> str:
    a, b = devices
    worst = max((r["rel_diff"] for r in rows), default=0.0)
    lines = [f"# mechcheck parity: {a} vs {b}", "",
             f"- {a}: {names[0]}", f"- {b}: {names[1]}",
             f"- {len(rows)} records; status differs on {sum(not r['status_equal'] for r in rows)}; "
             f"largest relative value difference {worst:.3g} (limit {rtol:g})",
             f"- verdict: {'PARITY' if ok else 'MISMATCH'}", "",
             f"| claim | status {a} | status {b} | status equal | value diff (abs) | largest rel diff | ok |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | {r['status'][0]} | {r['status'][1]} | {'yes' if r['status_equal'] else 'NO'} "
                     f"| {r['abs_diff']:.3g} | {r['rel_diff']:.3g} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mechcheck parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs=2, default=["cpu", "cuda"], metavar=("A", "B"))
    parser.add_argument("--standins", type=Path, default=None, help="folder for the stand-in checkpoints")
    parser.add_argument("--models", nargs="+", default=list(STANDINS), metavar="NAME",
                        help="hub models to stand in for (claims on the others skip on both devices)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("--rtol", type=float, default=RTOL)
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression: a subset of the claims")
    parser.add_argument("paths", nargs="*", default=["claims/"], help="claim files (default: claims/)")
    args = parser.parse_args(argv)
    try:
        devices, overrides = prepare("parity", args.devices, args.standins, args.models)
    except SystemExit as exc:
        return exc.code
    devices = tuple(devices)
    suite = [*args.paths, "--mc-claims-nonfatal", *overrides] + (["-k", args.keyword] if args.keyword else [])
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, device in enumerate(devices):
            _, doc, tail = run_suite(suite + ["--mc-device", device], Path(tmp) / f"{i}-{device}")
            if not doc.get("claims"):
                print(f"mechcheck parity: the run on {device} recorded no claims; its output ends:\n{tail}")
                return 2
            records.append(doc["claims"])
    rows, ok = compare(records[0], records[1], args.rtol)
    text = markdown(rows, devices, tuple(device_name(d) for d in devices), ok, args.rtol)
    if args.out:
        atomic_write(args.out, text)
    print(text, end="")
    return 0 if ok else 1
