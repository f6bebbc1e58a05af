"""Control models of the thesis' claims (issue #19): the mechanism each claim names, built into a
model of the claim's shape at the claim's own settings (the same IOI prompt set with BOS, the same
repeated-token head-score inputs), and the same model without it.

Why a module beside ioi_circuit: a claim declares its controls next to its bound measurement, and
the plugin runs that very measurement on these models; the builders moved here from tests/ so a
control can never drift from its claim. Each builder returns what the claim's preparation
(`ioi.OnPrompts`, `ioi.OnScores`) takes: a bridge, or a prepared IOIRun / HeadScores computed with
the planting hooks in place (the bridge runs attention inside the HF module, so a pattern edit
reaches the cache the claims read, not later layers: TransformerLens warns so, silenced here).

Builders are memoised: a stand-in is built once per process and shared by every claim's controls.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager

import torch

from mechcheck import models
from mechcheck.data import cache_root, data_dir, gpt2_tokenizer, ioi_prompts
from mechcheck.metrics import head_scores
from mechcheck.metrics.logit_diff import _at_end, _direction
from mechcheck.models import organisms
from mechcheck.studies import ioi, ioi_circuit

TS8M, GPT2, TS3M = "roneneldan/TinyStories-8M", "gpt2", "roneneldan/TinyStories-3M"


# ---------------------------------------------------------------- the models

@functools.cache
def stand_in(name: str = TS8M):
    """The exact-config random checkpoint of `name` (seed 0), written once under the cache."""
    directory = cache_root() / "standins" / name.replace("/", "--")
    if not (directory / "config.json").is_file():
        models.save_random(name, directory)
    return models.load_hf(name, directory, "cpu", gpt2_tokenizer(data_dir())).bridge


def stand_in_run(name: str = TS8M):
    """The stand-in on the claims' IOI prompt set (default names)."""
    return ioi.OnPrompts()(stand_in(name))


@functools.cache
def name_mover(trained: bool = True):
    """The attention-only name-mover organism on its own IOI sentences (its vocabulary): trained, a
    layer-0 head attends END->S2 and layer-1 heads move IO; untrained, the same shape at random."""
    tok = organisms.name_mover_tokenizer()
    prompts = ioi_prompts.build(tok, names=organisms.NM_NAMES, templates=organisms.NM_TEMPLATES)
    recipe = organisms.name_mover_recipe()
    bridge = organisms.bridge(organisms.get(recipe), tok) if trained else organisms.random_bridge(recipe, tok)
    return ioi.IOIRun(bridge, prompts)


@contextmanager
def _hooks(bridge, hooks):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*edit is discarded.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="transformer_lens")
        with bridge.hooks(fwd_hooks=hooks):
            yield


def _prepared(bridge, prompts, hooks, sweeps=()):
    """IOIRun with `hooks` in place, and the lazy sweeps named in `sweeps` computed under them."""
    with _hooks(bridge, hooks):
        run = ioi.IOIRun(bridge, prompts)
        for sweep in sweeps:
            getattr(run, sweep)()
    return run


class _Rows:
    """Which prompt each batch row is: forward passes run the prompts in order (clean, corrupted,
    repeated copies for batched patching), so row r of the k-th row seen is prompt k mod n."""

    def __init__(self, n):
        self.n, self.seen = n, {}

    def __call__(self, key, batch):
        start = self.seen.get(key, 0)
        self.seen[key] = start + batch
        return (start + torch.arange(batch)) % self.n


# ---------------------------------------------------------------- planted attention rows (IOI prompts)

def _positions(name: str, p, rows):
    if name == "END":
        return p.pos_end[rows]
    if name == "gave":
        return p.pos_s2[rows] + 1
    if name == "and":  # the 'and' right after S1 on '{S1} and {IO}' prompts; -1 (left alone) elsewhere
        return torch.where(p.pos_s1[rows] < p.pos_io[rows], p.pos_s1[rows] + 1, -1)
    return {"S1": p.pos_s1, "S2": p.pos_s2, "IO": p.pos_io}[name][rows]


def _plant_rows(prompts, plants, rows_of):
    """Hooks on hook_pattern: plants = ((layer, head, query, key, weight), ...) with query/key named
    positions (END, gave, and, S1, S2, IO) or query "prev" (every position q >= 1 puts `weight` on q-1:
    a previous-token head); the row is scaled by 1 - weight and weight added at the key."""
    def hook_for(layer):
        def plant(pattern, hook):
            pattern = pattern.clone()
            rows = rows_of(layer, pattern.shape[0])
            r = torch.arange(pattern.shape[0])
            for l, h, query, key, w in plants:
                if l != layer:
                    continue
                if query == "prev":
                    for q in range(1, pattern.shape[-1]):
                        pattern[:, h, q] *= 1 - w
                        pattern[:, h, q, q - 1] += w
                    continue
                q, k = _positions(query, prompts, rows), _positions(key, prompts, rows)
                ok = q >= 0
                pattern[r[ok], h, q[ok]] *= 1 - w
                pattern[r[ok], h, q[ok], k[ok]] += w
            return pattern
        return plant
    return [(f"blocks.{layer}.attn.hook_pattern", hook_for(layer)) for layer in sorted({p[0] for p in plants})]


@functools.cache
def planted_attention(plants: tuple, name: str = TS8M):
    """The stand-in's IOIRun with the thesis' attention rows planted (a pattern the claim names)."""
    plain = stand_in_run(name)
    return _prepared(plain.bridge, plain.prompts, _plant_rows(plain.prompts, plants, _Rows(len(plain.prompts))))


# ---------------------------------------------------------------- planted direct effects and S2 readers

def _shift(bridge, run, layer, head, logits):
    """Per prompt, the z of (layer, head) that writes `logits` along the IO - S readout at END (at the
    unplanted run's final LayerNorm scale)."""
    d = _direction(bridge, run.prompts)
    d = d - d.mean(-1, keepdim=True)
    w = torch.einsum("ed,nd->ne", bridge.W_O[layer, head], d / _at_end(run.cache["ln_final.hook_scale"], run.prompts))
    return logits * w / w.pow(2).sum(-1, keepdim=True)


@functools.cache
def planted_dla(plants: tuple, name: str = TS8M):
    """Heads whose END output writes a fixed number of logits along IO - S (plants = ((layer, head,
    logits), ...)): direct effects the DLA claims read, the same in clean and corrupted runs."""
    plain = stand_in_run(name)
    b, rows = plain.bridge, _Rows(len(plain.prompts))
    by_layer: dict = {}
    for layer, head, logits in plants:
        by_layer.setdefault(layer, []).append((head, _shift(b, plain, layer, head, logits)))

    def hook_for(layer):
        def plant(z, hook):
            z = z.clone()
            rr = rows(layer, z.shape[0])
            for head, shift in by_layer[layer]:
                z[torch.arange(z.shape[0]), plain.prompts.pos_end[rr], head] += shift[rr]
            return z
        return plant

    return _prepared(b, plain.prompts, [(f"blocks.{l}.attn.hook_z", hook_for(l)) for l in sorted(by_layer)])


@functools.cache
def s2_reader_heads(plants: tuple, name: str = TS8M):
    """Heads that read which name stands at S2 and write the answer at END (plants = ((layer, head,
    logits), ...)): each head's END output adds `logits` x a along IO - S, where a = +1/2 when S2
    holds S (the clean prompt) and -1/2 when it holds IO (the corrupted one), read from the
    embedding at S2 in the same forward pass. Patching such a head's output from the clean run
    into the corrupted one restores its share: head patching finds exactly these heads."""
    plain = stand_in_run(name)
    b, p, n = plain.bridge, plain.prompts, len(plain.prompts)
    s2 = p.pos_s2
    emb = "blocks.0.hook_resid_pre"
    r = plain.cache[emb][torch.arange(n), s2] - plain.corrupted_cache[emb][torch.arange(n), s2]
    mid = 0.5 * ((plain.cache[emb][torch.arange(n), s2] + plain.corrupted_cache[emb][torch.arange(n), s2]) * r).sum(-1)
    rows, state = _Rows(n), {}
    shifts = {(l, h): _shift(b, plain, l, h, logits) for l, h, logits in plants}

    def read(x, hook):
        rr = rows("embed", x.shape[0])
        state["a"] = ((x[torch.arange(x.shape[0]), s2[rr]] * r[rr]).sum(-1) - mid[rr]) / r[rr].pow(2).sum(-1)
        state["rows"] = rr
        return x

    def hook_for(layer):
        def plant(z, hook):
            z = z.clone()
            rr, a = state["rows"], state["a"]
            for (l, h), shift in shifts.items():
                if l == layer:
                    z[torch.arange(z.shape[0]), p.pos_end[rr], h] += a[:, None] * shift[rr]
            return z
        return plant

    hooks = [(emb, read)] + [(f"blocks.{l}.attn.hook_z", hook_for(l)) for l in sorted({l for l, _, _ in plants})]
    return _prepared(b, p, hooks, sweeps=("head_patching",))


@functools.cache
def negative_mover(logits: float, name: str = TS8M):
    """A negative name mover of `logits` (DLA -logits) planted at the head the unplanted check
    finds least active (where its detectable effect is measured)."""
    plain = stand_in_run(name)
    head = tuple(int(x) for x in ioi_circuit.no_negative_movers(plain, -0.47)["detectable_effect_head"][1:].split("H"))
    return planted_dla(((head[0], head[1], -logits),), name)


@functools.cache
def planted_drop(logits: float, name: str = TS8M):
    """A head writing -logits at the flattest step of the logit-lens curve (I5's detectable effect)."""
    plain = stand_in_run(name)
    at = ioi_circuit.never_decreases(plain, 0.1)["detectable_effect_at"]
    layer = int(at.split(".")[0])
    layer = layer if "." not in at else min(layer + 1, plain.bridge.cfg.n_layers - 1)
    return planted_dla(((layer, 0, -logits),), name)


# ---------------------------------------------------------------- planted head scores (repeated tokens)

HALF = 50  # the head scores' settings: 16 x [BOS] r r, 50 tokens repeated once


def _scores_of(bridge, settings: ioi.OnScores, hooks=()):
    with _hooks(bridge, list(hooks)):
        raw = head_scores.head_scores(bridge, vocab=settings.vocabulary(bridge.tokenizer))
    return ioi.HeadScores({k: v.cpu().numpy() for k, v in raw.items()}, settings)


def _score_plant(head, strength, kind):
    """One head's second-half rows mixed (1-a) pattern + a target: the induction target q-half+1,
    the duplicate-token target q-half, or the previous token q-1."""
    def plant(pattern, hook):
        pattern = pattern.clone()
        q = torch.arange(1 + HALF, pattern.shape[-1]) if kind != "previous_token" else torch.arange(1, pattern.shape[-1])
        k = {"induction": q - HALF + 1, "duplicate_token": q - HALF, "previous_token": q - 1}[kind]
        target = torch.zeros_like(pattern[:, head[1], q])
        target[:, torch.arange(len(q)), k] = 1.0
        pattern[:, head[1], q] = (1 - strength) * pattern[:, head[1], q] + strength * target
        return pattern
    return (f"blocks.{head[0]}.attn.hook_pattern", plant)


@functools.cache
def planted_scores(kind: str, heads: tuple, strength: float, vocab: str = "all", name: str = TS8M):
    """The stand-in's head scores at the claims' settings with `heads` planted as `kind` heads of
    `strength`; heads = ("weakest",) plants at the head the absence check finds least active (where
    its detectable effect is measured); () is the unplanted stand-in."""
    settings = ioi.OnScores(vocab)
    bridge = stand_in(name)
    if heads == ("weakest",):
        plain = settings(bridge)
        at = ioi_circuit.absent_head_score(plain, kind, 0.5)["detectable_effect_head"]
        heads = (tuple(int(x) for x in at[1:].split("H")),)
    return _scores_of(bridge, settings, [_score_plant(h, strength, kind) for h in heads])


def planted_score_forms(kind: str, heads: tuple, strength: float, name: str = TS8M):
    """The planted scores on both vocabularies (I1.8m decides on TinyStories tokens and records the
    thesis' uniformly random form beside)."""
    return (planted_scores(kind, heads, strength, "tinystories", name), planted_scores(kind, heads, strength, "all", name))


def pair(first, second):
    """Two control models for a claim that compares two models (8M vs GPT-2)."""
    return first(), second()


def config_pair(a: str, b: str):
    """Two exact-config stand-ins (for a claim read from the configs)."""
    return stand_in(a), stand_in(b)


@functools.cache
def planted_probability(target: float, name: str = TS8M):
    """The stand-in with H7.7 writing along IO - S at END, its strength set (bisection over the
    logits it writes) so that the mean probability of IO at END is `target`: a model whose
    baseline P(correct) is the published one."""
    lo, hi = 0.0, 64.0
    for _ in range(14):
        mid = (lo + hi) / 2
        p = ioi_circuit.correct_probability(planted_dla.__wrapped__(((7, 7, mid),), name))["value"]
        lo, hi = (mid, hi) if p < target else (lo, mid)
    return planted_dla(((7, 7, round(hi, 3)),), name)


def organism_vs(name: str):
    """The name-mover organism's bridge (2 layers x 4 heads) and a stand-in of `name`."""
    return name_mover(True).bridge, stand_in(name)
