"""The claim models: a registry by hub name, checkpoint resolution, loading, hashing.

Why one place: every claim must say exactly which weights it measured (sha256), a user must be
able to swap in their own checkpoint (`--mc-model NAME=PATH`), and a checkpoint that cannot be
reached must turn into one clear skip reason, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

TOY = "mechcheck/toy-reverse-increment"
INDUCTION_ORGANISM = "mechcheck/induction-organism"


class ModelError(Exception):
    """A model problem a user can fix; its message is the whole report (one line)."""


class UnknownModelError(ModelError):
    pass


class CheckpointError(ModelError):
    """The checkpoint is there but unusable: missing file, corrupt, wrong architecture."""


class CheckpointUnavailable(ModelError):
    """The checkpoint cannot be reached (offline, not cached): the claim is skipped."""


def _gpt_neo(hidden: int, layers: int, window: int = 256) -> dict:
    # Exact configs of the roneneldan/TinyStories-* checkpoints (GPT-Neo, alternating
    # global/local attention, GPT-2 vocabulary).
    return dict(
        model_type="gpt_neo", vocab_size=50257, hidden_size=hidden, num_layers=layers,
        num_heads=16, attention_types=[[["global", "local"], max(layers // 2, 1)]]
        if layers > 1 else [[["global"], 1]],
        window_size=window, max_position_embeddings=2048, activation_function="gelu_new",
        intermediate_size=None, resid_dropout=0.0, embed_dropout=0.0, attention_dropout=0.0,
        layer_norm_epsilon=1e-5, bos_token_id=50256, eos_token_id=50256,
    )


@dataclass(frozen=True)
class ModelSpec:
    """What a claim model must look like: hub name, kind, and its exact architecture."""

    name: str
    kind: str  # "hf" or "toy"
    n_layers: int
    d_model: int
    n_heads: int
    hf_config: dict[str, Any] = field(default_factory=dict)

    def shape(self) -> str:
        return f"{self.n_layers} layers x d_model {self.d_model} x {self.n_heads} heads"


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("roneneldan/TinyStories-1M", "hf", 8, 64, 16, _gpt_neo(64, 8)),
        ModelSpec("roneneldan/TinyStories-3M", "hf", 8, 128, 16, _gpt_neo(128, 8)),  # thesis §3.2: 8M is the smallest able
        ModelSpec("roneneldan/TinyStories-8M", "hf", 8, 256, 16, _gpt_neo(256, 8)),
        ModelSpec("roneneldan/TinyStories-1Layer-21M", "hf", 1, 1024, 16, _gpt_neo(1024, 1)),
        ModelSpec("roneneldan/TinyStories-Instuct-1Layer-21M", "hf", 1, 1024, 16, _gpt_neo(1024, 1)),
        ModelSpec(
            "gpt2", "hf", 12, 768, 12,
            dict(model_type="gpt2", vocab_size=50257, n_layer=12, n_embd=768, n_head=12,
                 n_positions=1024, activation_function="gelu_new"),
        ),
        ModelSpec(TOY, "toy", 1, 4, 1),
        ModelSpec(INDUCTION_ORGANISM, "organism", 2, 64, 4),
    ]
}


def spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
    return REGISTRY[name]


_WHAT = {"toy": "a safetensors file", "organism": "a safetensors file or a folder of a checkpoint series",
         "hf": "a folder with config.json and weights"}


def parse_overrides(values: list[str] | None) -> dict[str, Path]:
    """`--mc-model NAME=PATH` values -> {name: path}; every problem is one ModelError line."""
    overrides: dict[str, Path] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ModelError(f"--mc-model {value!r}: expected NAME=PATH, e.g. {TOY}=ckpt.safetensors")
        spec(name)
        p = Path(path).expanduser()
        if not p.exists():
            raise CheckpointError(
                f"--mc-model {name}={path}: no such file or directory; give the path of a local "
                f"checkpoint ({_WHAT[spec(name).kind]})"
            )
        overrides[name] = p.resolve()
    return overrides


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weight_files(path: Path) -> list[Path]:
    """The weight files of a checkpoint (a file, or a HF folder with one or many shards)."""
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not files:
        raise CheckpointError(f"{path}: no weights (expected {' or '.join(WEIGHT_FILES)})")
    return files


def sha256_of(paths: list[Path]) -> str:
    """sha256 of the weights a claim measured: of the file itself for one file (as the sidecars
    record it), else over the files' bytes in order (sharded HF checkpoints)."""
    if len(paths) == 1:
        with open(paths[0], "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def resolve_hf(name: str, override: Path | None) -> Path:
    """`--mc-model` path, else the HF cache / hub (which honours HF_HUB_OFFLINE)."""
    if override is not None:
        return override
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    # Only "not there / cannot reach it" becomes a skip; a corrupt cache or a bug stays an error.
    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt"]))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE=1 and it is not in the HF cache" if offline else type(exc).__name__
        raise CheckpointUnavailable(
            f"checkpoint {name} not reachable ({why}); provide it with "
            f"--mc-model {name}=/path/to/checkpoint, or run once with internet to fill the HF cache"
        ) from None


def check_architecture(want: ModelSpec, path: Path) -> dict:
    """Read config.json and refuse a checkpoint of another shape (e.g. 8M given for 1M)."""
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{path}: no config.json, not a Hugging Face checkpoint folder")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        kind = {list: "list", str: "string"}.get(type(cfg), type(cfg).__name__)
        raise CheckpointError(f"{cfg_path}: not a Hugging Face config (a JSON {kind}, expected an object)")
    got = (
        cfg.get("num_layers", cfg.get("n_layer")),
        cfg.get("hidden_size", cfg.get("n_embd")),
        cfg.get("num_heads", cfg.get("n_head")),
    )
    if cfg.get("model_type") != want.hf_config.get("model_type") or got != (
        want.n_layers, want.d_model, want.n_heads,
    ):
        raise CheckpointError(
            f"{path}: a {cfg.get('model_type')} model with {got[0]} layers x d_model {got[1]} x "
            f"{got[2]} heads, but {want.name} is {want.hf_config.get('model_type')} with "
            f"{want.shape()}; point --mc-model {want.name}= at a checkpoint of that architecture"
        )
    return cfg


@dataclass
class LoadedModel:
    """A bridge plus what a report needs to say which weights were measured."""

    name: str
    bridge: Any
    source: str
    sha256: str
    device: str

    @property
    def n_layers(self) -> int:
        return self.bridge.cfg.n_layers

    @property
    def n_heads(self) -> int:
        return self.bridge.cfg.n_heads

    def info(self) -> dict:
        return {"name": self.name, "source": self.source, "sha256": self.sha256, "device": self.device}


def load_hf(name: str, path: Path, device: str, tokenizer, compat: bool = True) -> LoadedModel:
    """Load a HF checkpoint folder into a TransformerBridge (compatibility mode by default:
    the source documents all measured with HookedTransformer numerics)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    want = spec(name)
    check_architecture(want, path)
    files = weight_files(path)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager")
    except Exception as exc:
        mismatch = _shape_mismatch(path, files)
        if mismatch:
            raise CheckpointError(f"{path}: {mismatch}; point --mc-model {name}= at a checkpoint of {want.shape()}") from None
        raise CheckpointError(f"{path}: weights cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    # boot_transformers does not move a model it is given: without this the bridge's cfg says
    # `device` while every weight stays on the CPU (on CUDA: "index is on cuda:0 ... cpu").
    hf_model.to(device)
    bridge = TransformerBridge.boot_transformers(str(path), device=device, tokenizer=tokenizer, hf_model=hf_model)
    if compat:
        bridge.enable_compatibility_mode()
    return LoadedModel(name, bridge, str(path), sha256_of(files), device)


def _shape_mismatch(path: Path, files: list[Path]) -> str | None:
    """The first tensor whose shape differs from what config.json builds, in words (transformers
    only says "look at the above report", which a one-line error cannot show)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"):
            expected = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path))).state_dict()
        for f in (f for f in files if f.suffix == ".safetensors"):
            with safe_open(str(f), "pt") as st:
                for key in st.keys():
                    got = tuple(st.get_slice(key).get_shape())
                    want = expected.get(key)
                    if want is not None and tuple(want.shape) != got:
                        return f"tensor {key} has shape {list(got)}, config.json needs {list(want.shape)}"
    except Exception:  # no better words than transformers' own
        return None
    return None


def save_random(name: str, directory: Path, seed: int = 0) -> Path:
    """A random-weight HF checkpoint with the exact config of registry model `name` (a dry-run
    stand-in: every measurement runs end to end on it; no claim should be expected to hold)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(spec(name).hf_config)
    cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(directory)
    return Path(directory)


OUT_OF_MEMORY = torch.OutOfMemoryError


def error_line(exc: BaseException) -> str:
    """The one line an error is reported as; an out-of-memory on the device names the two fixes."""
    if isinstance(exc, OUT_OF_MEMORY):
        first = (str(exc).splitlines() or [""])[0][:200]
        return (f"OutOfMemoryError: {first}; run on the CPU (--mc-device cpu) or with a smaller prompt set "
                f"(e.g. --mc-ioi-names John,Mary,Tom)")
    return f"{type(exc).__name__}: {exc}"


def pick_device(option: str = "auto") -> str:
    """`--mc-device`: auto means CUDA when available, else CPU."""
    if option == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if option == "cuda" and not torch.cuda.is_available():
        raise ModelError("--mc-device cuda: no CUDA device is available here; use --mc-device cpu or auto")
    return option
