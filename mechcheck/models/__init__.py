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

from mechcheck.models import verify

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
    """What a claim model must look like: hub name, kind, and its exact architecture (None for a
    model the registry does not know: its architecture is whatever its config.json says)."""

    name: str
    kind: str  # "hf", "toy" or "organism"
    n_layers: int | None = None
    d_model: int | None = None
    n_heads: int | None = None
    hf_config: dict[str, Any] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return self.name in REGISTRY

    def shape(self) -> str:
        if self.n_layers is None:
            return "the architecture its config.json gives"
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
    """The spec of a claim's `model=`: a registered name (exact config), else any Hugging Face hub
    id or local HF folder (no expected config); anything else is one UnknownModelError line."""
    if name in REGISTRY:
        return REGISTRY[name]
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"unknown model {name!r}: give a hub id (org/name), a local folder "
                                f"or a registered name ({', '.join(sorted(REGISTRY))})")
    if Path(name).expanduser().is_dir():
        return ModelSpec(name, "hf")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise UnknownModelError(
            f"unknown model {name!r}: neither a registered name, a local folder nor a Hugging Face hub id "
            f"(org/name of letters, digits, '-', '_', '.')") from None
    return ModelSpec(name, "hf")


_WHAT = {"toy": "a safetensors file", "organism": "a safetensors file or a folder of a checkpoint series",
         "hf": "a folder with config.json and weights, or a checkpoint mechcheck trained (.safetensors + .json)"}


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
    """`--mc-model` path, else a local folder named by the claim, else the HF cache / hub (which
    honours HF_HUB_OFFLINE)."""
    if override is not None:
        return override
    if not spec(name).registered and Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
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


def hub_revision(path: Path) -> str | None:
    """The hub commit of a checkpoint that came from the HF cache (.../snapshots/<commit>/), else None."""
    parts = Path(path).parts
    if len(parts) >= 2 and parts[-2] == "snapshots" and len(parts[-1]) == 40:
        return parts[-1]
    return None


def check_bootable(path: Path, cfg: dict) -> str:
    """The TransformerBridge architecture of a config.json, or one CheckpointError line naming the
    model type and what TransformerLens supports."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES
    from transformer_lens.model_bridge.sources._hf_format import determine_architecture_from_hf_config
    from types import SimpleNamespace

    try:
        return determine_architecture_from_hf_config(SimpleNamespace(**cfg))
    except ValueError:
        from importlib.metadata import version

        raise CheckpointError(
            f"{path}: model type {cfg.get('model_type')!r} (architectures {cfg.get('architectures')}) cannot be "
            f"booted by TransformerLens {version('transformer-lens')}'s TransformerBridge; it supports "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}") from None


def check_architecture(want: ModelSpec, path: Path) -> dict:
    """Read config.json and refuse a checkpoint of another shape (e.g. 8M given for 1M), or one
    TransformerLens cannot boot. A model the registry does not know has no expected shape."""
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
    if not want.hf_config:
        check_bootable(path, cfg)
        return cfg
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


# ---------------------------------------------------------------- dtype (--mc-dtype)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_OPTIONS = ("auto", *DTYPES)
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def stored_dtype(files: list[Path], cfg: dict | None = None) -> str:
    """The dtype the checkpoint's floating-point weights are stored in: the commonest one in the
    safetensors headers (no tensor is read), else config.json's `dtype` / `torch_dtype`, else
    "unknown" (a .bin checkpoint without it)."""
    from collections import Counter

    from safetensors import safe_open

    seen: Counter = Counter()
    for f in (f for f in files if f.suffix == ".safetensors"):
        try:
            with safe_open(str(f), "pt") as st:
                for key in st.keys():
                    dt = _SAFETENSORS_DTYPES.get(st.get_slice(key).get_dtype())
                    if dt:
                        seen[dt] += 1
        except Exception:  # an unreadable file is the loader's one-line error, not this one's
            return "unknown"
    if seen:
        return seen.most_common(1)[0][0]
    declared = (cfg or {}).get("dtype") or (cfg or {}).get("torch_dtype")
    return declared if declared in DTYPES else "unknown"


def run_dtype(option: str, stored: str, device: str) -> str:
    """The dtype a measurement runs in (`--mc-dtype`): an explicit float32 / float16 / bfloat16;
    auto = float32 on the CPU (half-precision matmuls there are slow and less exact), and on CUDA
    the checkpoint's own dtype when it is float16 or bfloat16, else float32."""
    if option not in DTYPE_OPTIONS:
        raise ModelError(f"--mc-dtype {option!r}: expected one of {', '.join(DTYPE_OPTIONS)}")
    if option != "auto":
        return option
    if str(device).startswith("cuda") and stored in ("float16", "bfloat16"):
        return stored
    return "float32"


def processing_state(compat: bool) -> dict:
    """The TransformerLens processing a bridge got (enable_compatibility_mode's defaults, or none):
    it changes the numbers without changing the weights, so it is part of a record's identity."""
    return {"compatibility_mode": compat, "fold_ln": compat, "center_writing_weights": compat,
            "center_unembed": compat, "fold_value_biases": compat}


def versions() -> dict:
    """The library versions that compute a measurement (part of a record's identity)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "transformer-lens"):
        try:
            out[pkg.replace("-", "_")] = version(pkg)
        except PackageNotFoundError:
            out[pkg.replace("-", "_")] = None
    return out


@dataclass
class LoadedModel:
    """A bridge plus what a report needs to say which weights were measured, and how: the dtype
    they were stored in and the one the measurement ran in, the TransformerLens processing, the
    library versions and (hub models) the hub revision."""

    name: str
    bridge: Any
    source: str
    sha256: str
    device: str
    dtype: str = "float32"
    weights_dtype: str = "float32"
    processing: dict = field(default_factory=lambda: processing_state(False))
    revision: str | None = None

    @property
    def n_layers(self) -> int:
        return self.bridge.cfg.n_layers

    @property
    def n_heads(self) -> int:
        return self.bridge.cfg.n_heads

    def info(self) -> dict:
        out = {"name": self.name, "source": self.source, "sha256": self.sha256, "device": self.device,
               "dtype": self.dtype, "weights_dtype": self.weights_dtype, "processing": dict(self.processing),
               "versions": versions()}
        if self.revision is not None:
            out["revision"] = self.revision
        return out


def load_hf(name: str, path: Path, device: str, tokenizer, compat: bool = True, dtype: str = "auto") -> LoadedModel:
    """Load a HF checkpoint folder into a TransformerBridge (compatibility mode by default:
    the source documents all measured with HookedTransformer numerics), in the dtype `dtype`
    resolves to (run_dtype)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    want = spec(name)
    cfg = check_architecture(want, path)
    files = weight_files(path)
    stored = stored_dtype(files, cfg)
    run = run_dtype(dtype, stored, device)
    try:
        hf_model, info = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager", dtype=DTYPES[run],
                                                              output_loading_info=True)
    except Exception as exc:
        mismatch = _shape_mismatch(path, files)
        if mismatch:
            raise CheckpointError(f"{path}: {mismatch}; point --mc-model {name}= at a checkpoint of {want.shape()}") from None
        raise CheckpointError(f"{path}: weights cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    # transformers fills missing tensors at random and only prints a table: refuse them here
    tensors = len({t.data_ptr() for t in hf_model.state_dict().values()})  # tied weights (lm_head = wte) once
    why = verify.problem(str(path), name, tensors, info.get("missing_keys", ()), info.get("unexpected_keys", ()),
                         [(k, got, want) for k, got, want in info.get("mismatched_keys", ())])
    if why:
        raise CheckpointError(why)
    # boot_transformers does not move a model it is given: without this the bridge's cfg says
    # `device` while every weight stays on the CPU (on CUDA: "index is on cuda:0 ... cpu").
    hf_model.to(device=device, dtype=DTYPES[run])
    bridge = TransformerBridge.boot_transformers(str(path), device=device, tokenizer=tokenizer, hf_model=hf_model,
                                                 dtype=DTYPES[run])
    if compat:
        bridge.enable_compatibility_mode()
    return LoadedModel(name, bridge, str(path), sha256_of(files), device, dtype=run, weights_dtype=stored,
                       processing=processing_state(compat), revision=hub_revision(path))


def own_tokenizer(path: Path):
    """The tokenizer saved with a HF checkpoint folder (tokenizer.json or the files save_pretrained
    writes), or None when it has none (the measurements on random tokens need none)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # transformers raises many kinds; the message is the report
        raise CheckpointError(f"{path}: its tokenizer cannot be read ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None


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
