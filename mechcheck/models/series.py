"""Checkpoint series on disk: the checkpoints of one training run, in step order.

Why hand-written discovery: the layouts are Hugging Face Trainer's (`checkpoint-1000/`), the
common `step1000/` and DeepSpeed's `global_step1000/` folders, mechcheck's organism files
(`*-step0250.safetensors`), or an explicit `series.json`; no library lists them for us.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mechcheck import models
from mechcheck.core.warning import warn
from mechcheck.models import CheckpointError

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
    _warn_unused(d, entries, found)
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


def _warn_unused(d: Path, entries: list[Path], found: list[tuple[int, Path]]) -> None:
    """Every entry of a series folder is a step (or its sidecar / the series.json) or named in
    one MechcheckWarning line: `x-stepfinal.safetensors` or `x-step1e3.safetensors` next to
    numeric steps would otherwise be skipped silently and the headline taken from an earlier step."""
    used = {p.resolve() for _, p in found} | {p.with_suffix(".json").resolve() for _, p in found if p.is_file()}
    used.add((d / "series.json").resolve())
    unused = [p.name + ("/" if p.is_dir() else "") for p in entries if p.resolve() not in used]
    if unused:
        shown = ", ".join(unused[:6]) + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
        warn(f"series {d}: {len(unused)} entries are not checkpoints of the series and were not run ({shown}); "
             "name them <stem>-step<N>.safetensors, step<N>/ or list them in series.json")


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
