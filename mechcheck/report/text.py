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
