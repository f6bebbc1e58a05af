"""Report sections of checkpoint series: per claim, the measured value with its CI against step,
the threshold, each step's verdict, the step where the claim first holds and the last step where it
flips back; and the headline, which counts only each series' last checkpoint (the model a user
would ship). Works from records (results.json) alone.
"""

from __future__ import annotations

import base64
import html
import io
import re

# Imported with the plugin, at start-up: a module first imported inside a pytester inline run is
# dropped from sys.modules afterwards, and a second import of matplotlib's axes/legend then fails
# isinstance checks against the first ("Legend needs either Axes or FigureBase as parent").
from matplotlib.figure import Figure
import matplotlib.backends.backend_agg  # noqa: F401,E402  (savefig's PNG canvas, same reason)
from matplotlib.patches import Rectangle  # noqa: F401,E402  (html.py's, same reason)

def series_of(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """{(claim id, model): records by step} for the records that carry a step."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("step") is not None:
            groups.setdefault((r["id"], r["model"]["name"]), []).append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: (r["step"], r["nodeid"]))
    return groups


def headline(records: list[dict]) -> list[dict]:
    """The records the headline counts: every record not in a series, and of each series (claim,
    model, and any other parametrization) only the last checkpoint's."""
    last: dict[tuple, dict] = {}
    out = []
    for r in records:
        if r.get("step") is None:
            out.append(r)
            continue
        key = (r["id"], r["model"]["name"], re.sub(r"(^|-)step\d+(-|$)", r"\1\2", r.get("param") or ""))
        if key not in last or r["step"] > last[key]["step"]:
            last[key] = r
    return out + sorted(last.values(), key=lambda r: r["nodeid"])


def headline_note(records: list[dict]) -> str:
    """The sentence that says the counts are of each series' last checkpoint ("" without series)."""
    n = len(records) - len(headline(records))
    if not n:
        return ""
    last: dict[str, int] = {}
    for r in records:
        if r.get("step") is not None:
            last[r["model"]["name"]] = max(r["step"], last.get(r["model"]["name"], r["step"]))
    which = ", ".join(f"step {step} of {model}" for model, step in sorted(last.items()))
    return (f"Counts are of each checkpoint series' last checkpoint ({which}; {n} earlier checkpoints' records "
            "are in the series sections).")


def transitions(rs: list[dict]) -> tuple[int | None, int | None]:
    """(first step where the claim holds, last step where it flips back from pass to fail) over
    the decided steps; None where there is none."""
    decided = [r for r in rs if r["status"] in ("pass", "fail")]
    first = next((r["step"] for r in decided if r["status"] == "pass"), None)
    back = [b["step"] for a, b in zip(decided, decided[1:]) if a["status"] == "pass" and b["status"] == "fail"]
    return first, (back[-1] if back else None)


def _scalar(r: dict) -> tuple[float | None, float | None, float | None]:
    m = r.get("measured") or {}
    v = m.get("value")
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None, None, None
    ci = m.get("ci") or [None, None]
    return float(v), ci[0], ci[1]


MARKERS = {"pass": ("o", "#2a7"), "fail": ("x", "#c33"), "inconclusive": ("D", "#bc4c00"), "error": ("s", "#888"),
           "skip": ("s", "#bbb")}


def plot(rs: list[dict], title: str):
    """The measured value (line) with its CI band against step, the threshold (dashed), and each
    step's verdict as a marker. matplotlib's Figure API: no pyplot global state."""

    fig = Figure(figsize=(6.4, 3.0), dpi=80)
    ax = fig.add_subplot()
    pts = [(r["step"], *_scalar(r)) for r in rs]
    xs = [s for s, v, _, _ in pts if v is not None]
    ax.plot(xs, [v for _, v, _, _ in pts if v is not None], color="#246", lw=1.2, label="measured")
    band = [(s, lo, hi) for s, v, lo, hi in pts if lo is not None and hi is not None]
    if band:
        ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                        color="#246", alpha=0.2, lw=0, label="95% CI")
    threshold = (rs[0].get("expected") or {}).get("threshold")
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        ax.axhline(threshold, color="#c33", ls="--", lw=1, label=f"threshold {threshold:g}")
    lo_y = min([v for _, v, _, _ in pts if v is not None], default=0.0)
    for status, (marker, color) in MARKERS.items():
        sel = [(s, v if v is not None else lo_y) for s, v, _, _ in pts if _status(rs, s) == status]
        if sel:
            ax.scatter([s for s, _ in sel], [v for _, v in sel], marker=marker, color=color, s=18,
                       zorder=3, label=status.upper())
    first, back = transitions(rs)
    for step, text in ((first, "holds"), (back, "flips back")):
        if step is not None:
            ax.axvline(step, color="#999", lw=0.8, ls=":")
            ax.annotate(f"{text} @ {step}", (step, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, ha="left", va="top")
    ax.set_xlabel("training step")
    ax.set_ylabel("measured")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _status(rs: list[dict], step: int) -> str:
    return next(r["status"] for r in rs if r["step"] == step)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: byte-stable
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def series_markdown(records: list[dict]) -> list[str]:
    """summary.md's series sections alone (no figures rendered)."""
    return series_sections(records, figures=False)[0]


def series_sections(records: list[dict], figures: bool = True) -> tuple[list[str], str]:
    """(summary.md lines, index.html fragment): one section per claim run over a series."""
    md: list[str] = []
    parts: list[str] = []
    for (cid, model), rs in sorted(series_of(records).items()):
        first, back = transitions(rs)
        verdict = (f"Holds first at step {first}" if first is not None else "Never holds") + (
            f"; flips back at step {back}." if back is not None else ".")
        last = rs[-1]
        md += ["", f"## Checkpoint series: {cid} on {model}", "",
               f"{len(rs)} checkpoints, steps {rs[0]['step']}–{last['step']}. {verdict} "
               f"Last checkpoint: {last['status'].upper()}. Expected {last['expected']['text']}.", "",
               "| step | measured | CI | status |", "|---|---|---|---|"]
        for r in rs:
            v, lo, hi = _scalar(r)
            md.append(f"| {r['step']} | {'—' if v is None else f'{v:.4g}'} | "
                      f"{'—' if lo is None else f'[{lo:.4g}, {hi:.4g}]'} | {r['status'].upper()} |")
        if not figures:
            continue
        src = _png(plot(rs, f"{cid} on {model}"))
        parts.append(f'<section class="series"><h2>Checkpoint series: {html.escape(cid)} on {html.escape(model)}</h2>'
                     f"<p>{html.escape(verdict)} Last checkpoint: {last['status'].upper()}.</p>"
                     f'<img alt="{html.escape(cid)} against step" src="{src}"></section>')
    return md, "\n".join(parts)
