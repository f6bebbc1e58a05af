"""Model organisms: small models trained here whose mechanism is known, so every claim family
can be seen to pass where the mechanism is present and fail where it is absent.

Why: the checkpoints the documents study cannot be loaded on our machines, and a claim test that
has never been seen to fail proves nothing. Each recipe is seeded and runs in well under two
minutes on 2 CPU cores; trained weights ship in fixtures/organisms/ with their sha256.

- induction: a 2-layer attention-only transformer on sequences with a repeated random segment
  at a random offset (random tokens before the copy, a random gap) grows a previous-token head
  in layer 0 and an induction head in layer 1; the 1-layer control cannot form one (and with the
  random offset cannot fake it positionally).
- quote: a 3-layer transformer trained on the TinyStories train sample (its ~7.7k used GPT-2
  tokens re-indexed): some head learns to attend from inside a quotation to its opening quote.
- name mover: a 2-layer attention-only transformer on IOI sentences over a word-level
  vocabulary, trained to predict IO at END (800 steps, ~6 s): a layer-0 head attends END->S2
  (S-inhibition-like) and the layer-1 heads attend END->IO and write IO (name movers); with
  MLPs the model solved it mostly outside the heads, so the recipe is attention-only.
"""

from __future__ import annotations

import copy
import hashlib
import json
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

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "organisms"


@dataclass(frozen=True)
class Recipe:
    """Architecture + training set-up of one organism."""

    kind: str  # "induction" or "name_mover"
    n_layers: int
    d_model: int = 64
    n_heads: int = 4
    d_vocab: int = 64
    n_ctx: int = 64
    attn_only: bool = True
    steps: int = 1000
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0

    def config(self) -> TransformerBridgeConfig:
        return TransformerBridgeConfig(
            n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
            d_head=self.d_model // self.n_heads, d_mlp=None if self.attn_only else 4 * self.d_model,
            d_vocab=self.d_vocab, n_ctx=self.n_ctx, act_fn="gelu", normalization_type="LNPre",
            attn_only=self.attn_only, seed=self.seed)

    def key(self) -> str:
        return f"{self.kind}-{self.n_layers}L-" + hashlib.sha256(
            json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


INDUCTION = Recipe("induction", n_layers=2, steps=2000, batch=64)
INDUCTION_CONTROL = Recipe("induction", n_layers=1, steps=2000, batch=64)


# ------------------------------------------------------------------ data

def induction_batch(recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """[batch, n_ctx] random tokens with a segment (n_ctx/6 to n_ctx/3 long) copied later: random
    tokens before the first copy and a random gap before the second, so the copy's position varies."""
    n, length = recipe.batch, recipe.n_ctx
    x = torch.randint(0, recipe.d_vocab, (n, length), generator=gen)
    for i in range(n):
        seg = int(torch.randint(length // 6, length // 3 + 1, (1,), generator=gen))
        start = int(torch.randint(0, length - 2 * seg - 1, (1,), generator=gen))
        gap = int(torch.randint(0, length - 2 * seg - start, (1,), generator=gen))
        x[i, start + seg + gap : start + 2 * seg + gap] = x[i, start : start + seg]
    return x


class WordTokenizer:
    """A word-level tokenizer for the name-mover organism (encode/decode like a HF tokenizer)."""

    def __init__(self, words: list[str]):
        self.vocab = ["<bos>"] + words
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.bos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = [self.index[w] for w in text.replace(",", " ,").split()]
        return ([self.bos_token_id] if add_special_tokens else []) + ids

    def decode(self, ids) -> str:
        return " ".join(self.vocab[i] for i in ids)


class CompactTokenizer:
    """GPT-2 BPE restricted to the token ids a corpus uses (the quote organism's vocabulary):
    same text, same offsets, ids re-indexed; ids outside the corpus map to <unk>."""

    def __init__(self, gpt2, used_ids: list[int]):
        self.gpt2 = gpt2
        self.vocab = [gpt2.bos_token_id] + [i for i in sorted(set(used_ids)) if i != gpt2.bos_token_id]
        self.unk = len(self.vocab)
        self.index = {g: c for c, g in enumerate(self.vocab)}
        self.bos_token_id = 0

    def _map(self, ids):
        return [self.index.get(i, self.unk) for i in ids]

    def __call__(self, text, add_special_tokens=False, **kw):
        enc = self.gpt2(text, add_special_tokens=False, **kw)
        return {**enc, "input_ids": self._map(enc["input_ids"])}

    def encode(self, text, add_special_tokens=False):
        return self._map(self.gpt2.encode(text, add_special_tokens=False))

    def decode(self, ids):
        return self.gpt2.decode([self.vocab[i] if i < self.unk else self.gpt2.unk_token_id for i in ids])


def quote_corpus(data):
    """(CompactTokenizer, token stream) from the TinyStories train sample (stories separated by
    BOS), for the quote organism."""
    from mechcheck.data import DataError, gpt2_tokenizer

    if data is None:
        raise DataError("the quote organism trains on <data>/tinystories/train-head-2MiB.txt: give --mc-data or $MECHCHECK_DATA")
    gpt2 = gpt2_tokenizer(data)
    stories = (data / "tinystories" / "train-head-2MiB.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    ids = []
    for story in stories:
        ids += [gpt2.bos_token_id] + gpt2.encode(story.strip(), add_special_tokens=False)
    tok = CompactTokenizer(gpt2, ids)
    return tok, torch.tensor(tok._map(ids))


QUOTE = Recipe("quote", n_layers=3, d_model=64, n_heads=4, d_vocab=0, n_ctx=128, attn_only=False,
               steps=1200, batch=16)


def quote_recipe(tok: "CompactTokenizer") -> Recipe:
    return Recipe(**{**asdict(QUOTE), "d_vocab": tok.unk + 1})


NM_NAMES = ("John", "Mary", "Tom", "Sue", "Ben", "Anna", "Max", "Lily", "Sam", "Tim", "Lucy", "Jack",
            "Kim", "Bob", "Eva", "Dan")
NM_HELD_OUT = ("Kim", "Bob", "Eva", "Dan")  # names never seen as (IO, S) pairs together in training
NM_TEMPLATES = (
    "When {S1} and {IO} went to the shops, {S2} gave the bag to",
    "When {IO} and {S1} went to the shops, {S2} gave the bag to",
)
NAME_MOVER = Recipe("name_mover", n_layers=2, attn_only=True, d_vocab=0, n_ctx=16, steps=800)


def name_mover_tokenizer() -> WordTokenizer:
    words = sorted({w for t in NM_TEMPLATES for w in t.replace(",", " ,").split() if not w.startswith("{")})
    return WordTokenizer(words + list(NM_NAMES))


def name_mover_recipe() -> Recipe:
    return Recipe(**{**asdict(NAME_MOVER), "d_vocab": len(name_mover_tokenizer().vocab)})


def _train_pairs(held_out: bool):
    import itertools

    pairs = list(itertools.permutations(NM_NAMES, 2))
    test = [p for p in pairs if p[0] in NM_HELD_OUT and p[1] in NM_HELD_OUT]
    return test if held_out else [p for p in pairs if p not in test]


# ------------------------------------------------------------------ training

def train(recipe: Recipe, log=None, save_every: int = 0, series_dir: Path | None = None) -> tuple[NativeModel, dict]:
    """Train the organism from scratch (deterministic on CPU for a given recipe). With
    save_every, also write the checkpoint series step0000, step0250, ... into series_dir."""
    from mechcheck import ioi

    torch.manual_seed(recipe.seed)
    cfg = recipe.config()
    model = NativeModel(cfg)
    initialize_native_model(model, cfg, seed=recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(recipe.seed)
    if recipe.kind == "quote":
        from mechcheck.data import data_dir

        _, stream = quote_corpus(data_dir())
    if recipe.kind == "name_mover":
        tok = name_mover_tokenizer()
        prompts = ioi.build(tok, names=NM_NAMES, templates=NM_TEMPLATES)
        train_rows = [i for i, t in enumerate(prompts.texts) if _pair_of(t, prompts, i) in set(_train_pairs(False))]
        train_rows = torch.tensor(train_rows)
    start = time.perf_counter()
    model.train()
    for step in range(recipe.steps + 1):
        if save_every and step % save_every == 0:
            model.eval()
            save(model, recipe, series_dir, {"step": step}, tag=f"-step{step:04d}")
            model.train()
        if step == recipe.steps:
            break
        if recipe.kind in ("induction", "quote"):
            if recipe.kind == "induction":
                x = induction_batch(recipe, gen)
            else:  # random windows of the TinyStories token stream
                starts = torch.randint(0, len(stream) - recipe.n_ctx - 1, (recipe.batch,), generator=gen)
                x = torch.stack([stream[s : s + recipe.n_ctx + 1] for s in starts.tolist()])
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        else:
            rows = train_rows[torch.randint(0, len(train_rows), (recipe.batch,), generator=gen)]
            logits = model(prompts.tokens[rows])[torch.arange(recipe.batch), prompts.pos_end[rows]]
            loss = F.cross_entropy(logits, prompts.io[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and step % 200 == 0:
            log(f"{recipe.key()} step {step} loss {loss.item():.3f}")
    model.eval()
    return model, {"train_seconds": round(time.perf_counter() - start, 1), "final_loss": round(loss.item(), 4)}


def _pair_of(text, prompts, i):
    words = text.replace(",", " ,").split()
    return words[prompts.pos_io[i] - 1], words[prompts.pos_s1[i] - 1]


# ------------------------------------------------------------------ storage

def _sha256(path: Path) -> str:
    return sha256_of([path])


def save(model: NativeModel, recipe: Recipe, directory: Path, info: dict | None = None, tag: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{recipe.key()}{tag}.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    meta = {"recipe": asdict(recipe), "sha256": _sha256(path), **(info or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load(path: Path, recipe: Recipe) -> NativeModel:
    from mechcheck.models import CheckpointError

    meta = path.with_suffix(".json")
    if meta.exists() and json.loads(meta.read_text())["sha256"] != _sha256(path):
        raise CheckpointError(f"{path}: sha256 does not match {meta.name}; the file is corrupt")
    model = NativeModel(recipe.config())
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def get(recipe: Recipe, log=None) -> NativeModel:
    """The trained organism: shipped fixture, else the user cache, else train now and cache."""
    cache = cache_root() / "organisms"
    for directory in (SHIPPED_DIR, cache):
        path = directory / f"{recipe.key()}.safetensors"
        if path.exists():
            return load(path, recipe)
    model, info = train(recipe, log=log)
    save(model, recipe, cache, info)
    return model


def bridge(model: NativeModel, tokenizer=None, device: str = "cpu"):
    """A TransformerBridge around a copy of the organism (hooks, caches, W_U ...)."""
    model = copy.deepcopy(model).to(device)
    b = build_bridge_from_module(model, architecture="TransformerLensNative",
                                 tl_config=copy.deepcopy(model.cfg), device=device, model_name="organism")
    if tokenizer is not None:
        b.tokenizer = tokenizer
    return b


SERIES_DIR = SHIPPED_DIR / "induction-series"
SERIES_EVERY = 250


def series(directory: Path = SERIES_DIR) -> list[tuple[int, Path]]:
    """(step, checkpoint) of the induction organism's training series, in step order."""
    out = []
    for path in sorted(Path(directory).glob("*-step*.safetensors")):
        out.append((int(path.stem.rsplit("-step", 1)[1]), path))
    return out


def main(argv: list[str] | None = None) -> None:
    """Train and ship the organisms (and the induction checkpoint series): python -m mechcheck
    train-organisms."""
    for recipe in (INDUCTION, INDUCTION_CONTROL, name_mover_recipe()):
        every = SERIES_EVERY if recipe == INDUCTION else 0
        model, info = train(recipe, log=print, save_every=every, series_dir=SERIES_DIR)
        print("saved", save(model, recipe, SHIPPED_DIR, info), info)
