"""The run's report: results.json (machine form) and summary.md (the table a person reads).

Why atomic: a killed or crashed run must leave the previous report intact, so each file is
written to a temporary name in the same folder and moved into place with os.replace.
Schema: docs in README.md ("The report"); `SCHEMA` names its version.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

SCHEMA = "mechcheck.results/1"
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
STATUSES = ("pass", "fail", "skip", "error", "not-encoded")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def build(records: list[dict], run: dict) -> dict:
    """The results document; records sorted by test id so serial and xdist runs agree."""
    records = sorted(records, key=lambda r: r["nodeid"])
    from mechcheck.series import headline  # issue13: a series counts its last checkpoint

    counts = {s: sum(r["status"] == s for r in headline(records)) for s in STATUSES}  # issue13
    return {"schema": SCHEMA, "run": run, "counts": counts, "claims": records}


def replication(records: list[dict]) -> list[tuple[str, str, int, int, int]]:
    """Per claim id: (id, model, passed, decided, total) over its parametrizations (e.g. seeds)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["id"], r["model"]["name"])].append(r)
    out = []
    for (cid, model), rs in sorted(groups.items()):
        passed = sum(r["status"] == "pass" for r in rs)
        decided = sum(r["status"] in ("pass", "fail") for r in rs)
        out.append((cid, model, passed, decided, len(rs)))
    return out


def series_markdown(records: list[dict]) -> list[str]:
    """A table per claim run over a checkpoint series (params "stepN"): the measured value and
    status at every step, and the step at which the claim flips."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if (r.get("param") or "").startswith("step") and r["param"][4:].isdigit():
            groups[(r["id"], r["model"]["name"])].append(r)
    lines = []
    for (cid, model), rs in sorted(groups.items()):
        rs.sort(key=lambda r: int(r["param"][4:]))
        flips = [int(b["param"][4:]) for a, b in zip(rs, rs[1:]) if a["status"] != b["status"]]
        lines += ["", f"## Checkpoint series: {cid} on {model}", "",
                  f"Flips at step {', '.join(map(str, flips))}." if flips else "Never flips.", "",
                  "| step | measured | status |", "|---|---|---|"]
        lines += [f"| {r['param'][4:]} | {_cell(fmt_measured(r.get('measured')))} | {r['status'].upper()} |" for r in rs]
    return lines


def fmt_measured(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "—"
    text = m.get("text") or str(m["value"])
    if m.get("ci"):
        lo, hi = m["ci"]
        text += f" [{lo:.4g}, {hi:.4g}]"
    if m.get("p") is not None:
        text += f" (p={m['p']:.3g})"
    return text


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _series_note(records: list[dict]) -> str:  # issue13
    from mechcheck.series import headline_note  # issue13

    return " " + headline_note(records) if headline_note(records) else ""  # issue13


def summary_markdown(doc: dict, created: str) -> str:
    recs = doc["claims"]
    c = doc["counts"]
    lines = [
        "# mechcheck report",
        "",
        f"Created {created}. Device: {doc['run'].get('device')}. "
        f"{len(recs)} claims: {c['pass']} pass, {c['fail']} fail, {c['skip']} skip, {c['error']} error, "
        f"{c['not-encoded']} not encoded." + _series_note(recs),  # issue13
        "",
        "Heads are written LxHy (layer x, head y); the thesis notation H7.7 is L7H7.",
        "Measured values show a 95% bootstrap CI in brackets where the measurement samples prompts or sequences.",
        "",
        "| claim | source | model | measured | expected | published | status | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        sha = r["model"].get("sha256")
        model = r["model"]["name"] + (f" ({sha[:8]})" if sha else "")
        lines.append(
            "| " + " | ".join(_cell(x) for x in (
                r["id"] + (f"[{r['param']}]" if r.get("param") else ""),
                f"{r['source']['document']}: {r['source']['where']}",
                model,
                fmt_measured(r.get("measured")),
                r["expected"]["text"],
                r.get("published") if r.get("published") is not None else "—",
                r["status"].upper(),
                f"{r['timing']['call_s']:.2f}",
            )) + " |"
        )
    lines += ["", "## What replicated", ""]
    for cid, model, passed, decided, total in replication([r for r in recs if r["status"] != "not-encoded"]):
        if decided:
            lines.append(f"- {cid} on {model}: holds in {passed} of {decided} decided runs ({total} in all)")
        else:
            lines.append(f"- {cid} on {model}: not decided in this run ({total} skipped or errored)")
    from mechcheck import series as _series  # issue13

    lines += series_markdown([r for r in recs if r.get("step") is None]) + _series.series_markdown(recs)  # issue13
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


def write(directory: Path, records: list[dict], run: dict, created: str) -> dict:
    """Render everything first, then write results.json, summary.md and index.html, each
    atomically: a crash while rendering leaves the previous report untouched."""
    from mechcheck.html import render

    doc = build(records, run)
    texts = {"results.json": json.dumps(doc, indent=2, sort_keys=True) + "\n",
             "summary.md": summary_markdown(doc, created), "index.html": render(doc, created)}
    directory = Path(directory)
    for name, text in texts.items():
        atomic_write(directory / name, text)
    return doc
