"""`mechcheck merge OUT REPORT...`: one report from the shard reports of a run split over machines
(pytest-split's `--splits K --group i`, a CI matrix or a Slurm job array).

The shards' records are put together and rendered by mechcheck.report's own `write`, so OUT's
results.json / summary.md / index.html are what a single run over all the shards' tests would
have written (apart from timings and the creation time). Refused, with one line and exit 2, before
anything is written: a report that cannot be read, reports of different schema versions, of
different runs' settings (device, versions, overrides, data), sharing a record (overlapping
shards: the same test would be counted twice), a damaged shard (any departure from
results.schema.json: an unknown status, a missing field, a wrong type, a null record, NaN), or an
OUT that is a file or cannot be written. The merge is partial (run.partial, PARTIAL RUN in the
report) unless the shards are every group of one split of one run (run.shard: run id, the
fingerprint of the collected suite, split count, group).
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from mechcheck import report
from mechcheck.report import validate


class MergeError(Exception):
    """A set of shard reports that cannot be merged; the message is one line."""


def read(path) -> tuple[Path, dict]:
    """A shard report (its folder or its results.json), checked against results.schema.json:
    a damaged or hand-edited shard is one line naming the record and the field."""
    p = Path(path)
    p = p if p.suffix == ".json" else p / "results.json"
    try:
        doc = validate.strict_json(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise MergeError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list) or not isinstance(doc.get("run"), dict):
        raise MergeError(f"{p}: not a mechcheck results.json (no run/claims)")
    if doc.get("schema") not in report.READABLE:
        raise MergeError(f"{p}: schema {doc.get('schema')!r}, expected {report.SCHEMA!r} of those this mechcheck reads "
                         f"({', '.join(map(repr, report.READABLE))}) (reports of different schema versions)")
    try:  # a /2 shard is a /3 shard without controls: checked against the one schema file
        validate.check_document({**doc, "schema": report.SCHEMA})
    except validate.SchemaError as exc:
        raise MergeError(f"{p}: damaged shard: {exc}") from None
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
            key = r["nodeid"]
            if key in seen:
                raise MergeError(f"{key} is in both {seen[key]} and {path} (overlapping shards)")
            seen[key] = path
            records.append(r)
    run = {k: v for k, v in doc0["run"].items() if k != "shard"}  # the merge is not a shard
    return records, {**run, "partial": _partial([doc["run"] for _, doc in shards])}


def _settings(run: dict) -> dict:
    """The run settings that must agree between shards (not why each one is partial, nor which shard it is)."""
    return {k: v for k, v in run.items() if k not in ("partial", "shard", "controls")}  # controls: run/reuse give the same numbers


_LEGACY = re.compile(r"^shard (\d+) of (\d+)$")


def shard_of(run: dict) -> dict | None:
    """run.shard ({run_id, suite, splits, group}), or what an older shard's "shard i of K" says."""
    if isinstance(run.get("shard"), dict):
        return run["shard"]
    m = _LEGACY.match(run.get("partial") or "")
    return {"run_id": None, "suite": None, "splits": int(m.group(2)), "group": int(m.group(1))} if m else None


def _partial(runs: list[dict]) -> str | None:
    """None when the shards are every group of one split of one run; else why the merge is partial
    (shards of different runs or suites, or groups missing), with any shard's own reason."""
    shards = [shard_of(r) for r in runs]
    reasons = sorted({r["partial"] for r, s in zip(runs, shards) if r.get("partial") and s is None})
    reasons += sorted({r["partial"] for r, s in zip(runs, shards)
                       if r.get("partial") and s is not None and not _LEGACY.match(r["partial"])})
    split = [s for s in shards if s is not None]
    if split:
        sets: dict[tuple, list[int]] = {}
        for s in split:
            sets.setdefault((s["run_id"], s["suite"], s["splits"]), []).append(s["group"])
        if len(sets) > 1:
            what = "; ".join(f"group(s) {', '.join(map(str, sorted(g)))} of {k[2]}"
                             + (f" of run {k[0]}" if k[0] else "") + (f" (suite {k[1][:8]})" if k[1] else "")
                             for k, g in sorted(sets.items(), key=lambda kv: sorted(kv[1])))
            reasons.insert(0, f"shards of {len(sets)} different splits, not one complete split ({what})")
        else:
            (key, groups), = sets.items()
            missing = sorted(set(range(1, key[2] + 1)) - set(groups))
            if missing:
                reasons.insert(0, f"group(s) {', '.join(map(str, missing))} of {key[2]} missing")
        if len(split) != len(shards):
            reasons.insert(0, f"{len(shards) - len(split)} report(s) that are not shards of a split merged with shards")
    return "; ".join(reasons) if reasons else None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: mechcheck merge OUT REPORT...  (REPORT: a shard's report folder or results.json)")
        return 2
    out, paths = Path(argv[0]), argv[1:]
    try:
        if any(Path(p).resolve() in (out.resolve(), (out / "results.json").resolve()) for p in paths):
            raise MergeError(f"{out}: OUT is one of the reports; merge into a new folder")
        records, run = merge(paths)
        report.check_destination(out, "OUT")
    except (MergeError, report.ReportError) as exc:
        print(f"mechcheck merge: {exc}")
        return 2
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        report.write(out, records, run, created)
    except report.ReportError as exc:
        print(f"mechcheck merge: {exc}")
        return 2
    print(f"mechcheck merge: {len(records)} records from {len(paths)} reports -> {out}/results.json, summary.md, index.html"
          + (f" (PARTIAL: {run['partial']})" if run.get("partial") else ""))
    return 0
