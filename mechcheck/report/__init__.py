"""The run's report: results.json (machine form), summary.md (the table a person reads) and
index.html (mechcheck.report.html).

Why checked first and replaced together: a report destination that cannot be written is known
before any claim runs (check_destination), and the three files are written to temporary names,
then moved into place one by one with the previous files kept aside; if any move fails the moved
ones are put back, so the folder holds all old or all new files, never a mix. A killed run leaves
the previous report intact (the moves are the last thing a run does).
results.json is strict JSON (no NaN: non-finite numbers are null with a reason). Schema: docs in
README.md ("The report"); `SCHEMA` names its version.
"""

from __future__ import annotations

import html as _html
import json
import math
import os
import tempfile
from pathlib import Path

from mechcheck.core.files import atomic_write  # noqa: F401  (re-exported: the report's writer)
from mechcheck.report import series as _series
from mechcheck.report.html import render
from mechcheck.report.inventory import coverage_markdown, for_records
from mechcheck.report.text import (  # noqa: F401  (re-exported for the plugin's terminal summary)
    DECIDED, STATUSES, _cell, calibration_counts, calibration_line, calibration_state, counts, counts_line,
    fmt_controls, fmt_measured, record_id, replication, replication_lines)
from mechcheck.report.why import why_markdown

SCHEMA = "mechcheck.results/3"  # /3 (issue #19): controls, calibration, detectable_effect, evidence
READABLE = ("mechcheck.results/2", SCHEMA)  # what `mechcheck diff` and `merge` read
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
FILES = ("results.json", "summary.md", "index.html")


class ReportError(Exception):
    """The report destination cannot hold the report (one line)."""


def check_destination(directory: Path, what: str = "--mc-report", files=FILES) -> None:
    """Refuse, before anything runs, an output folder that is a file, lies under a file, holds one
    of the output names as a folder, or cannot be written."""
    directory = Path(directory)
    where = f"{what} {directory}"
    if directory.exists() and not directory.is_dir():
        raise ReportError(f"{where}: is an existing file, not a folder; give a folder for the report")
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ReportError(f"{where}: {existing} is a file, so no folder can be made under it")
    for name in files:
        if (directory / name).is_dir():
            raise ReportError(f"{where}: {directory / name} is a folder; the report needs that name for a file")
    try:  # a real write (as root, os.access says yes to everything)
        fd, probe = tempfile.mkstemp(prefix=".mechcheck-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ReportError(f"{where}: cannot write in {existing} ({exc.strerror or exc})") from None


def replace_together(directory: Path, texts: dict[str, str]) -> None:
    """Write every file of `texts` into `directory` so that it ends with all new files or, on
    any failure, all old ones (ReportError)."""
    directory = Path(directory)
    pid = os.getpid()
    tmps = {name: directory / f".{name}.new{pid}" for name in texts}
    olds = {name: directory / f".{name}.old{pid}" for name in texts}
    moved: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            with open(tmps[name], "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for name in texts:
            if (directory / name).exists():
                os.link(directory / name, olds[name])  # the previous file stays reachable
        for name in texts:
            os.replace(tmps[name], directory / name)
            moved.append(name)
    except OSError as exc:
        for name in moved:  # put the previous files back
            try:
                if olds[name].exists():
                    os.replace(olds[name], directory / name)
                else:
                    os.unlink(directory / name)
            except OSError:
                pass
        raise ReportError(f"cannot write the report in {directory} ({exc}); the previous report is unchanged") from None
    finally:
        for path in (*tmps.values(), *olds.values()):
            try:
                path.unlink()
            except OSError:
                pass


def build(records: list[dict], run: dict) -> dict:
    """The results document; records sorted by test id so serial and xdist runs agree."""
    records = sorted(records, key=lambda r: r["nodeid"])
    return {"schema": SCHEMA, "run": run, "counts": counts(records), "calibration": calibration_counts(records),
            "claims": records}


def _series_note(records: list[dict]) -> str:
    return " " + _series.headline_note(records) if _series.headline_note(records) else ""


def summary_markdown(doc: dict, created: str) -> str:
    recs = doc["claims"]
    c = doc["counts"]
    lines = [
        "# mechcheck report",
        "",
        f"Created {created}. Device: {doc['run'].get('device')}. "
        f"{len(recs)} claims: {counts_line(c)}." + _series_note(recs)
        + (f" {calibration_line(doc.get('calibration'))}" if calibration_line(doc.get("calibration")) else ""),
        "",
        *([f"**PARTIAL RUN** ({doc['run']['partial']}): claims that did not run are not in this report.", ""]
          if doc["run"].get("partial") else []),
        "Heads are written LxHy (layer x, head y); the thesis notation H7.7 is L7H7.",
        "Measured values show a 95% bootstrap CI in brackets where the measurement samples prompts or sequences; "
        "such a claim passes when its whole CI satisfies the expectation, fails when the whole CI violates it, "
        "and is INCONCLUSIVE when the CI straddles the threshold.",
        "",
        "| claim | source | model | measured | expected | published | status | controls | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        sha = r["model"].get("sha256")
        model = r["model"]["name"] + (f" ({sha[:8]})" if sha else "")
        lines.append(
            "| " + " | ".join(_cell(x) for x in (
                record_id(r),
                f"{r['source']['document']}: {r['source']['where']}",
                model,
                fmt_measured(r.get("measured")),
                r["expected"]["text"],
                r.get("published") if r.get("published") is not None else "—",
                r["status"].upper(),
                fmt_controls(r),
                f"{r['timing']['call_s']:.2f}",
            )) + " |"
        )
    lines += why_markdown(doc)
    lines += ["", "## What replicated", ""]
    lines += [f"- {line}" for line in replication_lines(recs)]
    lines += _series.series_markdown(recs)
    lines += coverage_markdown(for_records(recs), recs)
    lines += ["", "## Claims", ""]
    seen = set()
    for r in recs:
        key = (r["id"], r["model"]["name"])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- **{r['id']}** — {r['statement']} — *{r['source']['document']}, {r['source']['where']}*"
                     + (f" Threshold: {r['tolerance']}" if r.get("tolerance") else ""))
    problems = [r for r in recs if r["status"] not in ("pass", "not-encoded")]
    if problems:
        lines += ["", "## Not passing", ""]
        for r in problems:
            lines.append(f"- `{r['nodeid']}` {r['status'].upper()}: {r.get('message') or ''}")
    unencoded = [r for r in recs if r["status"] == "not-encoded"]
    if unencoded:
        lines += ["", "## Not encoded", ""]
        for r in unencoded:
            lines.append(f"- **{r['id']}** ({r['source']['document']}, {r['source']['where']}): "
                         f"{r['statement']} — not encoded: {r['message']}")
    setup = sum(r["timing"]["setup_s"] for r in recs)
    call = sum(r["timing"]["call_s"] for r in recs)
    lines += ["", f"Time: {call:.1f} s in claims, {setup:.1f} s in set-up (model loading, training, caching).", ""]
    return "\n".join(lines)


def strict(x):
    """`x` with every NaN/inf float as null: results.json is strict JSON whatever a record holds
    (a NaN threshold or published value, a hand-edited shard)."""
    if isinstance(x, dict):
        return {k: strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _rendered(name: str, render_one, doc: dict, created: str) -> str:
    """One human-readable file; if rendering it fails, a page saying so (results.json still holds
    every record), so one odd record never loses the report."""
    try:
        return render_one(doc, created)
    except Exception as exc:  # noqa: BLE001  (whatever broke, the other files must still be written)
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if name.endswith(".html"):
            return (f"<!doctype html><meta charset='utf-8'><title>mechcheck report</title><h1>mechcheck report</h1>"
                    f"<p>This page could not be rendered ({_html.escape(why)}); results.json holds every record.</p>\n")
        return f"# mechcheck report\n\nThis summary could not be rendered ({why}); results.json holds every record.\n"


def write(directory: Path, records: list[dict], run: dict, created: str) -> dict:
    """Render everything first (a crash while rendering leaves the previous report untouched),
    then replace results.json, summary.md and index.html together. Non-finite numbers become null
    and a file that cannot be rendered says so, so the report of the claims that ran is never lost."""
    results = json.dumps(strict(build(records, run)), indent=2, sort_keys=True, allow_nan=False) + "\n"
    # The human-readable files render results.json as written (keys sorted), so a report merged
    # from shards, which reads results.json, renders byte for byte as the serial run's.
    doc = json.loads(results)
    texts = {"results.json": results,
             "summary.md": _rendered("summary.md", summary_markdown, doc, created),
             "index.html": _rendered("index.html", render, doc, created)}
    replace_together(Path(directory), texts)
    return doc
