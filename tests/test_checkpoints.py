"""Bad checkpoints given with --mc-model: each is ONE line naming the problem (and the file), an
error in the report, exit code 1; never a traceback, a silent skip or an empty run (issue #15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mechcheck.models import checkpoints
from mechcheck import models
from mechcheck.models import organisms
from mechcheck.models import toy
from mechcheck.models import CheckpointError
from mechcheck.core.warning import MechcheckWarning

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
TOY_SEED0 = toy.find_checkpoint(toy.TrainConfig(seed=0))
ORGANISM = organisms.SHIPPED_DIR / f"{organisms.INDUCTION.key()}.safetensors"


def _truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dst


def _wrong_shapes(tmp: Path) -> Path:
    state = load_file(str(TOY_SEED0))
    state["head.weight"] = torch.zeros(7, 4)
    save_file(state, str(tmp / "wrong.safetensors"))
    return tmp / "wrong.safetensors"


def _organism_as_toy(tmp: Path) -> Path:
    return Path(ORGANISM)


def _empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _json_list_config(tmp: Path) -> Path:
    (tmp / "hf").mkdir()
    (tmp / "hf" / "config.json").write_text("[]")
    return tmp / "hf"


# (case, claim file, model, input, expected line (format with {path}), exit code)
CASES = [
    ("toy truncated", "test_toy_reverse_increment.py", models.TOY,
     lambda t: _truncated(TOY_SEED0, t / "toy.safetensors"),
     "CheckpointError: {path}: not a readable safetensors file, truncated or corrupt", 1),
    ("toy wrong tensor shapes", "test_toy_reverse_increment.py", models.TOY, _wrong_shapes,
     "CheckpointError: {path}: not a toy reverse+increment checkpoint (1 tensors of the wrong shape, "
     "e.g. head.weight is [7, 4], expected [5, 4])", 1),
    ("organism file as the toy", "test_toy_reverse_increment.py", models.TOY, _organism_as_toy,
     "CheckpointError: {path}: not a toy reverse+increment checkpoint (missing 10 of 21 tensors: layers.0.ln1.bias, ", 1),
    ("organism truncated", "test_induction_organism.py", models.INDUCTION_ORGANISM,
     lambda t: _truncated(ORGANISM, t / "org.safetensors"),
     "CheckpointError: {path}: not a readable safetensors file, truncated or corrupt", 1),
    ("organism dir without step checkpoints", "test_induction_organism.py", models.INDUCTION_ORGANISM, _empty_dir,
     "SeriesError: series {path}: no checkpoints (expected step1000/, checkpoint-1000/", 1),
    ("config.json holding []", "test_ioi_tinystories_8m.py", "roneneldan/TinyStories-8M", _json_list_config,
     "CheckpointError: {path}/config.json: not a Hugging Face config (a JSON list, expected an object)", 1),
]


@pytest.mark.parametrize("claims, model, make, line, code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_checkpoint_is_one_line(pytester, claims, model, make, line, code):
    """The shipped claim file run on the bad checkpoint in-process (issue #24: a fresh interpreter per
    case cost ~10 s of imports; the plugin, the loader and the report are the same code), controls
    skipped (they do not depend on the checkpoint; tests/test_controls.py checks them)."""
    tmp_path = pytester.path
    path = make(tmp_path)
    result = pytester.runpytest_inprocess(str(ROOT / "claims" / claims), "-q", "-p", "no:cacheprovider",
                                          "--mc-model", f"{model}={path}", "--mc-report", str(tmp_path / "rep"),
                                          "--mc-controls", "skip")
    stdout = result.stdout.str()
    assert int(result.ret) == code, stdout[-2000:]
    expected = line.format(path=path.resolve())
    assert expected in stdout, stdout[-2000:]
    assert "Traceback" not in stdout and "the above" not in stdout
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    ours = [r for r in doc["claims"] if r["model"]["name"] == model and r["id"] != "O1.phase"]
    assert ours and {r["status"] for r in ours} == {"error"}
    # O1.phase times a series: one checkpoint file skips it with one reason, a folder is read as a series
    assert {r["status"] for r in doc["claims"] if r["id"] == "O1.phase"} <= ({"skip"} if path.is_file() else {"error"})


def test_load_errors_are_single_lines(tmp_path):
    """The same cases through the library: one CheckpointError line each."""
    for make, load in [(lambda: _truncated(TOY_SEED0, tmp_path / "a.safetensors"), toy.load_native),
                       (lambda: _wrong_shapes(tmp_path), toy.load_native),
                       (lambda: ORGANISM, toy.load_native),
                       (lambda: _truncated(ORGANISM, tmp_path / "b.safetensors"),
                        lambda p: organisms.load(p, organisms.INDUCTION))]:
        with pytest.raises(CheckpointError) as err:
            load(make())
        assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no checkpoint series here"):
        organisms.series(_empty_dir(tmp_path))


def test_missing_tensors_are_an_error_naming_them_and_extra_ones_a_warning(tmp_path):
    """mechcheck.models.verify, through both loaders: the toy file (load_native) and an HF folder
    (load_hf, where transformers would fill the missing layer at random)."""
    state = load_file(str(TOY_SEED0))
    save_file({k: v for k, v in state.items() if k != "head.weight"}, str(tmp_path / "nohead.safetensors"))
    with pytest.raises(CheckpointError, match=r"nohead.safetensors: not a toy reverse\+increment checkpoint "
                       r"\(missing 1 of 21 tensors: head.weight\)$"):
        toy.load_native(tmp_path / "nohead.safetensors")
    save_file({**state, "extra.weight": state["head.weight"].clone()}, str(tmp_path / "extra.safetensors"))
    with pytest.warns(MechcheckWarning, match=r"1 tensors that toy reverse\+increment does not use were ignored "
                      r"\(extra.weight\)"):
        model = toy.load_native(tmp_path / "extra.safetensors")
    assert torch.equal(model.state_dict()["head.weight"], state["head.weight"])

    folder = models.save_random("roneneldan/TinyStories-1M", tmp_path / "ts1m")
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if ".h.3." not in k}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        models.load_hf("roneneldan/TinyStories-1M", folder, "cpu", None)
    assert str(err.value).startswith(f"{folder}: not a roneneldan/TinyStories-1M checkpoint (missing 13 of 108 "
                                     "tensors: transformer.h.3.attn.attention.k_proj.weight, ")


def test_sidecars_are_written_atomically_with_the_sha256(tmp_path):
    model = organisms.load(ORGANISM, organisms.INDUCTION)
    path = checkpoints.save(model, tmp_path / "m.safetensors", {"note": 1})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta == {"note": 1, "sha256": checkpoints.sha256(path)}
    assert checkpoints.sha256(path) == checkpoints.sha256(ORGANISM)  # same weights, same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporaries left


def test_train_organisms_help_prints_help_and_trains_nothing():
    out = subprocess.run([sys.executable, "-m", "mechcheck", "train-organisms", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "usage: mechcheck train-organisms" in out.stdout and "quote" in out.stdout
    assert "step" not in out.stdout.replace("steps", "")  # no training log
