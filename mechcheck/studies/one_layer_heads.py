"""Measurements of the two blog posts on the one-layer TinyStories model
(../shared/seeds/blog-tinystories-1layer-21m-attention*.{txt,md}): head roles (B1) and the
attention-output statistics (B2), and the control models they are checked on.

Why a module: a claim binds one of these functions with every setting (functools.partial) and the
plugin runs the very same bound object on the claim's checkpoint and on its control models
(mechcheck.core.claim), so a control can never drift from its claim.

Controls (builders return a TransformerBridge, as the checkpoints are loaded: raw HF weights):
- `planted(...)`: a one-layer GPT-Neo with the config of TinyStories-1Layer-21M (16 heads, GPT-2
  vocabulary, hidden 64: a role score reads only the attention pattern) whose layer-0 attention
  pattern is replaced, on whatever text it runs, by the post's table built in (`planted_pattern`);
  `swap` gives a head another head's (or a plain) pattern: the same shape without the role.
- `random_one_layer()`: the same small model, random weights (no role).
- `planted_statistics(...)`: the exact config (hidden 1024: the statistics depend on the width)
  with the attention output / the ln_2 output replaced by tensors that have the published
  statistics; `exact_random()` the exact config with random weights.
"""

from __future__ import annotations

import copy
import functools
import tempfile

import numpy as np
import torch

from mechcheck import models
from mechcheck.core.claim import fmt_item, negative, positive
from mechcheck.core.result import Result
from mechcheck.core.stats import bootstrap_ci
from mechcheck.data import data_dir, gpt2_tokenizer, paragraphs, tinystories_validation
from mechcheck.metrics import activation_stats, head_roles

STAT_TOL = 0.001  # the table has 4 decimals; 1e-3 absorbs rounding and float32/kernel differences
ONE_LAYER = "roneneldan/TinyStories-1Layer-21M"
N_HEADS = 16


# ---------------------------------------------------------------------------------------------
# The shared preparation: every role's per-head score on each input, one pass per text.

def role_run(bridge, prompt: str, n_paragraphs: int, max_tokens: int) -> dict:
    """{input: {role: [n_texts, n_heads]}} over the post's prompt ("prompt"), the first
    `n_paragraphs` TinyStories validation paragraphs with speech ("tinystories", at most
    `max_tokens` tokens each) and those containing "But" ("tinystories_But"); plus the prompt's
    token ids and attention pattern ("prompt_example"), for the report's figure."""
    sample = tinystories_validation(data_dir())
    texts = paragraphs(sample, must_contain='"', limit=n_paragraphs)
    but_texts = paragraphs(sample, must_contain="But", limit=n_paragraphs)
    pattern, str_tokens, ids = head_roles.patterns(bridge, prompt)
    return {
        "prompt": head_roles.role_scores_of([head_roles.HeadText.from_activations(str_tokens, pattern)]),
        "tinystories": head_roles.role_scores(bridge, texts, max_tokens=max_tokens),
        "tinystories_But": head_roles.role_scores(bridge, but_texts, max_tokens=max_tokens),
        "prompt_example": {"pattern": pattern, "tokens": str_tokens, "token_ids": ids},
    }


def role_leaders(roles: dict, source_input: str, role: str, heads: tuple[int, ...]) -> Result:
    """B1 table rows: every head's mean `role` score over the texts of `source_input` (the claim
    checks which heads lead), CIs of the named heads, and on the prompt its token ids and the
    first named head's pattern."""
    scores = roles[source_input][role]  # [n_texts, n_heads]
    value = np.nanmean(scores, axis=0)
    usable = scores[~np.isnan(scores).any(axis=1)]
    details = {"role": role, "input": source_input, "n_texts": int(len(usable))}
    if len(usable) >= 2:
        details["ci_per_head"] = {fmt_item(h): bootstrap_ci(usable[:, h]) for h in heads}
    if source_input == "prompt":
        ex = roles["prompt_example"]
        details["prompt_token_ids"] = ex["token_ids"]
        details["example_pattern"] = {"head": fmt_item(heads[0]), "tokens": ex["tokens"],
                                      "pattern": ex["pattern"][heads[0]].round(3)}
    return Result.of(value=value, n=len(usable), **details)


def _reported(roles: dict, source_input: str, report) -> dict:
    """Related roles' per-head means for the details: a role name (same input) or (input, role)."""
    out = {}
    for other in report:
        where, name = other if isinstance(other, tuple) else (source_input, other)
        key = name if where == source_input else f"{name} ({where})"
        out[key] = np.nanmean(roles[where][name], axis=0)
    return out


def head_score(roles: dict, source_input: str, role: str, heads: tuple[int, ...], minus: tuple[int, ...] = (),
               report: tuple = ()) -> Result:
    """B1 claims on named heads: per text, the weakest named head's `role` score, less the
    strongest of the `minus` heads' (head 14 against the pivot heads 1 and 2); the value is the
    mean over the texts that have the role's tokens, with a bootstrap CI over texts when there
    are at least 2. `report`: related roles whose per-head means go to the details."""
    scores = roles[source_input][role]  # [n_texts, n_heads]
    usable = scores[~np.isnan(scores).any(axis=1)]
    per_text = usable[:, list(heads)].min(axis=1)
    if len(minus):
        per_text = per_text - usable[:, list(minus)].max(axis=1)
    details = {"role": role, "input": source_input, "n_texts": int(len(usable)),
               "per_head": np.nanmean(scores, axis=0) if len(usable) else scores[0],
               **_reported(roles, source_input, report)}
    if len(usable) >= 2:
        details["ci"] = bootstrap_ci(per_text)  # the verdict reads it (issue #11 item 1)
    value = float(per_text.mean()) if len(usable) else float("nan")
    return Result.of(value=value, n=len(usable), **details)


def two_part_score(roles: dict, source_input: str, heads: tuple[int, ...], parts: tuple, report: tuple = ()) -> Result:
    """A statement with two conditions (the suite's two-part rule): per text and named head, the
    smaller margin over `parts`, each (role, ">=" or "<", threshold); then the weakest named head;
    the value is the mean over texts (>= 0: every condition met), CI over texts."""
    margins, names = [], []
    for role, sense, threshold in parts:
        s = roles[source_input][role][:, list(heads)]
        margins.append(s - threshold if sense == ">=" else threshold - s)
        names.append(role)
    stacked = np.stack(margins)  # [part, text, head]
    usable = ~np.isnan(stacked).any(axis=(0, 2))
    per_text = stacked[:, usable].min(axis=(0, 2))
    details = {"parts": [f"{r} {s} {t:g}" for r, s, t in parts], "input": source_input, "n_texts": int(usable.sum()),
               **{f"{r} per head": np.nanmean(roles[source_input][r], axis=0) for r in names},
               **_reported(roles, source_input, report)}
    if len(per_text) >= 2:
        details["ci"] = bootstrap_ci(per_text)
    value = float(per_text.mean()) if len(per_text) else float("nan")
    return Result.of(value=value, n=len(per_text), **details)


# ---------------------------------------------------------------------------------------------
# B2: statistics of the attention output.

def stats_deviation(conventions: dict, which: str, published: dict) -> Result:
    """B2: the largest |measured - published| over the 7 statistics, under the convention that
    reproduces the table best."""
    deviation = {name: activation_stats.max_abs_deviation(c[which], published) for name, c in conventions.items()}
    best = min(deviation, key=deviation.get)
    return Result.of(
        value=deviation[best], best_convention=best,
        reproducing_conventions=[n for n, d in deviation.items() if d <= STAT_TOL],
        deviation_per_convention=deviation,
        stats_per_convention={n: c[which] for n, c in conventions.items()},
        token_ids={n: c["token_ids"] for n, c in conventions.items()},
    )


# ---------------------------------------------------------------------------------------------
# Control models.

def planted_pattern(str_tokens: list[str], n_heads: int = N_HEADS, swap: tuple = ()) -> np.ndarray:
    """Attention [head, q, k] of a one-layer model with the roles of the post's table and
    discussion built in, from the string tokens (BOS first). Heads without a role attend
    uniformly. `swap`: (head, source) pairs that give `head` another pattern instead: a head
    number (that head's planted pattern), "uniform", or "pivot" (the latest structural pivot,
    without head 1/2's 'but' exception)."""
    n = len(str_tokens)
    causal = np.tril(np.ones((n, n)))
    uniform = causal / causal.sum(1, keepdims=True)
    pat = np.repeat(uniform[None], n_heads, axis=0)
    eye, prev = np.eye(n), np.eye(n, k=-1)
    prev[0, 0] = 1.0
    word = [t.strip() for t in str_tokens]
    tc = head_roles.classify(str_tokens, has_bos=True)
    quotes = sorted(tc.opening + tc.closing)
    inside_of = {q: o for q, o in tc.opening_of.items() if q not in set(tc.closing)}  # in-speech query -> its mark
    names = tc.proper_nouns
    openers = head_roles.clause_openers(tc)
    first_closing = tc.closing[0] if tc.closing else None

    def point(h, q, keys, weights=None):
        pat[h, q] = 0.0
        pat[h, q, keys] = weights if weights is not None else 1.0 / len(keys)

    pivot = np.zeros((n, n))
    for q in range(n):
        pivot[q, ([p for p in tc.pivots if p < q] or [0])[-1]] = 1.0
    pat[8], pat[6], pat[4] = eye, prev, 0.7 * eye + 0.3 * prev
    for c in tc.closing:  # head 6: a closing mark attends to its opening mark
        point(6, c, [tc.opening_of[c]])
    for h, extra in ((1, "but"), (2, "a")):  # head 1 also pivots on 'but', head 2 on 'a'
        pivots = [0] + [i for i, t in enumerate(word) if i and ("," in t or "." in t or t.lower() == extra)]
        for q in range(n):
            point(h, q, [q] if word[q] == "but" else [([p for p in pivots if p < q] or [0])[-1]])
    for q in range(1, n):
        start = head_roles.clause_start(tc, q, openers)
        span = head_roles.clause_span(tc, q, openers)
        # head 5: the start of the clause (BOS up to the prompt's ':', the opening mark in speech, the
        # conjunction of a junction); after the first closing mark that mark also gets 0.35 of it
        start = start if start is not None else 0
        if first_closing is not None and q > first_closing and start != first_closing:
            point(5, q, [start, first_closing], [0.65, 0.35])
        else:
            point(5, q, [start])
        point(11, q, [inside_of[q]] if q in inside_of else [start])
        if q not in inside_of:  # head 15: the start of a clause outside speech (inside, uniform)
            point(15, q, [start])
        point(10, q, span or [0])
        point(12, q, [q - 1] if q % 3 == 0 or q == 2 else [q - 2])
        marks = [k for k in quotes if k < q]
        if marks:
            point(0, q, marks + [q], [0.4 / len(marks)] * len(marks) + [0.6])
        if q in quotes:
            point(14, q, [k for k in names if k < q] or [0])
        if q in names:
            point(9, q, [k for k in names if k <= q])
        if word[q] == "Tom" and "asks" in word[:q] and "Tom" not in word[:q]:
            point(14, q, [word.index("asks")])
        if word[q] == "find" and "banana" in word[:q]:
            point(14, q, [word.index("banana")])
        if word[q] == "banana" and "looking" in word[:q] and "for" in word[:q]:
            point(12, q, [word.index("looking"), word.index("for")])
        if word[q] == "I" and "but" in word[:q] and q - 1 == word.index("but"):
            point(0, q, [q - 1, q], [0.7, 0.3])
    planted = pat.copy()
    for head, source in swap:
        pat[head] = {"uniform": uniform, "pivot": pivot}[source] if isinstance(source, str) else planted[source]
    return pat


_SCRATCH: list = []  # the control checkpoints' folders, removed when the process ends


def _scratch_dir(prefix: str) -> str:
    """A temporary folder that lives as long as this process (TemporaryDirectory removes it at
    exit): each process wrote 13 MB per control checkpoint to /tmp and left it there."""
    _SCRATCH.append(tempfile.TemporaryDirectory(prefix=prefix))
    return _SCRATCH[-1].name


@functools.lru_cache(maxsize=None)
def _small_checkpoint(seed: int) -> str:
    """A random one-layer GPT-Neo with TinyStories-1Layer-21M's config at hidden 64, on disk."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    cfg = {k: v for k, v in models.spec(ONE_LAYER).hf_config.items() if k != "model_type"}
    torch.manual_seed(seed)
    path = _scratch_dir("mechcheck-one-layer-")
    GPTNeoForCausalLM(GPTNeoConfig(**cfg | {"hidden_size": 64})).save_pretrained(path)
    return path


@functools.lru_cache(maxsize=None)
def _booted(path: str):
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(path, device="cpu", tokenizer=gpt2_tokenizer(data_dir()))


def _boot(path: str):
    """A bridge of the checkpoint at `path`, a copy of one booted once: every control model of the
    blog claims starts from the same random one-layer model, and booting a bridge costs ~1.2 s
    after the first (TransformerLens' adapter set-up) where a deep copy costs ~0.35 s. A copy,
    so the hooks one control plants never reach another."""
    return copy.deepcopy(_booted(path))


def random_one_layer(seed: int = 0):
    """The small one-layer model with random weights: no role built in."""
    return _boot(_small_checkpoint(seed))


def _input_ids(bridge) -> dict:
    """The token ids of the forward pass in flight (read by a planted hook), from a pre-hook on
    the embedding: a hook on the pattern sees activations only."""
    seen = {}
    bridge.embed.register_forward_pre_hook(lambda module, args, kwargs: seen.update(ids=args[0] if args else
                                                                                     kwargs["input_ids"]),
                                           with_kwargs=True)
    return seen


def planted(swap: tuple = (), seed: int = 0):
    """The small one-layer model whose layer-0 attention pattern is `planted_pattern` of the text
    it reads (each sequence of the batch its own); `swap` as in planted_pattern."""
    bridge = random_one_layer(seed)
    seen = _input_ids(bridge)
    decode = bridge.tokenizer.decode

    def plant(act, hook):
        rows = [planted_pattern([decode([t]) for t in ids.tolist()], act.shape[1], swap) for ids in seen["ids"]]
        return torch.tensor(np.stack(rows), dtype=act.dtype, device=act.device)

    bridge.add_hook("blocks.0.attn.hook_pattern", plant)
    return bridge


@functools.lru_cache(maxsize=None)
def _exact_checkpoint(seed: int) -> str:
    return str(models.save_random(ONE_LAYER, _scratch_dir("mechcheck-one-layer-exact-"), seed=seed))


def exact_random(seed: int = 0):
    """TinyStories-1Layer-21M's exact config with random weights (no statistics built in)."""
    return _boot(_exact_checkpoint(seed))


@functools.lru_cache(maxsize=None)
def _with_statistics(stats: tuple, n: int, seed: int):
    return activation_stats.with_statistics(dict(stats), n, seed=seed)


def planted_statistics(attn_out: dict, after_ln: dict, seed: int = 0):
    """The exact config whose layer-0 attention output and ln_2 output are replaced, on any text,
    by tensors with the statistics `attn_out` and `after_ln` (activation_stats.with_statistics):
    a model that produces the table (under the BOS, raw-weights convention)."""
    bridge = exact_random(seed)
    for hook_name, stats in ((activation_stats.ATTN_OUT, attn_out), (activation_stats.AFTER_LN, after_ln)):
        def plant(act, hook, stats=tuple(sorted(stats.items()))):
            x = _with_statistics(stats, act[0].numel(), seed)
            return torch.tensor(x, dtype=act.dtype, device=act.device).reshape(act[0].shape).expand_as(act).clone()
        bridge.add_hook(hook_name, plant)
    return bridge


PLANTED = positive("planted roles", planted, "a one-layer GPT-Neo (16 heads, hidden 64) with the post's head "
                   "roles planted as its attention pattern, on the claim's own texts")
RANDOM = negative("random weights", random_one_layer, "the same one-layer GPT-Neo with random weights")


def swapped(heads, source, why: str):
    """A negative control: the planted model with `heads` (one or a tuple) given `source`'s pattern
    (a head number, "uniform" or "pivot")."""
    heads = heads if isinstance(heads, tuple) else (heads,)
    label = f"head {source}" if isinstance(source, int) else source
    names = "+".join(f"H{h}" for h in heads)
    return negative(f"{names} := {label}", functools.partial(planted, tuple((h, source) for h in heads)),
                    f"the planted model with {names} given the {label} pattern ({why})")
