"""The report's words: counts per status, what replicated, a measured value as text. Shared by
summary.md, index.html and the terminal summary, so the three say the same."""

from __future__ import annotations

from collections import defaultdict

from mechcheck.report.series import headline

STATUSES = ("pass", "fail", "inconclusive", "skip", "error", "not-encoded")


DECIDED = ("pass", "fail")  # inconclusive is not decided: its CI straddles the threshold


def counts(records: list[dict]) -> dict[str, int]:
    """Records per status (a checkpoint series counts its last checkpoint only)."""
    return {s: sum(r["status"] == s for r in headline(records)) for s in STATUSES}


def counts_line(c: dict[str, int]) -> str:
    return (f"{c['pass']} pass, {c['fail']} fail, {c['inconclusive']} inconclusive, {c['skip']} skip, "
            f"{c['error']} error, {c['not-encoded']} not encoded")


CALIBRATION = ("calibrated", "uncalibrated", "no-controls", "skipped", "not-run")


def calibration_counts(records: list[dict]) -> dict[str, int]:
    """Claim records per calibration state (results.json `calibration`; headline records only, as
    `counts`): uncalibrated = a control did not decide as it must, or a kind of control is missing."""
    heads = [r for r in headline(records) if calibration_state(r)]
    return {s: sum(calibration_state(r) == s for r in heads) for s in CALIBRATION}


def calibration_line(c: dict[str, int] | None) -> str:
    """The headline's controls sentence ("" for a report without controls: results/2)."""
    if not c or not any(c.values()):
        return ""
    extra = "".join(f", {c[k]} {label}" for k, label in (("no-controls", "without declared controls"),
                    ("skipped", "with controls skipped"), ("not-run", "not decided (controls not run)")) if c.get(k))
    return f"Controls: {c['uncalibrated']} uncalibrated, {c['calibrated']} calibrated{extra}."


def calibration_state(r: dict) -> str | None:
    """calibrated | uncalibrated | no-controls | skipped | not-run, or None (a record without the
    field: not a claim test, or a results/2 record)."""
    return (r.get("calibration") or {}).get("state")


def _short(v) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        text = f"{v:.2g}" if abs(v) < 0.01 and v != 0 else f"{v:.2f}".rstrip("0").rstrip(".")
        return text.replace("-", "−")
    return "array" if isinstance(v, list) else "—"


def fmt_controls(r: dict) -> str:
    """The compact controls column: `+0.91 ✔ / −0.02 ✔ · interventional` (sign: the control's kind,
    then its measured value; ✔ it decided as it must, ✘ it did not), the detectable effect of an
    absence claim, and UNCALIBRATED when a control did not decide as it must."""
    state = calibration_state(r)
    if state is None or r.get("status") == "not-encoded":
        return "—"
    if state == "no-controls":
        return "no controls declared"
    evidence = f" · {r['evidence']}" if r.get("evidence") else ""
    if r.get("hedge"):  # the document hedges the statement (issue #21): a FAIL reads "the hedge was warranted"
        evidence += f" · hedged ({r['hedge']})"
    if state == "skipped":
        return "controls skipped" + evidence
    if state == "not-run":
        return "controls not run" + evidence
    parts = []
    for c in r.get("controls") or []:
        value = _short(c.get("value"))
        value = f"({value})" if value.startswith("−") else value  # the sign in front is the control's kind
        parts.append(("+" if c["kind"] == "positive" else "−") + value + (" ✔" if c.get("ok") else " ✘"))
    text = " / ".join(parts)
    effect = r.get("detectable_effect")
    if effect:
        text += f" · detects ≥ {effect['effect']:g}" + ("" if effect.get("detected") else " (NOT detected)")
    text += evidence
    if state == "uncalibrated":
        text += " · UNCALIBRATED"
    return text


def replication(records: list[dict]) -> list[tuple[str, str, int, int, int]]:
    """Per claim id: (id, model, passed, decided, total) over its parametrizations (e.g. seeds);
    decided counts pass and fail only (an inconclusive run is not decided)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["id"], r["model"]["name"])].append(r)
    out = []
    for (cid, model), rs in sorted(groups.items()):
        passed = sum(r["status"] == "pass" for r in rs)
        decided = sum(r["status"] in DECIDED for r in rs)
        out.append((cid, model, passed, decided, len(rs)))
    return out


def replication_lines(records: list[dict], every: bool = True) -> list[str]:
    """"T2 on M: holds in 1 of 2 decided runs (3 in all; 1 inconclusive)" per claim id (with
    every=False only those run more than once)."""
    records = [r for r in records if r["status"] != "not-encoded"]
    lines = []
    for cid, model, passed, decided, total in replication(records):
        if total == 1 and not every:
            continue
        n_inc = sum(r["status"] == "inconclusive" and r["id"] == cid and r["model"]["name"] == model
                    for r in records)
        inc = f"; {n_inc} inconclusive, not counted as decided" if n_inc else ""
        if decided:
            lines.append(f"{cid} on {model}: holds in {passed} of {decided} decided runs ({total} in all{inc})")
        else:
            lines.append(f"{cid} on {model}: not decided in this run ({total} in all: skipped, errored or inconclusive)")
    return lines


def fmt_measured(m: dict | None) -> str:
    if not m or (m.get("value") is None and not m.get("text")):
        return "—"
    text = m.get("text") or str(m["value"])
    if m.get("ci") and None not in m["ci"]:
        lo, hi = m["ci"]
        text += f" [{lo:.4g}, {hi:.4g}]"
    return text


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def record_id(r: dict) -> str:
    """A record's name in every table: its claim id and its parametrization, `T2[seed0]`."""
    return r.get("id", r.get("nodeid", "?")) + (f"[{r['param']}]" if r.get("param") else "")
