"""The toy reverse+increment transformer of the tutorial ("From Zero to (Mechanistic)
Interpretability", ../shared/seeds/tutorial-toy-reverse-increment.txt).

Why it lives here: the tutorial's claims are about a model that the tutorial trains, so
mechcheck has to train it too (exact set-up of the tutorial, our hyperparameters recorded
where the tutorial is silent) and cache the result so a second run does not retrain.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mechcheck.models import checkpoints
from mechcheck.core.warning import warn
from mechcheck.models import TOY, LoadedModel

if TYPE_CHECKING:
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import NativeModel

BOS = 4
N_IN = 8  # x0..x7
SPLIT_SEED = 0  # the shuffle of the 4^8 sequences; the same holdout for every training seed
N_TRAIN = 60_000
SHIPPED_DIR = checkpoints.shipped_dir("toy_reverse_increment")
WHAT = "toy reverse+increment"

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

    # ---- the recipe interface of mechcheck.models.checkpoints.train

    def config(self) -> TransformerBridgeConfig:
        return bridge_config(self.seed)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(N_TRAIN / self.batch_size)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def optimizer(self, params):
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps)

    def prepare(self) -> dict:
        return {"train": split()[0], "order": None}

    def batch(self, state: dict, step: int, gen: torch.Generator) -> torch.Tensor:
        """Epochs over the 60000 training sequences, reshuffled at the start of each epoch."""
        i = (step % self.steps_per_epoch) * self.batch_size
        if i == 0:
            state["order"] = torch.randperm(state["train"].shape[0], generator=gen)
        return state["train"][state["order"][i : i + self.batch_size]]

    def loss(self, model, batch: torch.Tensor, state=None) -> torch.Tensor:
        return loss_fn(model, batch)

    def log_line(self, step: int, loss: torch.Tensor) -> str | None:
        if (step + 1) % self.steps_per_epoch == 0:
            return f"seed {self.seed} epoch {(step + 1) // self.steps_per_epoch}/{self.epochs} loss {loss.item():.4g}"
        return None


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
    return checkpoints.bridge_config(**MODEL_CONFIG, seed=seed)


def output_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits at positions 8..15, the ones that predict y0..y7."""
    return logits[:, N_IN : 2 * N_IN]


def loss_fn(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the last 8 positions only (tutorial)."""
    logits = output_logits(model(batch[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, N_IN + 1 :].reshape(-1))


def train(cfg: TrainConfig, log=None) -> tuple[NativeModel, dict]:
    """Train the toy model from scratch (mechcheck.models.checkpoints.train); deterministic on CPU."""
    return checkpoints.train(cfg, log=log)


def save(model: NativeModel, cfg: TrainConfig, directory: Path, info: dict | None = None) -> Path:
    """Write <key>.safetensors and <key>.json (config, sha256, training info)."""
    meta = {"model": MODEL_CONFIG, "train": asdict(cfg), **(info or {})}
    return checkpoints.save(model, Path(directory) / f"{cfg.key()}.safetensors", meta)


def find_checkpoint(cfg: TrainConfig) -> Path | None:
    """Shipped fixture first, then the user cache."""
    return checkpoints.find(f"{cfg.key()}.safetensors", "toy", SHIPPED_DIR)


def load_native(path: Path, seed: int = 0) -> NativeModel:
    """Load weights into a NativeModel; checks the sha256 recorded beside the file."""
    return checkpoints.load_native(path, bridge_config(seed), WHAT)


def get_checkpoint(cfg: TrainConfig, log=None) -> Path:
    """The trained checkpoint for cfg: shipped fixture, cache, or train now and cache."""
    path = find_checkpoint(cfg)
    if path is None:
        warn(f"toy checkpoint seed {cfg.seed}: none shipped or cached, training it now (about a minute; cached after)")
        model, info = train(cfg, log=log)
        path = save(model, cfg, checkpoints.cache_dir("toy"), info)
    return path


def to_bridge(model: NativeModel, device: str = "cpu"):
    """Wrap a (trained) NativeModel in a TransformerBridge (a copy: ablations never touch `model`)."""
    return checkpoints.bridge(model, device=device, name="toy-reverse-increment")


def random_bridge(seed: int, device: str = "cpu"):
    """The untrained control: the toy architecture with random weights (TL boot_native)."""
    return checkpoints.random_bridge(bridge_config(seed), device=device)


def load(checkpoint: Path, device: str = "cpu"):
    """A LoadedModel (bridge + sha256 + source) for a toy checkpoint file."""
    checkpoint = Path(checkpoint)
    bridge = to_bridge(load_native(checkpoint), device=device)
    return LoadedModel(TOY, bridge, str(checkpoint), checkpoints.sha256(checkpoint), device)


def main(argv: list[str] | None = None) -> None:
    """Retrain the toy checkpoints and write them (default: the shipped fixtures folder)."""
    import argparse

    parser = argparse.ArgumentParser(prog="mechcheck train-toy", description=main.__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = parser.parse_args(argv)
    for seed in args.seeds:
        cfg = TrainConfig(seed=seed)
        model, info = train(cfg, log=print)
        print("saved", save(model, cfg, args.out, info), info)


if __name__ == "__main__":
    main()
