"""Three-valued decisions (issue 11, item 1): a claim with a CI passes when the whole interval
satisfies the expectation, fails when the whole interval violates it, and is INCONCLUSIVE
otherwise; without a CI (an exact statistic) or for comparisons over arrays it stays two-valued.
The rule (claim.verdict), the plugin end to end (statuses, report files, exit codes with and
without --mc-claims-nonfatal / --mc-allow-inconclusive), and a real toy checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mechcheck.core import claim
from mechcheck.pytest_plugin import records
from mechcheck.core.claim import ClaimError, ClaimFailed, ClaimInconclusive, at_least, at_most, within
from mechcheck.report import SCHEMA_FILE, STATUSES

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]


# --- the rule ---------------------------------------------------------------------------------

# (expectation, ci, verdict): every edge of every interval rule. Within(0.5, 0.25) has the
# exactly representable band [0.25, 0.75].
EDGES = [
    (at_least(0.5), (0.5, 0.6), "pass"),  # low end on the threshold: every value satisfies
    (at_least(0.5), (0.51, 0.6), "pass"),
    (at_least(0.5), (0.4, 0.4999), "fail"),
    (at_least(0.5), (0.4, 0.5), "inconclusive"),  # high end on the threshold: 0.5 itself satisfies
    (at_least(0.5), (0.48, 0.55), "inconclusive"),
    (at_most(0.5), (0.4, 0.5), "pass"),
    (at_most(0.5), (0.5001, 0.6), "fail"),
    (at_most(0.5), (0.5, 0.6), "inconclusive"),
    (at_most(0.5), (0.45, 0.55), "inconclusive"),
    (within(0.5, 0.25), (0.25, 0.75), "pass"),  # the band itself
    (within(0.5, 0.25), (0.4, 0.6), "pass"),
    (within(0.5, 0.25), (0.1, 0.2), "fail"),
    (within(0.5, 0.25), (0.76, 0.9), "fail"),
    (within(0.5, 0.25), (0.2, 0.3), "inconclusive"),  # straddles the lower edge
    (within(0.5, 0.25), (0.7, 0.8), "inconclusive"),  # straddles the upper edge
    (within(0.5, 0.25), (0.1, 0.9), "inconclusive"),  # covers the band and beyond
]


@pytest.mark.parametrize("expect, ci, expected", EDGES, ids=[f"{e.describe()} {ci}" for e, ci, _ in EDGES])
def test_the_rule_decides_each_way_at_the_interval_edges(expect, ci, expected):
    value = (ci[0] + ci[1]) / 2
    assert claim.verdict(expect, value, ci) == expected
    assert expect.check_interval(*ci) == {"pass": True, "fail": False, "inconclusive": None}[expected]


def test_without_a_ci_or_over_arrays_decisions_stay_two_valued():
    assert claim.verdict(at_least(0.5), 0.5) == "pass"
    assert claim.verdict(at_least(0.5), 0.49) == "fail"
    # comparisons over arrays have no interval rule: a recorded CI does not make them inconclusive
    ranks = [[0.1, 0.2], [0.9, 0.5]]
    assert claim.verdict(claim.rank_at_most(2, (1, 1)), ranks, ci=(0.0, 1.0)) == "pass"
    assert claim.verdict(claim.argmax_is((0, 0)), ranks, ci=(0.0, 1.0)) == "fail"
    assert claim.verdict(claim.leads([(1, 0)], 0.5), ranks, ci=(0.0, 1.0)) == "pass"
    # satisfies() (the point-value check older controls use) is unchanged
    assert claim.satisfies(at_least(0.5), 0.51) and not claim.satisfies(at_least(0.5), 0.49)


def test_a_point_estimate_outside_its_ci_is_never_pass():
    """A percentile bootstrap CI can miss the estimate; the decision interval then spans it."""
    assert claim.verdict(at_least(0.5), 0.49, (0.5, 0.6)) == "inconclusive"
    assert claim.verdict(at_most(0.5), 0.55, (0.6, 0.7)) == "fail"


def test_decisions_read_the_unrounded_value():
    """0.4999996 is written 0.5 in results.json (6 significant digits), yet it is below 0.5."""
    assert records.output(0.4999996) == 0.5
    assert claim.verdict(at_least(0.5), 0.4999996) == "fail"  # exact statistic
    assert claim.verdict(at_least(0.5), 0.4999996, (0.499999, 0.4999999)) == "fail"  # whole CI below
    assert claim.verdict(at_least(0.5), 0.4999996, (0.499999, 0.5000004)) == "inconclusive"
    assert claim.verdict(at_most(0.5), 0.5000004) == "fail"
    c = claim.Claim("U", "s", claim.Source("d", "w"), "m", at_least(0.5))
    with pytest.raises(ClaimFailed, match=r"^U: measured 0\.4999996 \(95% CI \[0\.499999, 0\.4999999\]\) "
                       r"does not satisfy >= 0\.5$"):
        claim.decide(c, 0.4999996, (0.499999, 0.4999999))
    # the reason shows as many digits as it takes to tell the CI from the threshold
    with pytest.raises(ClaimInconclusive, match=r"^U: 95% CI \[0\.499999, 0\.5000004\] straddles the threshold >= 0\.5"):
        claim.decide(c, 0.4999996, (0.499999, 0.5000004))


def test_the_reason_names_the_interval_and_the_threshold():
    c = claim.Claim("T2", "s", claim.Source("d", "w"), "m", at_least(0.5))
    with pytest.raises(ClaimInconclusive) as exc:
        claim.decide(c, 0.51, (0.48, 0.55))
    assert str(exc.value) == "T2: 95% CI [0.48, 0.55] straddles the threshold >= 0.5 (measured 0.51)"
    w = claim.Claim("W", "s", claim.Source("d", "w"), "m", within(0.5, 0.25))
    with pytest.raises(ClaimInconclusive, match=r"straddles an edge of the band within 0\.5 ± 0\.25 \(\[0\.25, 0\.75\]\)"):
        claim.decide(w, 0.75, (0.7, 0.8))
    assert claim.decide(c, 0.6, (0.55, 0.65)) == "pass"


@pytest.mark.parametrize("ci, message", [
    ((0.6, 0.4), "low > high"), ((float("nan"), 0.6), "not finite"), ((0.4, float("inf")), "not finite"),
])
def test_a_ci_that_cannot_decide_is_one_error_line(ci, message):
    c = claim.Claim("B", "s", claim.Source("d", "w"), "m", at_least(0.5))
    with pytest.raises(ClaimError, match=f"^B: .*{message}"):
        claim.decide(c, 0.5, ci)


# --- the plugin end to end --------------------------------------------------------------------

CLAIMS = '''
import pytest
from mechcheck.core.claim import Source, at_least, at_most, within

SRC = Source("doc.md", "fig 1")
TOY = "mechcheck/toy-reverse-increment"

@pytest.mark.claim(id="P", statement="whole CI above", source=SRC, model=TOY, expect=at_least(0.5))
def test_pass(measure):
    measure.record(0.6, ci=(0.55, 0.65), n=100)

@pytest.mark.claim(id="F", statement="whole CI outside", source=SRC, model=TOY, expect=within(0.9, 0.05))
def test_fail(measure):
    measure.record(0.6, ci=(0.55, 0.65), n=100)

@pytest.mark.claim(id="I", statement="CI straddles", source=SRC, model=TOY, expect=at_least(0.5))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inconclusive(measure, seed):
    measure.seed = seed
    measure.record([0.51, 0.6, 0.4][seed], ci=[(0.48, 0.55), (0.55, 0.65), (0.35, 0.45)][seed], n=100)

@pytest.mark.claim(id="E", statement="exact, a hair below", source=SRC, model=TOY, expect=at_most(0.1))
def test_exact(measure):
    measure.record(0.1000001)
'''


PASS_AND_INCONCLUSIVE = '''
import pytest
from mechcheck.core.claim import Source, at_least

SRC = Source("doc.md", "fig 1")

@pytest.mark.claim(id="P", statement="whole CI above", source=SRC, model="mechcheck/toy-reverse-increment", expect=at_least(0.5))
def test_pass(measure):
    measure.record(0.6, ci=(0.55, 0.65), n=100)

@pytest.mark.claim(id="I", statement="CI straddles", source=SRC, model="mechcheck/toy-reverse-increment", expect=at_least(0.5))
def test_inconclusive(measure):
    measure.record(0.51, ci=(0.48, 0.55), n=100)
'''


def _pytest(pytester, *args: str, file: str = "test_claims.py") -> tuple[SimpleNamespace, dict]:
    """(returncode, stdout) and results.json of `pytest file` in pytester's folder, in-process (issue #24:
    a fresh interpreter per case cost ~8 s of imports; the plugin, its options, verdicts, exit status,
    terminal lines and report are the same code either way, as in test_bad_input)."""
    result = pytester.runpytest_inprocess(file, "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                                          "--mc-report", "rep", *args)
    doc = json.loads((pytester.path / "rep" / "results.json").read_text())
    return SimpleNamespace(returncode=int(result.ret), stdout=result.stdout.str()), doc


def _statuses(doc) -> dict:
    return {r["id"] + (f"[{r['param']}]" if r["param"] else ""): r["status"] for r in doc["claims"]}


@pytest.fixture
def claims_dir(pytester):
    (pytester.path / "test_claims.py").write_text(CLAIMS)
    return pytester


def test_plugin_reports_inconclusive_and_fails_the_run_by_default(claims_dir):
    import jsonschema

    out, doc = _pytest(claims_dir)
    assert out.returncode == 1, out.stdout[-3000:]
    assert _statuses(doc) == {"E": "fail", "F": "fail", "I[0]": "inconclusive", "I[1]": "pass", "I[2]": "fail",
                              "P": "pass"}
    assert doc["counts"] == {"pass": 2, "fail": 3, "inconclusive": 1, "skip": 0, "error": 0, "not-encoded": 0}
    assert set(doc["counts"]) == set(STATUSES)
    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
    msg = {r["id"] + (f"[{r['param']}]" if r["param"] else ""): r["message"] for r in doc["claims"]}
    assert msg["I[0]"] == "I: 95% CI [0.48, 0.55] straddles the threshold >= 0.5 (measured 0.51)"
    assert msg["E"] == "E: measured 0.1000001 does not satisfy <= 0.1"  # decided unrounded, shown unrounded
    assert next(r for r in doc["claims"] if r["id"] == "E")["measured"]["value"] == 0.1  # stored rounded
    # one line in the terminal, the status in the mechcheck section, the replication line
    assert "ClaimInconclusive: I: 95% CI [0.48, 0.55] straddles the threshold >= 0.5" in out.stdout
    assert "Traceback" not in out.stdout
    assert "INCONCLUSIVE I[0]" in out.stdout
    replication = "I on mechcheck/toy-reverse-increment: holds in 1 of 2 decided runs (3 in all; 1 inconclusive, "
    assert replication in out.stdout
    assert "2 pass, 3 fail, 1 inconclusive, 0 skip, 0 error, 0 not encoded" in out.stdout
    summary = (claims_dir.path / "rep" / "summary.md").read_text()
    assert "6 claims: 2 pass, 3 fail, 1 inconclusive, 0 skip, 0 error, 0 not encoded." in summary
    assert "| I[0] | doc.md: fig 1 | mechcheck/toy-reverse-increment | 0.51 [0.48, 0.55] | >= 0.5 | — | INCONCLUSIVE |" in summary
    assert "- " + replication in summary
    assert "`test_claims.py::test_inconclusive[0]` INCONCLUSIVE: I: 95% CI [0.48, 0.55] straddles" in summary
    page = (claims_dir.path / "rep" / "index.html").read_text()
    assert "background:#bc4c00'>INCONCLUSIVE</span>" in page and "1 inconclusive" in page


@pytest.mark.parametrize("args, code, outcome", [
    ([], 1, "1 failed"),  # an inconclusive claim alone fails the run
    (["--mc-allow-inconclusive"], 0, "2 passed"),
    (["--mc-claims-nonfatal"], 0, "1 xfailed"),  # treated like a claim that does not hold
    (["--mc-claims-nonfatal", "--mc-allow-inconclusive"], 0, "2 passed"),
])
def test_exit_codes_for_an_inconclusive_claim(pytester, args, code, outcome):
    (pytester.path / "test_two.py").write_text(PASS_AND_INCONCLUSIVE)
    out, doc = _pytest(pytester, *args, file="test_two.py")
    assert out.returncode == code, out.stdout[-3000:]
    assert outcome in out.stdout
    assert _statuses(doc) == {"P": "pass", "I": "inconclusive"}  # the record says inconclusive in every mode
    assert next(r for r in doc["claims"] if r["id"] == "I")["message"].startswith("I: 95% CI [0.48, 0.55] straddles")


def test_allow_inconclusive_does_not_forgive_a_failure(claims_dir):
    out, doc = _pytest(claims_dir, "--mc-allow-inconclusive")
    assert out.returncode == 1
    assert "3 failed, 3 passed" in out.stdout  # E, F, I[2] fail; P, I[0] (allowed), I[1] pass
    assert _statuses(doc)["I[0]"] == "inconclusive"


# --- a real toy checkpoint ---------------------------------------------------------------------

TOY_CLAIMS = '''
import pytest
from mechcheck.models import toy
from mechcheck.studies import toy_circuit
from mechcheck.core.claim import Source, at_least, at_most, within

SRC = Source("tutorial-toy-reverse-increment.txt", "Attention Patterns")
TOY = "mechcheck/toy-reverse-increment"

@pytest.fixture(scope="module")
def run():
    return toy_circuit.ToyRun(toy.load({path!r}).bridge)

@pytest.mark.claim(id="pass", statement="s", source=SRC, model=TOY, expect=at_least({below}))
def test_pass(run, measure):
    measure.record(**toy_circuit.reversed_attention(run))

@pytest.mark.claim(id="fail", statement="s", source=SRC, model=TOY, expect=at_most({below}))
def test_fail(run, measure):
    measure.record(**toy_circuit.reversed_attention(run))

@pytest.mark.claim(id="inconclusive_band", statement="s", source=SRC, model=TOY, expect=within({band}, 0.5))
def test_inconclusive_band(run, measure):
    measure.record(**toy_circuit.reversed_attention(run))

@pytest.mark.claim(id="inconclusive", statement="s", source=SRC, model=TOY, expect=at_least({middle}))
def test_inconclusive(run, measure):
    measure.record(**toy_circuit.reversed_attention(run))
'''


def test_a_real_toy_checkpoint_reaches_every_verdict(pytester):
    """T2's measurement (toy_circuit.reversed_attention, with its bootstrap CI over the 5536
    holdout sequences) on the shipped seed-0 checkpoint, against thresholds placed below the CI,
    and inside it (the CI's midpoint, as the threshold of ">=" and as the lower edge of the band
    "within mid+0.5 ± 0.5"). The thresholds come from this checkpoint's own CI so the
    test keeps deciding each way whatever the measurement's exact value."""
    from mechcheck.models import toy
    from mechcheck.studies import toy_circuit

    path = toy.find_checkpoint(toy.TrainConfig(seed=0))
    assert path is not None, "the seed-0 toy checkpoint ships in fixtures/"
    got = toy_circuit.reversed_attention(toy_circuit.ToyRun(toy.load(path).bridge))
    lo, hi = got["ci"]
    assert hi - lo > 1e-5, (lo, hi)
    middle, below = round((lo + hi) / 2, 6), round(lo - 0.05, 6)
    assert lo < middle < hi and claim.verdict(at_least(middle), got["value"], got["ci"]) == "inconclusive"
    (pytester.path / "test_claims.py").write_text(TOY_CLAIMS.format(path=str(path), below=below, middle=middle,
                                                                   band=round(middle + 0.5, 6)))
    out, doc = _pytest(pytester, "--mc-claims-nonfatal")
    assert out.returncode == 0, out.stdout[-3000:]
    assert {r["nodeid"].split("::")[1]: r["status"] for r in doc["claims"]} == {
        "test_pass": "pass", "test_fail": "fail", "test_inconclusive_band": "inconclusive",
        "test_inconclusive": "inconclusive"}
    assert doc["counts"]["inconclusive"] == 2
