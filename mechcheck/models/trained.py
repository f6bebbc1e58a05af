"""A checkpoint mechcheck trained (one .safetensors file with its JSON sidecar naming the recipe's
architecture), loaded under any model name a claim uses.

Why: a user's claim names their own model (`model="my-model"`), and the same claim file must run
on a model organism shipped here (the examples' tests), given with `--mc-model my-model=FILE`; the
sidecar says what architecture the weights are, so no registry entry is needed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mechcheck.models import CheckpointError, LoadedModel, checkpoints
from mechcheck.models.organisms import Recipe


def recipe_of(path: Path) -> Recipe:
    """The architecture recorded in the checkpoint's sidecar, as an organism Recipe; one
    CheckpointError line when the file is not a checkpoint mechcheck trained."""
    meta = checkpoints.read_sidecar(path)
    recipe = (meta or {}).get("recipe")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    if not isinstance(recipe, dict):
        raise CheckpointError(f"{path}: a file, but neither a Hugging Face folder (config.json + weights) nor a "
                              f"checkpoint mechcheck trained ({path.with_suffix('.json').name} with a recipe)")
    given = {("batch_size" if k == "batch" else k): v for k, v in recipe.items()}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise CheckpointError(f"{path}: the sidecar's recipe has keys {unknown} that no organism architecture has")
    try:
        return Recipe(**given)
    except TypeError as exc:
        raise CheckpointError(f"{path}: the sidecar's recipe is incomplete ({exc})") from None


def load(name: str, path: Path, device: str = "cpu") -> LoadedModel:
    """A LoadedModel named `name` of the trained checkpoint `path` (float32, no TL processing)."""
    recipe = recipe_of(path)
    model = checkpoints.load_native(path, recipe.config(), f"{recipe.kind} ({recipe.n_layers}-layer)")
    bridge = checkpoints.bridge(model, device=device, name=name)
    return LoadedModel(name, bridge, str(path), checkpoints.sha256(path), device)
