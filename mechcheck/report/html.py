"""reports/<run>/index.html: one self-contained page (no network; figures are inline PNGs) with
the summary table and, per claim, the figure a researcher would draw.

Which figure follows from the measurement: a [layer x head] map (the measured value, or
details.head_map for a claim about one head of it) is a heatmap with the claimed head(s)
outlined (from the expectation or details.claimed_heads); a per-head vector a bar chart with the claimed heads highlighted; a curve
(logit difference through the residual stream) a line; an ablation clean-vs-ablated bars; and an
attention pattern recorded by the claim (details.example_pattern) the pattern of the claimed head
on the claim's example.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from mechcheck.report.inventory import coverage_html, for_records
from mechcheck.report.series import headline_note, series_sections
from mechcheck.report.text import calibration_line, counts_line, fmt_controls, fmt_measured, record_id
from mechcheck.report.why import why_html

STATUS_COLOUR = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#bc4c00", "skip": "#6e7781",
                 "error": "#9a6700", "not-encoded": "#6e7781"}


def _figure(figsize):
    """A matplotlib Figure with its own Agg canvas: pyplot and the global backend are never
    touched, so the user's process (an interactive session, their own plots) is left as it was."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _items(expected: dict) -> list:
    if "items" in expected:
        return [tuple(i) if isinstance(i, list) else i for i in expected["items"]]
    if "item" in expected:
        i = expected["item"]
        return [tuple(i) if isinstance(i, list) else i]
    return []


def figures(record: dict) -> list[str]:
    """PNG data URLs for one claim record (possibly none)."""
    from matplotlib.patches import Rectangle

    m = record.get("measured") or {}
    details = m.get("details") or {}
    out = []
    value = m.get("value")
    arr = None
    if value is not None and not isinstance(value, (str, dict)):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            arr = None
    items = _items(record["expected"]) + [tuple(h) for h in details.get("claimed_heads", [])]
    title = f"{record['id']} — {record['model']['name']}"
    if (arr is None or arr.ndim != 2) and details.get("head_map") is not None:
        arr = np.asarray(details["head_map"], dtype=float)  # a scalar claim about one head of a map
    if arr is not None and arr.ndim == 2:
        fig, ax = _figure((min(1.2 + 0.35 * arr.shape[1], 8), 0.6 + 0.35 * arr.shape[0]))
        im = ax.imshow(arr, cmap="viridis", aspect="auto")
        for it in items:
            if isinstance(it, tuple) and len(it) == 2:
                ax.add_patch(Rectangle((it[1] - 0.5, it[0] - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax)
        out.append(_png(fig))
    elif arr is not None and arr.ndim == 1 and arr.size > 1:
        fig, ax = _figure((6, 2.4))
        colours = ["#cf222e" if i in items else "#4c72b0" for i in range(arr.size)]
        ax.bar(range(arr.size), arr, color=colours)
        ax.set_xlabel("head")
        ax.set_title(title + " (claimed heads in red)", fontsize=9)
        out.append(_png(fig))
    if "curve" in details and "labels" in details:
        fig, ax = _figure((6, 2.6))
        ax.plot(range(len(details["curve"])), details["curve"], marker="o")
        ax.set_xticks(range(len(details["labels"])), details["labels"], rotation=90, fontsize=7)
        ax.set_ylabel("logit difference")
        ax.set_title(title + ": through the residual stream", fontsize=9)
        out.append(_png(fig))
    if "clean_accuracy" in details and "ablated_accuracy" in details:
        fig, ax = _figure((3, 2.4))
        ax.bar(["clean", "ablated"], [details["clean_accuracy"], details["ablated_accuracy"]], color=["#4c72b0", "#cf222e"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("holdout accuracy")
        ax.set_title(title, fontsize=9)
        out.append(_png(fig))
    example = details.get("example_pattern")
    if example:
        pattern = np.asarray(example["pattern"], dtype=float)
        fig, ax = _figure((4 + 0.12 * len(example["tokens"]), 3.5 + 0.12 * len(example["tokens"])))
        ax.imshow(pattern, cmap="Blues", vmin=0, vmax=1)
        ticks = [t.replace("\n", "\\n") for t in example["tokens"]]
        ax.set_xticks(range(len(ticks)), ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
        ax.set_title(f"{title}: {example.get('head', '')} attention (query rows, key columns)", fontsize=9)
        out.append(_png(fig))
    return out


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top}th{background:#f6f8fa}
.s{color:#fff;padding:1px 6px;border-radius:8px;font-weight:600}section{margin:18px 0;padding-top:8px;border-top:1px solid #d0d7de}
img{margin:4px 8px 4px 0;border:1px solid #eee}small{color:#57606a}"""


def _controls_html(r: dict) -> str:
    """A claim's controls as a small table (the same bound measurement on each control model)."""
    e = html.escape
    ctl = r.get("controls") or []
    cal = r.get("calibration") or {}
    head = ""
    if cal.get("state") == "uncalibrated":
        head = f"<p><b>UNCALIBRATED</b>: {e(cal.get('reason', ''))}</p>"
    elif cal.get("state") in ("no-controls", "skipped", "not-run"):
        head = f"<p><small>{e(cal.get('reason', ''))}</small></p>"
    if not ctl:
        return head
    rows = "".join(
        f"<tr><td>{'+' if c['kind'] == 'positive' else '−'} {e(c['name'])}</td><td>{e(c['model'])}</td>"
        f"<td>{e(fmt_measured({'value': c.get('value'), 'ci': c.get('ci')}))}</td>"
        f"<td><span class='s' style='background:{STATUS_COLOUR.get(c['status'], '#6e7781')}'>{c['status'].upper()}</span>"
        f" {'✔' if c.get('ok') else '✘ expected ' + c['expected'].upper()}</td></tr>" for c in ctl)
    return (f"{head}<table><tr><th>control</th><th>model</th><th>measured</th><th>verdict</th></tr>{rows}</table>"
            f"<small>evidence: {e(r.get('evidence') or '—')}</small>")


def render(doc: dict, created: str) -> str:
    """The whole page."""
    e = html.escape
    recs = doc["claims"]
    c = doc["counts"]
    rows = []
    for i, r in enumerate(recs):
        pid = record_id(r)
        status = f"<span class='s' style='background:{STATUS_COLOUR[r['status']]}'>{r['status'].upper()}</span>"
        rows.append(
            f"<tr><td><a href='#c{i}'>{e(pid)}</a></td><td>{e(r['source']['document'])}<br><small>{e(r['source']['where'])}</small></td>"
            f"<td>{e(r['model']['name'])}</td><td>{e(fmt_measured(r.get('measured')))}</td><td>{e(r['expected']['text'])}</td>"
            f"<td>{e(str(r.get('published')) if r.get('published') is not None else '—')}</td>"
            f"<td>{status}</td><td>{e(fmt_controls(r))}</td>"
            f"<td>{r['timing']['call_s']:.2f}</td></tr>")
    sections = [series_sections(recs)[1]]  # one plot per claim run over a series
    for i, r in enumerate(recs):
        pid = record_id(r)
        imgs = "".join(f"<img src='{src}' alt='{e(pid)} figure'>" for src in figures(r))
        sha = r["model"].get("sha256")
        sections.append(
            f"<section id='c{i}'><h3>{e(pid)} <span class='s' style='background:{STATUS_COLOUR[r['status']]}'>"
            f"{r['status'].upper()}</span></h3><p>{e(r['statement'])}<br><small>{e(r['source']['document'])}, "
            f"{e(r['source']['where'])}. Threshold: {e(r.get('tolerance') or '—')}</small></p>"
            f"<p>Model {e(r['model']['name'])}{' sha256 ' + e(sha[:16]) + '…' if sha else ''}; measured "
            f"<b>{e(fmt_measured(r.get('measured')))}</b>; expected {e(r['expected']['text'])}"
            f"{'; ' + e(r['message']) if r.get('message') else ''}</p>{_controls_html(r)}{imgs}</section>")
    sections.insert(0, coverage_html(for_records(recs), recs))
    sections.insert(0, why_html(doc))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>mechcheck report</title>"
        f"<style>{CSS}</style></head><body><h1>mechcheck report</h1>"
        f"<p>Created {e(created)} on {e(str(doc['run'].get('device')))}; torch {e(str(doc['run'].get('torch')))}, "
        f"TransformerLens {e(str(doc['run'].get('transformer_lens')))}. {len(recs)} claims: "
        f"{e(counts_line(c))}. "
        + (f"<b>{e(calibration_line(doc.get('calibration')))}</b> " if calibration_line(doc.get("calibration")) else "") +
        f"{e(headline_note(recs)) + ' ' if headline_note(recs) else ''}"
        "Heads are LxHy (layer x, head y; the thesis' H7.7 is L7H7); brackets are 95% bootstrap CIs: a claim "
        "with one passes when the whole CI satisfies the expectation, fails when the whole CI violates it, and is "
        "INCONCLUSIVE when it straddles the threshold.</p>"
        + (f"<p><b>PARTIAL RUN</b> ({e(str(doc['run']['partial']))}): claims that did not run are not in this "
           "report.</p>" if doc["run"].get("partial") else "") +
        "<table><tr><th>claim</th><th>source</th><th>model</th><th>measured</th><th>expected</th><th>published</th>"
        f"<th>status</th><th><a href='#why'>controls</a></th><th>time (s)</th></tr>{''.join(rows)}</table>{''.join(sections)}</body></html>")
