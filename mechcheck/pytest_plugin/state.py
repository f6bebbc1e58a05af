"""The plugin's state: its options, what they resolved to (RunState, one per session, on the
config's stash), the stash keys the hooks and fixtures share, and the one reading of a test's
claim marker (`claim_of`) and of its measured model's name (`model_name`).

Why apart from the hooks: the fixtures read the run state and the hooks register the fixtures;
both import this module, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mechcheck import models as _models
from mechcheck.core import claim as _claim
from mechcheck.data import DataError
from mechcheck.pytest_plugin import records as _records
from mechcheck.testing import MODES as CONTROL_MODES
from mechcheck.testing import ControlRunner


@dataclass
class RunState:
    """What the options resolved to, and what the session gathers. Read it with run_state(config)."""

    overrides: dict[str, Path]
    device: str
    data: Path | None
    ioi_names: tuple[str, ...] | None  # --mc-ioi-names, validated; None: the default set
    report_dir: Path | None
    dtype: str = "auto"  # --mc-dtype (mechcheck.models.run_dtype resolves it per checkpoint)
    records: list = field(default_factory=list)
    deselected: int = 0
    note: str | None = None
    current: pytest.Item | None = None  # the test now running (session fixtures ask which it is)
    controls: ControlRunner | None = None  # --mc-controls: runs (or reuses, or skips) claims' controls


_STATE = pytest.StashKey[RunState]()
CLAIM = pytest.StashKey[_claim.Claim]()  # the parsed claim of a test (claim_of)
_CLAIM_ERROR = pytest.StashKey[Exception]()  # why a test's claim marker cannot be read
MEASUREMENT = pytest.StashKey[_records.Measurement]()
LOADED = pytest.StashKey[object]()  # the measured model, as mc_load loaded it for this test
_TIMES = pytest.StashKey[dict]()
_EXTRA = pytest.StashKey[list]()
CONTROLS = pytest.StashKey[list]()  # the claim's control results (mechcheck.testing.ControlRunner.run)
_ALLOWED = pytest.StashKey[str]()  # the reason of an inconclusive verdict --mc-allow-inconclusive let pass
# Errors whose message says everything: reported as one line, no traceback.
ONE_LINE = (_models.ModelError, _claim.ClaimError, _claim.ClaimFailed, _claim.ClaimInconclusive, DataError,
            _models.OUT_OF_MEMORY)


def claim_of(node) -> _claim.Claim | None:
    """The claim of a test item (or of the function definition pytest_generate_tests sees), parsed
    once (Claim.from_marker) and kept on the node's stash; None when the test is not a claim or its
    marker cannot be read (the error is kept for set-up: claim_error)."""
    if CLAIM in node.stash:
        return node.stash[CLAIM]
    if _CLAIM_ERROR in node.stash:
        return None
    marks = list(node.iter_markers("claim"))
    if not marks:
        return None
    if len(marks) > 1:  # which one would decide? pytest would silently use the closest
        ids = ", ".join(repr(m.kwargs.get("id")) for m in marks)
        node.stash[_CLAIM_ERROR] = _claim.ClaimError(
            f"{node.nodeid}: {len(marks)} @pytest.mark.claim markers on one test (ids {ids}); one claim per test")
        return None
    try:
        c = _claim.Claim.from_marker(marks[0], node.nodeid)
    except _claim.ClaimError as exc:  # this test's error, at set-up; the session goes on
        node.stash[_CLAIM_ERROR] = exc
        return None
    node.stash[CLAIM] = c
    return c


def is_claim(node) -> bool:
    """Whether the test carries a claim marker (readable or not)."""
    return claim_of(node) is not None or _CLAIM_ERROR in node.stash


def model_name(item, c: _claim.Claim) -> str:
    """The model a claim test measures: the claim's model, or the registry name a parametrization
    picks (a claim over several models, e.g. the two one-layer checkpoints)."""
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        if isinstance(value, str) and value in _models.REGISTRY:
            return value
    return c.model


def run_state(config) -> RunState:
    """The run state of this pytest session (overrides, device, data directory, IOI names...)."""
    return config.stash[_STATE]


def add_options(parser) -> None:
    """The mechcheck command-line options (pytest_addoption)."""
    g = parser.getgroup("mechcheck", "mechcheck: executable interpretability claims")
    g.addoption("--mc-report", metavar="DIR", default=None,
                help="write results.json, summary.md and index.html to DIR (default: <rootdir>/reports/latest when claims ran)")
    g.addoption("--mc-no-report", action="store_true", help="do not write a report")
    g.addoption("--mc-device", choices=["auto", "cpu", "cuda"], default="auto",
                help="device for the models (auto: CUDA when available, else CPU)")
    g.addoption("--mc-dtype", choices=list(_models.DTYPE_OPTIONS), default="auto",
                help="dtype the models are measured in (auto: float32 on the CPU; on CUDA the checkpoint's own "
                "float16/bfloat16, else float32); the record states it and the dtype the weights were stored in")
    g.addoption("--mc-model", metavar="NAME=PATH", action="append", default=[],
                help="use the local checkpoint PATH for model NAME (repeatable, once per name)")
    g.addoption("--mc-claims-nonfatal", action="store_true",
                help="a claim that does not hold, or is inconclusive, is reported as xfail (FAIL or "
                "INCONCLUSIVE in the report) instead of failing the run; errors still fail")
    g.addoption("--mc-allow-inconclusive", action="store_true",
                help="a claim whose CI straddles its threshold passes the test (INCONCLUSIVE in the report) "
                "instead of failing the run")
    g.addoption("--mc-no-shared-cache", action="store_true",
                help="every claim computes its own forward passes instead of sharing one per model and "
                "input set (for the benchmark; results are the same)")
    g.addoption("--mc-share-cores", action="store_true",
                help="with -n N, each xdist worker's torch uses cores // N threads (faster on a few cores; values "
                "may then differ from a serial run in the last digits, as torch's reductions depend on threads)")
    g.addoption("--mc-ioi-names", metavar="NAME,NAME,...", default=None,
                help="names of the IOI prompt set (default: mechcheck.data.ioi_prompts.NAMES); at least two distinct names")
    g.addoption("--mc-data", metavar="DIR", default=None,
                help="offline data directory (tokenizer, NLTK tagger, TinyStories text); also $MECHCHECK_DATA")
    g.addoption("--mc-controls", choices=list(CONTROL_MODES), default="reuse",
                help="each claim's positive and negative controls: run (measure them again), reuse (the cached "
                "measurements of the same claim, settings and mechcheck code; default), skip (not run)")
    g.addoption("--mc-series", metavar="NAME=DIR", action="append", default=[],
                help="run every claim on model NAME once per checkpoint in DIR (step1000/, checkpoint-1000/, "
                "global_step1000/, *-step1000.safetensors, or series.json); repeatable")


def _ioi_names(opt: str | None) -> tuple[str, ...] | None:
    if opt is None:
        return None
    names = [n.strip() for n in opt.split(",")]
    if not opt.strip():
        raise pytest.UsageError("--mc-ioi-names is empty; give at least two names, e.g. John,Mary (or leave it out)")
    if any(not n for n in names):
        raise pytest.UsageError(f"--mc-ioi-names {opt!r} has an empty name; write names separated by single commas")
    if len(names) < 2:
        raise pytest.UsageError(f"--mc-ioi-names {opt!r}: IOI prompts need at least two distinct names (IO and S)")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise pytest.UsageError(f"--mc-ioi-names {opt!r} repeats {', '.join(dups)}; each name once")
    return tuple(names)


def _report_dir(config) -> Path | None:
    if config.getoption("mc_no_report"):
        return None
    opt = config.getoption("mc_report")
    if opt is not None and not opt.strip():
        raise pytest.UsageError("--mc-report '' names no directory; give a directory or use --mc-no-report")
    return Path(opt) if opt else Path(config.rootpath) / "reports" / "latest"

