"""What the thesis' claims read from one model, prepared once and shared by every claim on it:
the IOI prompt set's clean and corrupted forward passes (IOIRun, `OnPrompts`) and the head scores
on repeated tokens (`OnScores`). Both are the `on=` of the claims' bound measures (Measure), so a
claim and its controls prepare a model the same way."""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import torch

from mechcheck.core.claim import ClaimError, Measure
from mechcheck.data import data_dir, ioi_prompts, tinystories_validation
from mechcheck.data.ioi_prompts import IOIPrompts
from mechcheck.metrics import head_scores
from mechcheck.metrics.activations import cached
from mechcheck.metrics.logit_diff import end_logits, logit_diff, logit_diff_from_resid
from mechcheck.metrics.path_patching import edge_scores, head_output_scores, resid_patching, sender_scores

KEEP = ("attn.hook_z", "attn.hook_pattern", "hook_resid_pre", "hook_resid_mid", "hook_resid_post")


class IOIRun:
    """One model on the prompt set: the clean and corrupted forward passes (one cache each, only
    the hooks the IOI measurements read, in bounded batches, END logits only), shared by every
    IOI claim on that model; the costly sweeps (head patching, edges) are computed on first use
    and kept."""

    def __init__(self, bridge, prompts: IOIPrompts):
        self.bridge = bridge
        self.prompts = prompts.to(bridge.cfg.device)
        names = [f"blocks.{l}.{k}" for l in range(bridge.cfg.n_layers) for k in KEEP]
        names = [n for n in names if n in bridge.hook_dict]  # attention-only models have no resid_mid
        names += ["ln_final.hook_in", "ln_final.hook_scale"]
        self.cache = cached(bridge, self.prompts.tokens, names)
        self.corrupted_cache = cached(bridge, self.prompts.corrupted, names)
        self.logits = end_logits(bridge, self.cache["ln_final.hook_in"], self.prompts)  # [n, vocab] at END
        self.ld = logit_diff(self.logits, self.prompts)
        self.ld_corrupted = logit_diff(end_logits(bridge, self.corrupted_cache["ln_final.hook_in"], self.prompts), self.prompts)
        self._edges: dict = {}
        self._senders: dict = {}
        self._head_patching = None
        self._resid_patching = None

    def metric(self, resid):
        """Per-prompt logit difference from a final residual stream (mechcheck.metrics.activations.final_residual)."""
        return logit_diff_from_resid(self.bridge, resid, self.prompts)

    def head_patching(self):
        """Corrupt-to-clean patching of every head's output: (normalised recovery [n_layers,
        n_heads], per-prompt patched logit differences [n_layers, n_heads, n])."""
        if self._head_patching is None:
            values = head_output_scores(self.bridge, self.prompts, self.cache, self.metric, self.corrupted_cache)
            clean, corrupt = self.ld.mean().item(), self.ld_corrupted.mean().item()
            self._head_patching = ((values.mean(-1) - corrupt) / (clean - corrupt), values)
        return self._head_patching

    def edges(self, receiver: tuple[int, int], component: str):
        """Path-patching recovery of every earlier head into the receiver's q or v, per prompt:
        [layer, n_heads, n] (mean over the last axis: the recovery)."""
        key = (tuple(receiver), component)
        if key not in self._edges:
            self._edges[key] = edge_scores(self.bridge, self.prompts, self.cache, self.corrupted_cache, receiver,
                                           component, self.metric, self.ld.mean(), self.ld_corrupted.mean())
        return self._edges[key]

    def resid_patching(self):
        """Corrupt-to-clean patching of resid_pre at every layer and at each position from S2 to
        END (positions before S2 are the same in both runs, so patching them changes nothing):
        (labels ["S2", "S2+1", ..., "END"], normalised recovery per prompt [n_layers, P, n])."""
        if self._resid_patching is None:
            p = self.prompts
            gap = int((p.pos_end - p.pos_s2).min())
            positions = torch.stack([p.pos_s2 + k for k in range(gap)] + [p.pos_end])
            labels = ["S2"] + [f"S2+{k}" for k in range(1, gap)] + ["END"]
            values = resid_patching(self.bridge, p, self.cache, self.metric, positions, self.corrupted_cache)
            clean, corrupt = self.ld.mean().item(), self.ld_corrupted.mean().item()
            self._resid_patching = (labels, (values - corrupt) / (clean - corrupt))
        return self._resid_patching

    def senders(self, receivers, component: str, senders=None) -> dict:
        """Path-patching recovery per prompt, {sender: [n]}, of each earlier component (embed,
        heads, MLPs; or the named `senders`) into the q or v input of all `receivers` at once."""
        key = (tuple(map(tuple, receivers)), component, None if senders is None else tuple(senders))
        if key not in self._senders:
            self._senders[key] = sender_scores(self.bridge, self.prompts, self.cache, self.corrupted_cache,
                                               list(receivers), component, self.metric, self.ld.mean(),
                                               self.ld_corrupted.mean(), senders)
        return self._senders[key]


_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # bridge -> {preparation: result}


def _memo(bridge, key, build):
    """One preparation per (bridge, settings): claims on one model, alone or in a pair, share it."""
    per = _PREPARED.setdefault(bridge, {})
    if key not in per:
        per[key] = build()
    return per[key]


@dataclass(frozen=True)
class OnPrompts:
    """The IOI claims' preparation: the model's IOIRun on the prompt set of `names` (every ordered
    pair in the four templates, BOS first). A control built at these settings may be handed in
    already prepared (an IOIRun with planted hooks inside, or an organism's run on its own
    vocabulary); it is used as it is."""

    names: tuple = ioi_prompts.NAMES

    def __call__(self, model):
        if isinstance(model, IOIRun):
            return model
        return _memo(model, self, lambda: IOIRun(model, ioi_prompts.build(model.tokenizer, names=self.names)))


class HeadScores(dict):
    """Head scores {score: [n_layers, batch, n_heads]} prepared at `settings` (a control's planted
    scores carry the settings they were computed at, so they can be checked against the claim's)."""

    def __init__(self, scores: dict, settings):
        super().__init__(scores)
        self.settings = settings


@functools.lru_cache(maxsize=4)
def story_vocab(tokenizer) -> tuple[int, ...]:
    """The tokens that occur in the TinyStories sample (BOS excluded): repeated-token scores on
    them exercise the model's trained embeddings."""
    return tuple(head_scores.corpus_vocab(tokenizer, tinystories_validation(data_dir()),
                                          exclude=[tokenizer.bos_token_id]))


@dataclass(frozen=True)
class OnScores:
    """The head-score claims' preparation: 16 sequences of 50 random tokens repeated once after
    BOS (seed 0); vocab "all" = uniformly over the vocabulary (the thesis' form), "tinystories" =
    over the tokens occurring in the TinyStories sample."""

    vocab: str = "all"

    def vocabulary(self, tokenizer):
        return None if self.vocab == "all" else torch.tensor(story_vocab(tokenizer))

    def __call__(self, model):
        if isinstance(model, HeadScores):
            if model.settings != self:
                raise ClaimError(f"head scores prepared at {model.settings}, the claim reads {self}")
            return model
        return _memo(model, self, lambda: HeadScores(
            {k: v.cpu().numpy() for k, v in head_scores.head_scores(model, vocab=self.vocabulary(model.tokenizer)).items()},
            self))


@dataclass(frozen=True)
class Each:
    """Several preparations of one model (e.g. the head scores on both vocabularies)."""

    preparations: tuple

    def __call__(self, model):
        if isinstance(model, tuple):  # a control prepared per preparation
            return tuple(p(m) for p, m in zip(self.preparations, model))
        return tuple(p(model) for p in self.preparations)


def on_pair(fn, pair, prepare, **settings):
    """A measurement of two models (the thesis compares TinyStories-8M with GPT-2 small): each
    prepared by `prepare` (shared with the one-model claims through the preparation memo), then
    `fn(a, b, **settings)`."""
    a, b = pair
    return fn(prepare(a), prepare(b), **settings)


def with_names(measure, names: tuple):
    """The bound measure with its IOI prompt set's names replaced (`--mc-ioi-names`), every other
    setting kept: the run's option reaches the claim without retyping its arguments."""
    if isinstance(measure, OnPrompts):
        return OnPrompts(tuple(names))
    if isinstance(measure, Measure):
        return Measure(with_names(measure.fn, names), with_names(measure.on, names))
    if isinstance(measure, Each):
        return Each(tuple(with_names(p, names) for p in measure.preparations))
    if isinstance(measure, functools.partial):
        return functools.partial(measure.func, *[with_names(a, names) for a in measure.args],
                                 **{k: with_names(v, names) for k, v in measure.keywords.items()})
    return measure
