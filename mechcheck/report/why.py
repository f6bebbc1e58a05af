"""The report's section "Why believe a verdict": what the controls column says, one worked claim, the
uncalibrated claims with their one-line reasons, and where the controls' numbers came from (run or
cache).

Why a section: a verdict is only as good as the check's power to decide it; a reader of a paper's
claim wants to see, next to it, that the same measurement passes where the mechanism is and fails
where it is not (issue #19). Works from records alone (summary.md and index.html say the same).
"""

from __future__ import annotations

import html

from mechcheck.report.text import calibration_state, fmt_measured

EXPLAIN = (
    "The controls column runs each claim's own bound measurement (the same prompts or sequences, sequence "
    "length, BOS handling and vocabulary) on control models: `+` a positive control (the mechanism built or "
    "trained in: a planted head, an organism, a trained model), `−` a negative control (the same shape without "
    "it: ablated, frozen, random weights), each with its measured value and ✔ when the claim's own rule "
    "decided it as it must (a presence claim PASSes on a positive and FAILs on a negative control; an absence "
    "claim the other way round), ✘ when it did not. A claim with a ✘, or without a positive or a negative "
    "control, is UNCALIBRATED: its verdict is still recorded, but this check has not shown that it can tell "
    "the mechanism's presence from its absence. `detects ≥ X` (absence claims): a planted effect of strength X "
    "makes the check fail, so a PASS means no effect that large. The evidence rung says what kind of evidence "
    "the measurement is: observational (attention, head scores, probes, lenses: the mechanism is seen) or "
    "interventional (ablation, patching: the model's output depends on it)."
)


def _claims_with(records: list[dict], state: str) -> list[dict]:
    seen, out = set(), []
    for r in records:
        if calibration_state(r) == state and r["id"] not in seen:
            seen.add(r["id"])
            out.append(r)
    return out


def worked(records: list[dict]) -> dict | None:
    """The worked claim: a calibrated, decided one with both kinds of control (interventional first)."""
    good = [r for r in records if calibration_state(r) == "calibrated" and r["status"] in ("pass", "fail")
            and {c["kind"] for c in r.get("controls") or []} == {"positive", "negative"}]
    good.sort(key=lambda r: (r.get("evidence") != "interventional", r["status"] != "pass", r["nodeid"]))
    return good[0] if good else None


def _control_line(c: dict) -> str:
    ci = c.get("ci")
    ci_text = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if isinstance(ci, list) and None not in ci else ""
    value = c.get("value")
    shown = f"{value:.4g}" if isinstance(value, (int, float)) else "array" if value is not None else "no value"
    verdict = c["status"].upper()
    must = "as it must" if c.get("ok") else f"expected {c['expected'].upper()}"
    cached = " (cached)" if c.get("cached") else ""
    return f"{'+' if c['kind'] == 'positive' else '−'} {c['name']} ({c['model']}): {shown}{ci_text} → {verdict}, {must}{cached}"


def sources_line(records: list[dict]) -> str | None:
    """How the controls' numbers were obtained in this run."""
    distinct = {(r["id"], c["name"]): c for r in records for c in r.get("controls") or []}  # once per claim
    ctl = list(distinct.values())
    modes = sorted({r.get("controls_mode") for r in records if r.get("controls_mode")})
    if not ctl and not modes:
        return None
    cached = sum(bool(c.get("cached")) for c in ctl)
    return (f"Controls mode: {', '.join(modes) or '—'} (--mc-controls); {len(ctl)} controls, {cached} read "
            f"from the cache (measured once per claim, bound settings and mechcheck code), {len(ctl) - cached} "
            "measured in this run.")


def why_markdown(doc: dict) -> list[str]:
    records = doc["claims"]
    if not any(calibration_state(r) for r in records):
        return []  # a results/2 report (merged or diffed): no controls recorded
    lines = ["", "## Why believe a verdict", "", EXPLAIN, ""]
    src = sources_line(records)
    if src:
        lines += [src, ""]
    w = worked(records)
    if w is not None:
        pid = w["id"] + (f"[{w['param']}]" if w.get("param") else "")
        lines += [f"Worked claim: **{pid}** ({w['statement']}; {w.get('evidence') or 'evidence rung not declared'}), "
                  f"expected {w['expected']['text']}, measured {fmt_measured(w.get('measured'))} on "
                  f"{w['model']['name']}: {w['status'].upper()}. Its controls, with the same bound measurement:", ""]
        lines += [f"- {_control_line(c)}" for c in w["controls"]]
        lines += ["", "The check passes where the mechanism is present and fails where it is absent, at the claim's "
                  "own settings, so its verdict on the checkpoint speaks about the checkpoint, not about the check.", ""]
    unc = _claims_with(records, "uncalibrated")
    lines += [f"Uncalibrated claims ({len(unc)}):" + ("" if unc else " none."), ""]
    lines += [f"- **{r['id']}**: {(r.get('calibration') or {}).get('reason', '')}" for r in unc]
    none = _claims_with(records, "no-controls")
    if none:
        lines += ["" if unc else "", f"Claims with no controls declared yet ({len(none)}): "
                  + ", ".join(r["id"] for r in none) + "."]
    return lines


def why_html(doc: dict) -> str:
    """The same section for index.html."""
    md = why_markdown(doc)
    if not md:
        return ""
    e = html.escape
    out, items = [], []
    for line in md[3:]:
        if line.startswith("- "):
            items.append(f"<li>{e(line[2:]).replace('**', '')}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line:
            out.append(f"<p>{e(line).replace('**', '')}</p>")
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    return "<section id='why'><h2>Why believe a verdict</h2>" + "".join(out) + "</section>"
