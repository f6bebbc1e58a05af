"""Checkpoint series: run every claim on a model once per checkpoint of a training run.

`--mc-series NAME=DIR` finds the checkpoints in DIR (`discover`), parametrizes every claim test
whose claim model is NAME once per checkpoint (ids `step0250`, ...), and the model loader asks
`checkpoint_for(request, NAME)` which checkpoint the running test is on. Each record carries its
`step`. The report gets one section per claim (`series_sections`: the measured value with its CI
against step, the threshold, each step's verdict, the step where the claim first holds and the
last step where it flips back), and the headline counts only each series' last checkpoint
(`headline`), the model a user would ship.

Why hand-written discovery: the layouts are Hugging Face Trainer's (`checkpoint-1000/`), the
common `step1000/` and DeepSpeed's `global_step1000/` folders, mechcheck's organism files
(`*-step0250.safetensors`), or an explicit `series.json`; no library lists them for us.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mechcheck.models import CheckpointError
# Imported with the plugin, at start-up: a module first imported inside a pytester inline run is
# dropped from sys.modules afterwards, and a second import of matplotlib's axes/legend then fails
# isinstance checks against the first ("Legend needs either Axes or FigureBase as parent").
from matplotlib.figure import Figure
import matplotlib.backends.backend_agg  # noqa: F401,E402  (savefig's PNG canvas, same reason)
from matplotlib.patches import Rectangle  # noqa: F401,E402  (html.py's, same reason)

ARG = "mc_series_step"  # the (indirect) parametrization a series adds to a claim test
STEP_DIR = re.compile(r"^(?:step|checkpoint-|global_step)(\d+)$")
STEP_FILE = re.compile(r"-step(\d+)\.safetensors$")
# config keys that fix an architecture (HF config.json, or an organism's sidecar "recipe")
ARCH_KEYS = ("model_type", "architectures", "num_layers", "n_layer", "num_hidden_layers", "n_layers",
             "hidden_size", "n_embd", "d_model", "num_heads", "n_head", "num_attention_heads", "n_heads",
             "vocab_size", "d_vocab", "intermediate_size", "n_inner", "attn_only", "kind")


class SeriesError(CheckpointError):
    """A series directory that cannot be used; the message is one line naming the problem (a
    CheckpointError, so a claim on it is that one line, never a traceback)."""


@dataclass(frozen=True)
class Checkpoint:
    name: str  # the model (registry name) this series is of
    step: int
    path: Path
    width: int = 4  # zero-padding of the id, the same for a whole series so ids sort by step

    @property
    def id(self) -> str:
        return f"step{self.step:0{self.width}d}"


def discover(directory, name: str = "") -> list[Checkpoint]:
    """The checkpoints of DIR in step order; SeriesError (one line) if there are none, a step
    occurs twice, or config files show two architectures."""
    d = Path(directory)
    if not d.is_dir():
        raise SeriesError(f"series {d}: not a directory")
    try:
        entries = sorted(d.iterdir())
    except OSError as exc:
        raise SeriesError(f"series {d}: cannot be read ({exc.strerror or exc})") from None
    found: list[tuple[int, Path]] = []
    if (d / "series.json").exists():
        found = _from_json(d / "series.json")
    else:
        for p in entries:
            m = STEP_DIR.match(p.name) if p.is_dir() else STEP_FILE.search(p.name)
            if m:
                found.append((int(m.group(1)), p))
    if not found:
        raise SeriesError(f"series {d}: no checkpoints (expected step1000/, checkpoint-1000/, global_step1000/, "
                          "*-step1000.safetensors or a series.json listing {step, path})")
    found.sort(key=lambda sp: sp[0])
    for (s1, p1), (s2, p2) in zip(found, found[1:]):
        if s1 == s2:
            raise SeriesError(f"series {d}: step {s1} occurs twice ({p1.name} and {p2.name})")
    _check_one_architecture(d, found)
    width = max(4, len(str(found[-1][0])))
    return [Checkpoint(name, step, path, width) for step, path in found]


def _from_json(path: Path) -> list[tuple[int, Path]]:
    try:
        data = json.loads(path.read_text())
        rows = data["checkpoints"] if isinstance(data, dict) else data
        out = [(int(r["step"]), path.parent / str(r["path"])) for r in rows]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SeriesError(f"{path}: expected a list of {{\"step\": N, \"path\": P}} ({type(exc).__name__}: {exc})") from None
    for step, p in out:
        if not p.exists():
            raise SeriesError(f"{path}: step {step}: {p} does not exist")
    return out


def _architecture(path: Path) -> dict | None:
    """The architecture keys of a checkpoint's config (folder/config.json, or file.json's recipe)."""
    cfg = path / "config.json" if path.is_dir() else path.with_suffix(".json")
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    data = data.get("recipe", data) if isinstance(data, dict) else {}
    return {k: data[k] for k in ARCH_KEYS if k in data}


def _check_one_architecture(d: Path, found: list[tuple[int, Path]]) -> None:
    first = None
    for step, path in found:
        arch = _architecture(path)
        if not arch:
            continue
        if first is None:
            first = (step, arch)
        elif arch != first[1]:
            diff = {k: (first[1].get(k), arch.get(k)) for k in sorted(set(arch) | set(first[1]))
                    if first[1].get(k) != arch.get(k)}
            what = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in diff.items())
            raise SeriesError(f"series {d}: mixed architectures: step {first[0]} and step {step} differ ({what})")


def parse(values: list[str]) -> dict[str, list[Checkpoint]]:
    """`--mc-series NAME=DIR` values -> {NAME: checkpoints}; SeriesError for a bad value."""
    from mechcheck import models

    out: dict[str, list[Checkpoint]] = {}
    for value in values:
        name, sep, where = value.partition("=")
        if not sep or not name or not where:
            raise SeriesError(f"--mc-series {value!r}: expected NAME=DIR, e.g. {models.TOY}=runs/toy")
        try:
            models.spec(name)
        except models.ModelError as exc:
            raise SeriesError(f"--mc-series {value!r}: {exc}") from None
        if name in out:
            raise SeriesError(f"--mc-series: model {name} given twice")
        out[name] = discover(where, name)
    return out


# ------------------------------------------------------------------ pytest

def add_options(group) -> None:
    group.addoption("--mc-series", metavar="NAME=DIR", action="append", default=[],
                    help="run every claim on model NAME once per checkpoint in DIR (step1000/, checkpoint-1000/, "
                    "global_step1000/, *-step1000.safetensors, or series.json); repeatable")


def given(config, name: str) -> bool:
    """Whether `--mc-series` names model `name` (a claim file that parametrizes its own
    checkpoints leaves that to the series then)."""
    plugin = config.pluginmanager.get_plugin("mechcheck-series")
    return plugin is not None and name in plugin.series


def checkpoint_for(where, name: str) -> Path | None:
    """The series checkpoint of model `name` that the running test is on, or None (not a series
    run). `where`: the test's item or request; a session-scoped fixture's request also works
    (the test now running is used)."""
    node = getattr(where, "node", where)
    if getattr(node, "callspec", None) is None:
        plugin = node.config.pluginmanager.get_plugin("mechcheck-series")
        node = getattr(plugin, "current", None)
    cp = _step_of(node)
    return cp.path if cp is not None and cp.name == name else None


def _step_of(item) -> Checkpoint | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    cp = params.get(ARG)
    return cp if isinstance(cp, Checkpoint) else None


class Plugin:
    """The series part of the pytest plugin (registered by mechcheck.plugin)."""

    def __init__(self, config):
        try:
            self.series = parse(config.getoption("mc_series", None) or [])
        except SeriesError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.current = None
        self.unreachable: set[str] = set()

    def pytest_generate_tests(self, metafunc):
        mark = metafunc.definition.get_closest_marker("claim")
        cps = self.series.get(mark.kwargs.get("model")) if mark is not None else None
        if cps:
            if "mc_load" not in metafunc.fixturenames and ARG not in metafunc.fixturenames:
                self.unreachable.add(metafunc.definition.nodeid)  # fails at set-up, one line
            # the pytest-repeat way of parametrizing a test by a fixture it does not name;
            # session scope groups the tests by checkpoint, so one checkpoint is loaded at a time
            metafunc.fixturenames.append(ARG)
            metafunc.parametrize(ARG, cps, ids=[c.id for c in cps], indirect=True, scope="session")

    @pytest.fixture(scope="session")
    def mc_series_step(self, request) -> Checkpoint:
        return request.param

    def pytest_itemcollected(self, item):
        cp = _step_of(item)
        if cp is not None:  # one xdist group per (model, checkpoint): mechcheck.scheduling
            item.add_marker(pytest.mark.xdist_group(f"{cp.name.replace('/', '_')}:{cp.id}"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.current = item

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        """A claim on a series model that loads its model itself (neither the mc_load loader nor
        the mc_series_step fixture) would silently run on its usual checkpoint: an error instead."""
        cp = _step_of(item)
        if cp is not None and item.nodeid.split("[", 1)[0] in self.unreachable:
            pytest.fail(f"--mc-series {cp.name}: this test loads its model itself (not through mc_load or "
                        "mc_series_step), so it cannot run on the series", pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outside mechcheck.plugin's: its record exists
    def pytest_runtest_makereport(self, item, call):
        rep = yield
        cp = _step_of(item)
        if cp is not None and rep.when == "teardown":
            for key, record in rep.user_properties:
                if key == "mechcheck" and record.get("nodeid") == item.nodeid:
                    record["step"] = cp.step
        return rep


# ------------------------------------------------------------------ report

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
    return (f"Counts are of each checkpoint series' last checkpoint ({n} earlier checkpoints' records "
            "are in the series sections)." if n else "")


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
