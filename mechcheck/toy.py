"""The toy reverse+increment transformer of the tutorial ("From Zero to (Mechanistic)
Interpretability", ../shared/seeds/tutorial-toy-reverse-increment.txt).

Why it lives here: the tutorial's claims are about a model that the tutorial trains, so
mechcheck has to train it too (exact set-up of the tutorial, our hyperparameters recorded
where the tutorial is silent) and cache the result so a second run does not retrain.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
from transformer_lens.model_bridge.sources.native.init import initialize_native_model
from transformer_lens.model_bridge.sources.native.model import NativeModel

from mechcheck.data import cache_root
from mechcheck.models import sha256_of

BOS = 4
N_IN = 8  # x0..x7
SPLIT_SEED = 0  # the shuffle of the 4^8 sequences; the same holdout for every training seed
N_TRAIN = 60_000
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "toy_reverse_increment"

# Tutorial: "n_layers=1, d_model=4, d_head=4, n_heads=1, d_mlp=16, d_vocab=5, n_ctx=17,
# act_fn='relu', normalization_type='LN'".
MODEL_CONFIG = dict(
    n_layers=1, d_model=4, d_head=4, n_heads=1, d_mlp=16, d_vocab=5, n_ctx=17,
    act_fn="relu", normalization_type="LN",
)


@dataclass(frozen=True)
class TrainConfig:
    """Training set-up. The tutorial fixes epochs (30), gradient clipping and cosine LR decay;
    the optimiser, learning rate, batch size and clip norm are not stated, so we use common
    defaults (AdamW, lr 1e-3, batch 64, clip 1.0) and record them in every result."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    schedule: str = "cosine"

    def key(self) -> str:
        """Cache key: hash of the model config + training config."""
        blob = json.dumps({"model": MODEL_CONFIG, "train": asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def all_sequences() -> torch.Tensor:
    """All 4^8 sequences [BOS, x0..x7, y0..y7] with y = reversed(x) + 1 mod 4, shape [65536, 17]."""
    xs = torch.tensor(list(itertools.product(range(4), repeat=N_IN)), dtype=torch.long)
    ys = torch.flip((xs + 1) % 4, dims=[1])
    bos = torch.full((xs.shape[0], 1), BOS, dtype=torch.long)
    return torch.cat([bos, xs, ys], dim=1)


def split() -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle with a fixed seed, then 60000 train / 5536 holdout (tutorial)."""
    data = all_sequences()
    perm = torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(SPLIT_SEED))
    data = data[perm]
    return data[:N_TRAIN], data[N_TRAIN:]


def bridge_config(seed: int = 0) -> TransformerBridgeConfig:
    return TransformerBridgeConfig(**MODEL_CONFIG, seed=seed)


def output_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits at positions 8..15, the ones that predict y0..y7."""
    return logits[:, N_IN : 2 * N_IN]


def loss_fn(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the last 8 positions only (tutorial)."""
    logits = output_logits(model(batch[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, N_IN + 1 :].reshape(-1))


def train(cfg: TrainConfig, log=None) -> tuple[NativeModel, dict]:
    """Train the toy model from scratch; deterministic for a given cfg on CPU."""
    torch.manual_seed(cfg.seed)
    model = NativeModel(bridge_config(cfg.seed))
    initialize_native_model(model, model.cfg, seed=cfg.seed)
    train_set, holdout = split()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(train_set.shape[0] / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(train_set.shape[0], generator=gen)
        for i in range(0, train_set.shape[0], cfg.batch_size):
            loss = loss_fn(model, train_set[order[i : i + cfg.batch_size]])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            sched.step()
        if log:
            log(f"seed {cfg.seed} epoch {epoch + 1}/{cfg.epochs} loss {loss.item():.4g}")
    model.eval()
    info = {"train_seconds": round(time.perf_counter() - start, 1), "final_loss": loss.item()}
    return model, info


def _cache_dir() -> Path:
    return cache_root() / "toy"


def _sha256(path: Path) -> str:
    return sha256_of([path])


def save(model: NativeModel, cfg: TrainConfig, directory: Path, info: dict | None = None) -> Path:
    """Write <key>.safetensors and <key>.json (config, sha256, training info)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{cfg.key()}.safetensors"
    tmp = weights.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, weights)
    meta = {"model": MODEL_CONFIG, "train": asdict(cfg), "sha256": _sha256(weights), **(info or {})}
    (directory / f"{cfg.key()}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return weights


def find_checkpoint(cfg: TrainConfig) -> Path | None:
    """Shipped fixture first, then the user cache."""
    for directory in (SHIPPED_DIR, _cache_dir()):
        path = directory / f"{cfg.key()}.safetensors"
        if path.exists():
            return path
    return None


def load_native(path: Path, seed: int = 0) -> NativeModel:
    """Load weights into a NativeModel; checks the sha256 recorded beside the file."""
    from mechcheck.models import CheckpointError

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if meta_path.exists():
        expected = json.loads(meta_path.read_text())["sha256"]
        if _sha256(path) != expected:
            raise CheckpointError(f"{path}: sha256 does not match {meta_path.name}; the file is corrupt")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a bad header
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    model = NativeModel(bridge_config(seed))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not a toy reverse+increment checkpoint "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model.eval()


def get_checkpoint(cfg: TrainConfig, log=None) -> Path:
    """The trained checkpoint for cfg: shipped fixture, cache, or train now and cache."""
    path = find_checkpoint(cfg)
    if path is None:
        model, info = train(cfg, log=log)
        path = save(model, cfg, _cache_dir(), info)
    return path


def to_bridge(model: NativeModel, device: str = "cpu"):
    """Wrap a (trained) NativeModel in a TransformerBridge for hooks and caching.

    A deep copy, so weight ablations on the bridge never touch the caller's model."""
    model = copy.deepcopy(model).to(device)
    return build_bridge_from_module(
        model, architecture="TransformerLensNative", tl_config=copy.deepcopy(model.cfg),
        device=device, model_name="toy-reverse-increment",
    )


def load(checkpoint: Path, device: str = "cpu"):
    """A LoadedModel (bridge + sha256 + source) for a toy checkpoint file."""
    from mechcheck.models import TOY, LoadedModel, sha256_of

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        from mechcheck.models import CheckpointError

        raise CheckpointError(f"{checkpoint}: not a file; the toy model is one .safetensors file")
    bridge = to_bridge(load_native(checkpoint), device=device)
    return LoadedModel(TOY, bridge, str(checkpoint), sha256_of([checkpoint]), device)


def main(argv: list[str] | None = None) -> None:
    """Train and ship fixtures: python -m mechcheck.toy --seeds 0 1 2 [--out DIR]."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = parser.parse_args(argv)
    for seed in args.seeds:
        cfg = TrainConfig(seed=seed)
        model, info = train(cfg, log=print)
        print("saved", save(model, cfg, args.out, info), info)


if __name__ == "__main__":
    main()
