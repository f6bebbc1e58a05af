"""The one lifecycle of the checkpoints mechcheck trains itself (the toy and the model organisms):
train, save, find, load, bridge.

Why one module: the toy and the organisms are the same kind of object (a TransformerLens
NativeModel trained here from a seeded recipe, stored as safetensors with a JSON sidecar), and two
copies of this code had drifted apart (one printed a page of SafetensorError for a corrupt file).
Every problem with a checkpoint file is one `CheckpointError` line naming the file.

A recipe is an object with:
  config() -> TransformerBridgeConfig   key() -> str (file name stem)   seed, steps
  optimizer(params) -> (optimizer, scheduler or None)   clip_norm (None: no clipping)
  prepare() -> state (the training data)   batch(state, step, gen) -> batch
  loss(model, batch, state) -> scalar     log_line(step, loss) -> str | None
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mechcheck.core.files import atomic_write_with
from mechcheck.data import cache_root
from mechcheck.models import CheckpointError, verify

if TYPE_CHECKING:
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import NativeModel

# TransformerLens is imported where a model is built, not here: importing its model bridge costs
# 5-9 s on 2 cores, and every Python that loads the pytest plugin imports this module (an xdist
# controller, a test run that loads no model) and would pay it: a trivial `pytest` went from 14.8 s
# to 3.5 s (issue #24).

__all__ = ["CheckpointError", "bridge_config", "shipped_dir", "sha256", "save",
           "read_sidecar", "load_native", "find", "bridge", "random_bridge", "train"]


def shipped_dir(first: str, *rest: str) -> Path:
    """A folder of the checkpoints shipped with mechcheck: package data `mechcheck.shipped` in an
    installed wheel (read through importlib.resources), the repository's top-level fixtures/
    folder in a source checkout (pyproject maps one onto the other)."""
    here = Path(__file__).resolve().parents[1]  # the mechcheck package
    if (here / "shipped").is_dir():  # a namespace package: joinpath gives a real path on disk
        return Path(resources.files("mechcheck.shipped").joinpath(first)).joinpath(*rest)
    return (here.parent / "fixtures").joinpath(first, *rest)


def bridge_config(**fields) -> TransformerBridgeConfig:
    """TransformerLens' config of a native model (imported here, at first use: see above)."""
    from transformer_lens.config import TransformerBridgeConfig  # at first use (note above)

    return TransformerBridgeConfig(**fields)


def cache_dir(kind: str) -> Path:
    """Where checkpoints trained on this machine are kept ($MECHCHECK_CACHE/<kind>)."""
    return cache_root() / kind


def sha256(path: Path) -> str:
    """sha256 of one file: the identity of the weights a claim measured."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()



def save(model: torch.nn.Module, path: Path, meta: dict) -> Path:
    """Write path (.safetensors) and its sidecar path.json (meta + the file's sha256), each atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_with(path, lambda tmp: save_file(state, tmp))
    sidecar = {**meta, "sha256": sha256(path)}
    text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
    atomic_write_with(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    return path


def read_sidecar(path: Path) -> dict | None:
    """The JSON sidecar of a checkpoint (None if there is none); one line if it is unusable."""
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise CheckpointError(f"{meta_path}: not a checkpoint sidecar (expected a JSON object with a sha256)")
    return meta


def load_native(path: Path, config: TransformerBridgeConfig, what: str) -> NativeModel:
    """A NativeModel of `config` with the weights of `path`; every problem is one CheckpointError
    line naming the file (`what` names the expected model, e.g. "toy reverse+increment")."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file; a {what} checkpoint is one .safetensors file")
    meta = read_sidecar(path)
    if meta is not None and sha256(path) != meta["sha256"]:
        raise CheckpointError(f"{path}: sha256 does not match {path.with_suffix('.json').name}; the file is corrupt")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt ({why})") from None
    from transformer_lens.model_bridge.sources.native import NativeModel  # at first use (note above)

    model = NativeModel(copy.deepcopy(config))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    why = verify.compare(str(path), what, want, {k: tuple(v.shape) for k, v in state.items()})
    if why:
        raise CheckpointError(why)
    state = {k: v for k, v in state.items() if k in want}  # unused tensors: verify warned about them
    model.load_state_dict(state)
    return model.eval()


def find(name: str, kind: str, shipped: Path) -> Path | None:
    """The checkpoint file `name` shipped with mechcheck, else in the user cache, else None."""
    for directory in (shipped, cache_dir(kind)):
        path = directory / name
        if path.exists():
            return path
    return None


def bridge(model: torch.nn.Module, tokenizer=None, device: str = "cpu", name: str = "native"):
    """A TransformerBridge around a deep copy of `model` (so weight edits on the bridge never
    touch the caller's model), through TL's public build_bridge_from_module."""
    from transformer_lens.model_bridge.sources import build_bridge_from_module  # at first use (note above)

    model = copy.deepcopy(model).to(device)
    b = build_bridge_from_module(model, architecture="TransformerLensNative", tl_config=copy.deepcopy(model.cfg),
                                 device=device, model_name=name)
    if tokenizer is not None:
        b.tokenizer = tokenizer
    return b


def random_bridge(config: TransformerBridgeConfig, tokenizer=None, device: str = "cpu"):
    """The random-weight control of an architecture (seeded by config.seed): TL's boot_native."""
    from transformer_lens.model_bridge import TransformerBridge  # at first use (note above)

    b = TransformerBridge.boot_native(copy.deepcopy(config), device=device)
    if tokenizer is not None:
        b.tokenizer = tokenizer
    return b


def new_model(config: TransformerBridgeConfig, seed: int) -> NativeModel:
    """A freshly initialised NativeModel (the start of training), seeded."""
    from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model  # at first use (note above)

    torch.manual_seed(seed)
    model = NativeModel(config)
    initialize_native_model(model, config, seed=seed)
    return model


def train(recipe, log=None, on_step=None) -> tuple[NativeModel, dict]:
    """The one training loop of the toy and every organism; deterministic on CPU for a recipe.
    on_step(step, model), if given, runs before each step and after the last (checkpoint series)."""
    model = new_model(recipe.config(), recipe.seed)
    opt, sched = recipe.optimizer(model.parameters())
    gen = torch.Generator().manual_seed(recipe.seed)
    state = recipe.prepare()
    start = time.perf_counter()
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(recipe.steps + 1):
        if on_step is not None:
            model.eval()
            on_step(step, model)
            model.train()
        if step == recipe.steps:
            break
        loss = recipe.loss(model, recipe.batch(state, step, gen), state)
        opt.zero_grad()
        loss.backward()
        if recipe.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
        opt.step()
        if sched is not None:
            sched.step()
        line = recipe.log_line(step, loss) if log else None
        if line:
            log(line)
    model.eval()
    return model, {"train_seconds": round(time.perf_counter() - start, 1), "final_loss": loss.item()}
