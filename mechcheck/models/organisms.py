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

import argparse
import hashlib
import json
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mechcheck.models import checkpoints
from mechcheck.core.warning import warn
from mechcheck.data import DataError, data_dir, gpt2_tokenizer, ioi_prompts
from mechcheck.models import INDUCTION_ORGANISM, LoadedModel
from mechcheck.models import CheckpointError

if TYPE_CHECKING:
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import NativeModel

SHIPPED_DIR = checkpoints.shipped_dir("organisms")


@dataclass(frozen=True)
class Recipe:
    """Architecture + training set-up of one organism."""

    kind: str  # the subclass's name for itself; part of the key of its checkpoints
    n_layers: int
    d_model: int = 64
    n_heads: int = 4
    d_vocab: int = 64
    n_ctx: int = 64
    attn_only: bool = True
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    def config(self) -> TransformerBridgeConfig:
        return checkpoints.bridge_config(
            n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads,
            d_head=self.d_model // self.n_heads, d_mlp=None if self.attn_only else 4 * self.d_model,
            d_vocab=self.d_vocab, n_ctx=self.n_ctx, act_fn="gelu", normalization_type="LNPre",
            attn_only=self.attn_only, seed=self.seed)

    def identity(self) -> dict:
        """The recipe as recorded in sidecars and hashed into key() (field "batch" = batch_size)."""
        d = asdict(self)
        d["batch"] = d.pop("batch_size")
        return d

    def key(self) -> str:
        return f"{self.kind}-{self.n_layers}L-" + hashlib.sha256(
            json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]

    # ---- the recipe interface of mechcheck.models.checkpoints.train

    clip_norm = None  # organisms train without gradient clipping

    def optimizer(self, params):
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01), None

    def prepare(self) -> dict:
        """The training data, built once before training (none by default)."""
        return {}

    def batch(self, state: dict, step: int, gen: torch.Generator):
        raise NotImplementedError

    def loss(self, model, batch, state: dict) -> torch.Tensor:
        """Next-token cross-entropy over the batch (the language-model organisms)."""
        logits = model(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    def log_line(self, step: int, loss: torch.Tensor) -> str | None:
        return f"{self.key()} step {step} loss {loss.item():.3f}" if step % 200 == 0 else None


@dataclass(frozen=True)
class InductionRecipe(Recipe):
    """Random tokens with a segment copied later (mechcheck.models.organisms.induction_batch)."""

    kind: str = field(default="induction", init=False)

    def batch(self, state: dict, step: int, gen: torch.Generator):
        return induction_batch(self, gen)


@dataclass(frozen=True)
class QuoteRecipe(Recipe):
    """Random windows of the TinyStories token stream (a quotation head forms)."""

    kind: str = field(default="quote", init=False)

    def prepare(self) -> dict:
        return {"stream": quote_corpus(data_dir())[1]}

    def batch(self, state: dict, step: int, gen: torch.Generator):
        stream = state["stream"]
        starts = torch.randint(0, len(stream) - self.n_ctx - 1, (self.batch_size,), generator=gen)
        return torch.stack([stream[s : s + self.n_ctx + 1] for s in starts.tolist()])


@dataclass(frozen=True)
class NameMoverRecipe(Recipe):
    """IOI rows of held-in (IO, S) pairs, trained on the IO logit at END only (a name mover forms)."""

    kind: str = field(default="name_mover", init=False)

    def prepare(self) -> dict:
        prompts = ioi_prompts.build(name_mover_tokenizer(), names=NM_NAMES, templates=NM_TEMPLATES)
        train = set(_train_pairs(False))
        rows = [i for i, t in enumerate(prompts.texts) if _pair_of(t, prompts, i) in train]
        return {"prompts": prompts, "rows": torch.tensor(rows)}

    def batch(self, state: dict, step: int, gen: torch.Generator):
        return state["rows"][torch.randint(0, len(state["rows"]), (self.batch_size,), generator=gen)]

    def loss(self, model, batch, state: dict) -> torch.Tensor:
        """Cross-entropy of IO at END."""
        p = state["prompts"]
        logits = model(p.tokens[batch])[torch.arange(self.batch_size), p.pos_end[batch]]
        return F.cross_entropy(logits, p.io[batch])


INDUCTION = InductionRecipe(n_layers=2, steps=2000, batch_size=64)
INDUCTION_CONTROL = InductionRecipe(n_layers=1, steps=2000, batch_size=64)


# ------------------------------------------------------------------ data

def induction_batch(recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """[batch, n_ctx] random tokens with a segment (n_ctx/6 to n_ctx/3 long) copied later: random
    tokens before the first copy and a random gap before the second, so the copy's position varies."""
    n, length = recipe.batch_size, recipe.n_ctx
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
    if data is None:
        raise DataError("the quote organism trains on <data>/tinystories/train-head-2MiB.txt: give --mc-data or $MECHCHECK_DATA")
    gpt2 = gpt2_tokenizer(data)
    stories = (data / "tinystories" / "train-head-2MiB.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    ids = []
    for story in stories:
        ids += [gpt2.bos_token_id] + gpt2.encode(story.strip(), add_special_tokens=False)
    tok = CompactTokenizer(gpt2, ids)
    return tok, torch.tensor(tok._map(ids))


QUOTE = QuoteRecipe(n_layers=3, d_model=64, n_heads=4, d_vocab=0, n_ctx=128, attn_only=False,
               steps=1200, batch_size=16)


def quote_recipe(tok: "CompactTokenizer") -> Recipe:
    return dataclasses.replace(QUOTE, d_vocab=tok.unk + 1)


NM_NAMES = ("John", "Mary", "Tom", "Sue", "Ben", "Anna", "Max", "Lily", "Sam", "Tim", "Lucy", "Jack",
            "Kim", "Bob", "Eva", "Dan")
NM_HELD_OUT = ("Kim", "Bob", "Eva", "Dan")  # names never seen as (IO, S) pairs together in training
NM_TEMPLATES = (
    "When {S1} and {IO} went to the shops, {S2} gave the bag to",
    "When {IO} and {S1} went to the shops, {S2} gave the bag to",
)
NAME_MOVER = NameMoverRecipe(n_layers=2, attn_only=True, d_vocab=0, n_ctx=16, steps=800)


def name_mover_tokenizer() -> WordTokenizer:
    words = sorted({w for t in NM_TEMPLATES for w in t.replace(",", " ,").split() if not w.startswith("{")})
    return WordTokenizer(words + list(NM_NAMES))


def name_mover_recipe() -> Recipe:
    return dataclasses.replace(NAME_MOVER, d_vocab=len(name_mover_tokenizer().vocab))


def _train_pairs(held_out: bool):
    import itertools

    pairs = list(itertools.permutations(NM_NAMES, 2))
    test = [p for p in pairs if p[0] in NM_HELD_OUT and p[1] in NM_HELD_OUT]
    return test if held_out else [p for p in pairs if p not in test]


# ------------------------------------------------------------------ lifecycle

def train(recipe: Recipe, log=None, save_every: int = 0, series_dir: Path | None = None) -> tuple[NativeModel, dict]:
    """Train the organism from scratch (mechcheck.models.checkpoints.train; deterministic on CPU). With
    save_every, also write the checkpoint series step0000, step0250, ... into series_dir."""

    def snapshot(step, model):
        if save_every and step % save_every == 0:
            save(model, recipe, series_dir, {"step": step}, tag=f"-step{step:04d}")

    return checkpoints.train(recipe, log=log, on_step=snapshot if save_every else None)


def _pair_of(text, prompts, i):
    words = text.replace(",", " ,").split()
    return words[prompts.pos_io[i] - 1], words[prompts.pos_s1[i] - 1]


def save(model: NativeModel, recipe: Recipe, directory: Path, info: dict | None = None, tag: str = "") -> Path:
    return checkpoints.save(model, Path(directory) / f"{recipe.key()}{tag}.safetensors",
                            {"recipe": recipe.identity(), **(info or {})})


def load(path: Path, recipe: Recipe) -> NativeModel:
    """The organism of `recipe` with the weights of `path` (one CheckpointError line if unusable)."""
    return checkpoints.load_native(path, recipe.config(), f"{recipe.kind} organism ({recipe.n_layers}-layer)")


def get(recipe: Recipe, log=None) -> NativeModel:
    """The trained organism: shipped fixture, else the user cache, else train now and cache."""
    path = checkpoints.find(f"{recipe.key()}.safetensors", "organisms", SHIPPED_DIR)
    if path is not None:
        return load(path, recipe)
    warn(f"{recipe.kind} organism {recipe.key()}: none shipped or cached, training it now (cached after)")
    model, info = train(recipe, log=log)
    save(model, recipe, checkpoints.cache_dir("organisms"), info)
    return model


def bridge(model: NativeModel, tokenizer=None, device: str = "cpu"):
    """A TransformerBridge around a copy of the organism (hooks, caches, W_U ...)."""
    return checkpoints.bridge(model, tokenizer, device, name="organism")


def random_bridge(recipe: Recipe, tokenizer=None, device: str = "cpu"):
    """The untrained control of an organism: its architecture with random weights (TL boot_native)."""
    return checkpoints.random_bridge(recipe.config(), tokenizer, device)


SERIES_DIR = SHIPPED_DIR / "induction-series"
SERIES_EVERY = 250


def series(directory: Path = SERIES_DIR) -> list[tuple[int, Path]]:
    """(step, checkpoint) of the induction organism's training series, in step order; a folder
    without step checkpoints is one CheckpointError line (never an empty run)."""
    directory = Path(directory)
    out = []
    for path in sorted(directory.glob("*-step*.safetensors")):
        try:
            out.append((int(path.stem.rsplit("-step", 1)[1]), path))
        except ValueError:
            raise CheckpointError(f"{path}: not a series checkpoint name (expected NAME-stepNNNN.safetensors)") from None
    if not out:
        raise CheckpointError(f"{directory}: no checkpoint series here (expected files NAME-stepNNNN.safetensors, "
                              f"e.g. {SERIES_DIR.name}/ of mechcheck train-organisms)")
    return sorted(out)


def load_induction(path: Path, device: str = "cpu"):
    """A LoadedModel of an induction-organism checkpoint (2-layer attention-only)."""
    b = bridge(load(Path(path), INDUCTION), device=device)
    return LoadedModel(INDUCTION_ORGANISM, b, str(path), checkpoints.sha256(Path(path)), device)


def main(argv: list[str] | None = None) -> None:
    """Retrain the model organisms (induction 2L + its induction series, induction 1L control,
    name mover, quote) and write them (default: the shipped fixtures folder)."""
    recipes = {"induction": INDUCTION, "induction-control": INDUCTION_CONTROL}
    parser = argparse.ArgumentParser(prog="mechcheck train-organisms", description=main.__doc__)
    parser.add_argument("--only", nargs="+", choices=[*recipes, "name-mover", "quote"],
                        default=[*recipes, "name-mover", "quote"], help="organisms to retrain (default: all)")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder to write to (default: %(default)s)")
    args = parser.parse_args(argv)
    for which in args.only:
        if which == "name-mover":
            recipe = name_mover_recipe()
        elif which == "quote":
            recipe = quote_recipe(quote_corpus(data_dir())[0])
        else:
            recipe = recipes[which]
        every = SERIES_EVERY if recipe == INDUCTION else 0
        model, info = train(recipe, log=print, save_every=every, series_dir=args.out / SERIES_DIR.name)
        print("saved", save(model, recipe, args.out, info), info)
