"""Claim inventories: every testable statement of a source document, with the claim test that
encodes it or the reason it is not encoded (claims/inventory/<document-stem>.toml), and the
per-document coverage table of the report.

Why: the claims encode a document's headline results; a reader checking the document wants to
know how much of it was checked, and which statements were left out on purpose (and why)
rather than forgotten.

One file per document:

    document = "thesis-ioi-circuits-tinystories-8M.txt"   # file name in the seeds folder
    title = "..."
    [[statement]]
    id = "th-3.3-noind"              # unique in the file
    quote = "Remarkably, ..."        # exact text of the document (whitespace may differ)
    section = "§3.3, fig 3.3"        # as the document names it
    test = ["I1.8m"]                 # claim ids (@pytest.mark.claim(id=...)) that encode it
    # or, instead of test:
    category = "not-yet-encoded"     # one of CATEGORIES
    reason = "..."
    measurement = "..."              # not-yet-encoded only: what will encode it
    control = "..."                  # not-yet-encoded only: the model/setting where it must fail
    # optional: declared (a NOT_ENCODED id of a claim module), hedge, readings, listed, note
"""

from __future__ import annotations

import html
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = {
    "needs-unreleased-artifact": "needs artifacts that were not released",
    "qualitative-only": "qualitative only (no criterion that could fail)",
    "contradicts-document": "contradicts the document's own numbers",
    "cited-prior-work": "restates prior work the document does not measure",
    "not-yet-encoded": "testable, not encoded yet",
}
NOT_YET = "not-yet-encoded"
REQUIRED = ("id", "quote", "section")
OPTIONAL = ("test", "category", "reason", "declared", "hedge", "readings", "measurement", "control", "listed", "note")
INVENTORY_DIR = "inventory"


class InventoryError(ValueError):
    """A malformed inventory file; the message is one line naming the file."""


@dataclass(frozen=True)
class Statement:
    id: str
    quote: str
    section: str
    tests: tuple[str, ...] = ()
    category: str | None = None
    reason: str | None = None
    declared: str | None = None
    hedge: str | None = None
    readings: str | None = None
    measurement: str | None = None
    control: str | None = None
    listed: str | None = None
    note: str | None = None

    @property
    def status(self) -> str:
        """'encoded', or the category of why not."""
        return "encoded" if self.tests else self.category


@dataclass(frozen=True)
class Inventory:
    path: Path
    document: str
    title: str = ""
    statements: tuple[Statement, ...] = ()
    error: str | None = None  # set (and statements empty) when the file could not be loaded


def _statement(path: Path, i: int, raw) -> Statement:
    where = f"{path.name}: statement {i + 1}"
    if not isinstance(raw, dict):
        raise InventoryError(f"{where}: not a table")
    if isinstance(raw.get("id"), str):
        where = f"{path.name}: statement {raw['id']!r}"
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise InventoryError(f"{where}: unknown key(s) {', '.join(unknown)} "
                             f"(allowed: {', '.join(REQUIRED + OPTIONAL)})")
    for key in REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InventoryError(f"{where}: '{key}' must be a non-empty string")
    for key in OPTIONAL:
        if key != "test" and key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise InventoryError(f"{where}: '{key}' must be a non-empty string")
    tests = raw.get("test", [])
    tests = [tests] if isinstance(tests, str) else tests
    if not isinstance(tests, list) or not all(isinstance(t, str) and t.strip() for t in tests):
        raise InventoryError(f"{where}: 'test' must be a claim id or a list of claim ids")
    category = raw.get("category")
    if bool(tests) == bool(category):
        raise InventoryError(f"{where}: give either 'test' (the claim ids that encode it) or 'category' + 'reason'")
    if category is not None:
        if category not in CATEGORIES:
            raise InventoryError(f"{where}: unknown category {category!r} (one of {', '.join(CATEGORIES)})")
        if "reason" not in raw:
            raise InventoryError(f"{where}: category {category!r} needs a 'reason'")
        if category == NOT_YET and not ("measurement" in raw and "control" in raw):
            raise InventoryError(f"{where}: {NOT_YET} needs 'measurement' (what will encode it) "
                                 "and 'control' (where it must fail)")
    values = {k: raw[k] for k in OPTIONAL if k in raw and k != "test"}
    return Statement(**{k: raw[k] for k in REQUIRED}, tests=tuple(tests), **values)


def load(path: Path) -> Inventory:
    """One inventory file, validated; raises InventoryError (one line) when malformed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path.name}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path.name}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"document", "title", "statement"})
    if unknown:
        raise InventoryError(f"{path.name}: unknown top-level key(s) {', '.join(unknown)}")
    document = data.get("document")
    if not isinstance(document, str) or Path(document).stem != path.stem:
        raise InventoryError(f"{path.name}: 'document' must name the source document, whose stem is the file's "
                             f"({path.stem!r}); got {document!r}")
    raw = data.get("statement")
    if not isinstance(raw, list) or not raw:
        raise InventoryError(f"{path.name}: no [[statement]] tables")
    statements = tuple(_statement(path, i, s) for i, s in enumerate(raw))
    seen: set[str] = set()
    for s in statements:
        if s.id in seen:
            raise InventoryError(f"{path.name}: statement id {s.id!r} is used twice")
        seen.add(s.id)
    return Inventory(path, document, str(data.get("title", "")), statements)


def load_dir(directory: Path) -> list[Inventory]:
    """Every *.toml of `directory`, sorted by name; a malformed file becomes an Inventory with
    `error` set, so a report still renders (and says which file is broken)."""
    out = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            out.append(load(path))
        except InventoryError as exc:
            out.append(Inventory(path, path.stem, error=str(exc)))
    return out


def find_dir(records: list[dict], start: Path | None = None) -> Path | None:
    """The inventory folder of the claim modules that produced `records`: the nearest
    `inventory/` at or above each module's folder, up to the rootdir.

    Records carry only rootdir-relative nodeids ('claims/test_x.py::...'), so the module is
    located by walking up from the working directory to the folder holding that relative path
    (pytest run in or below the rootdir; xdist controllers import no test module), else through
    the process that imported it (a serial run started elsewhere). Nothing found (mechcheck run
    from another project without inventories): None.
    """
    modules = sorted({r["nodeid"].split("::")[0] for r in records if "::" in str(r.get("nodeid", ""))})
    imported = [f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)]
    here = (start or Path.cwd()).resolve()
    for module in modules:
        rel = Path(module)
        files = ([base / rel for base in (here, *here.parents) if (base / rel).is_file()][:1]
                 or [Path(f).resolve() for f in imported if Path(f).as_posix().endswith("/" + rel.as_posix())])
        for f in files:
            root = Path(str(f)[: -len(rel.as_posix())])  # the rootdir the nodeid is relative to
            for folder in (f.parent, *f.parent.parents):
                if (folder / INVENTORY_DIR).is_dir():
                    return folder / INVENTORY_DIR
                if folder == root or folder == folder.parent:
                    break
    return None


def for_records(records: list[dict]) -> list[Inventory]:
    """The inventories that belong to this run's claim modules ([] when there are none)."""
    directory = find_dir(records)
    return load_dir(directory) if directory else []


def _verdict(statuses: list[str]) -> str:
    """One statement's outcome in this run, from the records of the claims that encode it."""
    if not statuses:
        return "not run"
    if "fail" in statuses:
        return "fail"
    if "error" in statuses:
        return "error"
    return "hold" if "pass" in statuses else "not decided"


def coverage(inv: Inventory, records: list[dict]) -> dict:
    """Counts for one document: statements, encoded (and how they fared in `records`), not
    encodable by category, not yet encoded."""
    by_id: dict[str, list[str]] = {}
    for r in records:
        by_id.setdefault(r["id"], []).append(r["status"])
    out = {"document": inv.document, "statements": len(inv.statements), "encoded": 0,
           "run": {}, "not_encodable": {}, "not_yet_encoded": 0}
    for s in inv.statements:
        if s.tests:
            out["encoded"] += 1
            verdict = _verdict([st for t in s.tests for st in by_id.get(t, [])])
            out["run"][verdict] = out["run"].get(verdict, 0) + 1
        elif s.category == NOT_YET:
            out["not_yet_encoded"] += 1
        else:
            out["not_encodable"][s.category] = out["not_encodable"].get(s.category, 0) + 1
    return out


def _line(c: dict) -> str:
    run = ", ".join(f"{n} {v}" for v, n in sorted(c["run"].items()))
    reasons = ", ".join(f"{n} {CATEGORIES[k]}" for k, n in sorted(c["not_encodable"].items()))
    k = sum(c["not_encodable"].values())
    return (f"{c['encoded']} of {c['statements']} statements encoded" + (f" (this run: {run})" if run else "")
            + f"; {k} not encodable" + (f" ({reasons})" if reasons else "")
            + f"; {c['not_yet_encoded']} not yet encoded")


def coverage_markdown(inventories: list[Inventory], records: list[dict]) -> list[str]:
    """The summary.md section (lines); [] when there is no inventory."""
    if not inventories:
        return []
    lines = ["", "## Coverage of the source documents", "",
             "Every testable statement of each document is listed in claims/inventory/ with the claim "
             "that encodes it or the reason it is not encoded. In this run a statement holds when every decided "
             "run of its claims passes and fails when any fails.", ""]
    for inv in inventories:
        if inv.error:
            lines.append(f"- {inv.path.name}: inventory not loaded: {inv.error}")
        else:
            lines.append(f"- **{inv.document}**: {_line(coverage(inv, records))}")
    return lines


def coverage_html(inventories: list[Inventory], records: list[dict]) -> str:
    """The index.html section; '' when there is no inventory."""
    if not inventories:
        return ""
    e = html.escape
    rows = []
    for inv in inventories:
        if inv.error:
            rows.append(f"<tr><td>{e(inv.path.name)}</td><td colspan='4'>inventory not loaded: "
                        f"{e(inv.error)}</td></tr>")
            continue
        c = coverage(inv, records)
        run = ", ".join(f"{n} {v}" for v, n in sorted(c["run"].items())) or "—"
        reasons = "<br>".join(f"{n} {e(CATEGORIES[k])}" for k, n in sorted(c["not_encodable"].items())) or "—"
        rows.append(f"<tr><td>{e(inv.document)}</td><td>{c['encoded']} of {c['statements']}</td><td>{e(run)}</td>"
                    f"<td>{sum(c['not_encodable'].values())}<br><small>{reasons}</small></td>"
                    f"<td>{c['not_yet_encoded']}</td></tr>")
    return ("<h2>Coverage of the source documents</h2><p>Every testable statement of each document is listed "
            "in claims/inventory/ with the claim that encodes it or the reason it is not encoded. In this run a "
            "statement holds when every decided run of its claims passes and fails when any fails.</p>"
            "<table><tr><th>document</th><th>encoded</th><th>this run</th><th>not encodable</th>"
            f"<th>not yet encoded</th></tr>{''.join(rows)}</table>")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def misquoted(inv: Inventory, document_text: str) -> list[str]:
    """Ids of statements whose quote is not in the document (whitespace-insensitive)."""
    doc = normalise(document_text)
    return [s.id for s in inv.statements if normalise(s.quote) not in doc]


__all__ = ["CATEGORIES", "Inventory", "InventoryError", "Statement", "coverage", "coverage_html",
           "coverage_markdown", "find_dir", "for_records", "load", "load_dir", "misquoted"]
