"""`mechcheck merge OUT REPORT...`: one report from the shard reports of a run split over machines
(pytest-split's `--splits K --group i`, a CI matrix or a Slurm job array).

The shards' records are put together and rendered by mechcheck.report's own `write`, so OUT's
results.json / summary.md / index.html are what a single run over all the shards' tests would
have written (apart from timings and the creation time). Refused, with one line and exit 2, before
anything is written: a report that cannot be read, reports of different schema versions, of
different runs' settings (device, versions, overrides, data), or sharing a record (overlapping
shards: the same test would be counted twice).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from mechcheck import report


class MergeError(Exception):
    """A set of shard reports that cannot be merged; the message is one line."""


def read(path) -> tuple[Path, dict]:
    """A shard report: its folder or its results.json."""
    p = Path(path)
    p = p if p.suffix == ".json" else p / "results.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise MergeError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list) or not isinstance(doc.get("run"), dict):
        raise MergeError(f"{p}: not a mechcheck results.json (no run/claims)")
    return p, doc


def merge(paths) -> tuple[list[dict], dict]:
    """(all records, the run settings) of the shard reports; MergeError if they do not fit."""
    if not paths:
        raise MergeError("no reports to merge")
    shards = [read(p) for p in paths]
    files = [p.resolve() for p, _ in shards]
    for i, p in enumerate(files):
        if p in files[:i]:
            raise MergeError(f"{shards[i][0]} is given twice")
    first, doc0 = shards[0]
    records: list[dict] = []
    seen: dict[str, Path] = {}
    for path, doc in shards:
        if doc.get("schema") not in report.READABLE or doc.get("schema") != doc0.get("schema"):
            raise MergeError(f"{path}: schema {doc.get('schema')!r}, expected {doc0.get('schema')!r} of "
                             f"{', '.join(map(repr, report.READABLE))} (reports of different schema versions)")
        settings, settings0 = _settings(doc["run"]), _settings(doc0["run"])
        if settings != settings0:
            keys = sorted(k for k in set(settings) | set(settings0) if settings.get(k) != settings0.get(k))
            what = ", ".join(f"{k} {doc0['run'].get(k)!r} vs {doc['run'].get(k)!r}" for k in keys)
            raise MergeError(f"{first} and {path} come from runs with different settings ({what})")
        for r in doc["claims"]:
            key = r.get("nodeid")
            if key in seen:
                raise MergeError(f"{key} is in both {seen[key]} and {path} (overlapping shards)")
            seen[key] = path
            records.append(r)
    return records, {**doc0["run"], "partial": _partial([doc["run"].get("partial") for _, doc in shards])}


def _settings(run: dict) -> dict:
    """The run settings that must agree between shards (not why each one is partial)."""
    return {k: v for k, v in run.items() if k not in ("partial", "controls")}  # controls: run/reuse give the same numbers


def _partial(reasons: list) -> str | None:
    """None when the shards are all K shards of one pytest-split run; else why the merge is partial."""
    shards = {r for r in reasons if isinstance(r, str) and r.startswith("shard ")}
    if len(shards) == len(reasons):
        counts = {r.rsplit(" of ", 1)[1] for r in shards}
        if len(counts) == 1 and len(shards) == int(next(iter(counts))):
            return None
    other = sorted({str(r) for r in reasons if r})
    return "; ".join(other) if other else None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: mechcheck merge OUT REPORT...  (REPORT: a shard's report folder or results.json)")
        return 2
    out, paths = Path(argv[0]), argv[1:]
    try:
        if any(Path(p).resolve() in (out.resolve(), (out / "results.json").resolve()) for p in paths):
            raise MergeError(f"{out}: OUT is one of the reports; merge into a new folder")
        records, run = merge(paths)
    except MergeError as exc:
        print(f"mechcheck merge: {exc}")
        return 2
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report.write(out, records, run, created)
    print(f"mechcheck merge: {len(records)} records from {len(paths)} reports -> {out}/results.json, summary.md, index.html")
    return 0
