"""The claim inventories (claims/inventory/*.toml) against the claim suite: every claim test has
an inventory entry, every entry names claims that exist, every quote is the document's text;
malformed files give one line; the coverage table counts right."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from mechcheck.core.claim import Claim

from mechcheck.report import inventory
from mechcheck.report.inventory import InventoryError

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "claims" / "inventory"
# the source documents (the claim modules cite them as ../shared/seeds/ from the repository root)
SEEDS = Path(os.environ.get("MECHCHECK_SEEDS", ROOT.parent / "shared" / "seeds"))


def _claim_modules():
    """(claim ids, NOT_ENCODED ids) declared by claims/*.py, read from the marks the modules
    attach (importing a module runs no claim)."""
    claims, not_encoded = set(), set()
    for path in sorted((ROOT / "claims").rglob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_inventory_check_{path.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for obj in vars(module).values():
            for mark in getattr(obj, "pytestmark", []) if callable(obj) else []:
                if mark.name == "claim":
                    claims.add(Claim.from_marker(mark).id)  # keyword or declaration form (issue #19)
        not_encoded |= {n.id for n in getattr(module, "NOT_ENCODED", [])}
    return claims, not_encoded


@pytest.fixture(scope="module")
def declared():
    return _claim_modules()


@pytest.fixture(scope="module")
def inventories():
    found = [inventory.load(p) for p in sorted(INVENTORY.glob("*.toml"))]
    assert found, f"no inventory in {INVENTORY}"
    return found


def test_every_claim_has_an_inventory_entry(declared, inventories):
    claims, _ = declared
    assert len(claims) > 40  # the marks were found (a broken reader would make this test vacuous)
    named = {t for inv in inventories for s in inv.statements for t in s.tests}
    assert sorted(claims - named) == [], "claim tests with no inventory entry"


def test_every_entry_names_an_existing_claim(declared, inventories):
    claims, _ = declared
    unknown = [f"{inv.path.name}:{s.id}->{t}" for inv in inventories for s in inv.statements
               for t in s.tests if t not in claims]
    assert unknown == [], "inventory entries naming claim ids that do not exist"


def test_not_encoded_declarations_are_inventoried(declared, inventories):
    _, not_encoded = declared
    assert not_encoded, "expected at least B3 in NOT_ENCODED"
    referenced = {s.declared for inv in inventories for s in inv.statements if s.declared}
    assert sorted(not_encoded - referenced) == [], "NOT_ENCODED ids with no inventory entry"
    assert sorted(referenced - not_encoded) == [], "inventory 'declared' ids that no claim module declares"


def test_one_inventory_per_source_document(inventories):
    if not SEEDS.is_dir():
        pytest.skip(f"source documents not found at {SEEDS} (set MECHCHECK_SEEDS)")
    documents = sorted(p.name for p in SEEDS.iterdir() if p.is_file())
    assert sorted(inv.document for inv in inventories) == documents


def test_quotes_are_the_documents_text(inventories):
    if not SEEDS.is_dir():
        pytest.skip(f"source documents not found at {SEEDS} (set MECHCHECK_SEEDS)")
    bad = {inv.document: inventory.misquoted(inv, (SEEDS / inv.document).read_text(encoding="utf-8"))
           for inv in inventories}
    assert {d: ids for d, ids in bad.items() if ids} == {}


def test_issue_14_statements_are_declared(inventories):
    """A few of issue #14's items, checked by content: the SAE numbers, the tutorial's
    contradiction with its numbers' order, and L6H4's two readings."""
    by_id = {s.id: s for inv in inventories for s in inv.statements}
    assert by_id["th-3.5.1-f44abl"].category == "needs-unreleased-artifact"
    assert "77.3% to 4.8%" in by_id["th-3.5.1-f44abl"].quote
    assert "77.3% to 0.25%" in by_id["th-3.5.2-f1059abl"].quote
    assert "0.7 to 0.3" in by_id["th-3.5.1-f44h77"].quote
    assert by_id["tut-19"].category == "contradicts-document" and "17.67%" in by_id["tut-19"].reason
    assert by_id["tut-20"].tests == ("T7",) and by_id["tut-06"].tests == ("T6",)  # encoded (issue #14 item 2)
    assert "nouns" in by_id["paper-19"].readings and "past tense" in by_id["paper-19"].readings
    hedged = [s for s in by_id.values() if s.id.startswith("ba-h") and s.hedge]
    assert len(hedged) >= 10


# ------------------------------------------------------------------ malformed files: one line

GOOD = '''document = "doc.txt"
[[statement]]
id = "a"
quote = "Heads attend."
section = "§1"
test = "X1"
'''

BAD = {
    "syntax": ("document = \"doc.txt\"\n[[statement]\n", "not valid TOML"),
    "missing quote": (GOOD.replace('quote = "Heads attend."\n', ""), "'quote' must be a non-empty string"),
    "both": (GOOD + 'category = "qualitative-only"\nreason = "r"\n', "either 'test'"),
    "neither": (GOOD.replace('test = "X1"\n', ""), "either 'test'"),
    "unknown category": (GOOD.replace('test = "X1"\n', 'category = "too-hard"\nreason = "r"\n'), "unknown category"),
    "no control": (GOOD.replace('test = "X1"\n', 'category = "not-yet-encoded"\nreason = "r"\nmeasurement = "m"\n'),
                   "needs 'measurement'"),
    "duplicate id": (GOOD + GOOD.split("\n", 1)[1], "used twice"),
    "unknown key": (GOOD + 'tset = "X2"\n', "unknown key(s) tset"),
    "wrong document": (GOOD.replace("doc.txt", "other.txt"), "'document' must name"),
    "test not a string": (GOOD.replace('test = "X1"', "test = [1]"), "'test' must be a claim id"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_inventory_gives_one_line(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "doc.toml"
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        inventory.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("doc.toml") and expected in message
    # in a report the broken file becomes one line, and the other inventories still render
    (tmp_path / "zz.toml").write_text(GOOD.replace("doc.txt", "zz.txt"))
    lines = inventory.coverage_markdown(inventory.load_dir(tmp_path), [])
    assert [ln for ln in lines if "doc.toml" in ln] == [f"- doc.toml: inventory not loaded: {message}"]
    assert any("**zz.txt**: 1 of 1 statements encoded" in ln for ln in lines)


# ------------------------------------------------------------------ coverage counts

SYNTHETIC = '''document = "paper.md"
[[statement]]
id = "s1"
quote = "q1"
section = "§1"
test = ["C1", "C2"]
[[statement]]
id = "s2"
quote = "q2"
section = "§2"
test = "C3"
[[statement]]
id = "s3"
quote = "q3"
section = "§2"
test = "C4"
[[statement]]
id = "s4"
quote = "q4"
section = "§3"
category = "needs-unreleased-artifact"
reason = "SAE weights"
[[statement]]
id = "s5"
quote = "q5"
section = "§3"
category = "needs-unreleased-artifact"
reason = "SAE weights"
[[statement]]
id = "s6"
quote = "q6"
section = "§4"
category = "qualitative-only"
reason = "no criterion"
[[statement]]
id = "s7"
quote = "q7"
section = "§5"
category = "not-yet-encoded"
reason = "later"
measurement = "m"
control = "c"
'''


def _record(cid, status, nodeid="claims/test_x.py::test"):
    return {"id": cid, "status": status, "nodeid": nodeid}


def test_coverage_counts_on_a_synthetic_inventory(tmp_path):
    path = tmp_path / "paper.toml"
    path.write_text(SYNTHETIC)
    inv = inventory.load(path)
    records = [_record("C1", "pass"), _record("C2", "fail"), _record("C3", "pass"), _record("C3", "skip"),
               _record("C9", "pass")]
    c = inventory.coverage(inv, records)
    assert c == {"document": "paper.md", "statements": 7, "encoded": 3,
                 "run": {"fail": 1, "hold": 1, "not run": 1},
                 "not_encodable": {"needs-unreleased-artifact": 2, "qualitative-only": 1}, "not_yet_encoded": 1}
    lines = inventory.coverage_markdown([inv], records)
    assert ("- **paper.md**: 3 of 7 statements encoded (this run: 1 fail, 1 hold, 1 not run); 3 not encodable "
            "(2 needs artifacts that were not released, 1 qualitative only (no criterion that could fail)); "
            "1 not yet encoded") in lines
    page = inventory.coverage_html([inv], records)
    assert "<td>paper.md</td><td>3 of 7</td>" in page and "<td>1</td></tr>" in page


def test_no_inventory_no_table(tmp_path):
    """mechcheck run from another project: its claims have no inventory folder, so no table."""
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "test_toy_reverse_increment.py").write_text("")  # same path as this suite's module
    _claim_modules()  # ... which is imported in this process: the project found from the cwd still wins
    records = [_record("M1", "pass", "claims/test_toy_reverse_increment.py::test_m1")]
    assert inventory.find_dir(records, start=tmp_path) is None
    assert inventory.coverage_markdown([], records) == [] and inventory.coverage_html([], records) == ""


def test_inventory_found_from_the_records_nodeids(tmp_path):
    """From the rootdir or any folder below it (nodeids are rootdir-relative)."""
    (tmp_path / "claims" / "inventory").mkdir(parents=True)
    (tmp_path / "claims" / "test_mine.py").write_text("")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    records = [_record("M1", "pass", "claims/test_mine.py::test_m1")]
    for start in (tmp_path, tmp_path / "sub" / "deeper"):
        assert inventory.find_dir(records, start=start) == (tmp_path / "claims" / "inventory").resolve()


def test_report_has_the_coverage_section(tmp_path, monkeypatch):
    """summary.md and index.html carry the table when the records come from this suite."""
    from mechcheck import report
    from mechcheck.core.claim import NotEncoded, Source

    record = NotEncoded("B3", "s", Source("blog-tinystories-1layer-21m-attention-and-stats.md", "MLP Analysis"),
                        "m", "r").record("claims/test_one_layer_tinystories.py")
    monkeypatch.chdir(ROOT)  # as pytest run from the repository (xdist controller: no claim module imported)
    report.write(tmp_path, [record], {"device": "cpu"}, "now")
    assert "## Coverage of the source documents" in (tmp_path / "summary.md").read_text()
    assert "thesis-ioi-circuits-tinystories-8M.txt" in (tmp_path / "summary.md").read_text()
    assert "<h2>Coverage of the source documents</h2>" in (tmp_path / "index.html").read_text()
