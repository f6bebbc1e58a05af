"""Previous-token, duplicate-token and induction scores per head on random tokens (thesis §3.3,
after Wang et al. 2022).

Why not TL's head_detector.detect_head: it divides the attention on the detection pattern by
the attention of *every* query row, including the first-half rows of a repeated sequence where
no previous instance exists, so a perfect induction head scores ~0.5, and it takes one sequence
per forward pass. The thesis' score is "the fraction of attention weight" on the target position
over the queries that have one; we compute exactly that, batched, from one cache.
"""

from __future__ import annotations

import torch

from mechcheck.metrics.activations import cached

SCORES = ("previous_token", "duplicate_token", "induction")


def repeated_random_tokens(batch: int, half: int, d_vocab: int, bos: int | None, seed: int = 0,
                           vocab: torch.Tensor | None = None) -> torch.Tensor:
    """[BOS?] r r with r uniform over the vocabulary, or over the token ids `vocab` when given
    (seeded): [batch, (1) + 2*half]."""
    gen = torch.Generator().manual_seed(seed)
    if vocab is None:
        r = torch.randint(0, d_vocab, (batch, half), generator=gen)
    else:
        r = vocab[torch.randint(0, len(vocab), (batch, half), generator=gen)]
    parts = [r, r] if bos is None else [torch.full((batch, 1), bos), r, r]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def patterns(bridge, tokens: torch.Tensor) -> torch.Tensor:
    """Attention patterns of every layer: [n_layers, batch, n_heads, q, k] (no logits computed)."""
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(bridge.cfg.n_layers)]
    cache = cached(bridge, tokens, names)
    return torch.stack([cache[n] for n in names])


def scores(pattern: torch.Tensor, half: int, offset: int) -> dict[str, torch.Tensor]:
    """{score: [n_layers, batch, n_heads]} per sequence (average over the batch axis for the
    score; the spread over sequences gives its CI), from patterns of `repeated_random_tokens`
    (offset = 1 with BOS).

    previous_token: first-half queries (random, unrepeated tokens) on position q-1;
    duplicate_token: second-half queries on the previous instance of their token, q-half;
    induction: second-half queries on the token after that instance, q-half+1."""
    first = torch.arange(offset + 1, offset + half, device=pattern.device)
    second = torch.arange(offset + half, offset + 2 * half, device=pattern.device)
    induct = second[:-1]
    p = pattern.float()
    return {
        "previous_token": p[..., first, first - 1].mean(-1),
        "duplicate_token": p[..., second, second - half].mean(-1),
        "induction": p[..., induct, induct - half + 1].mean(-1),
    }


def head_scores(bridge, batch: int = 16, half: int = 50, seed: int = 0,
                vocab: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All three scores for a model, on one batch of repeated random sequences (tokens drawn
    from `vocab` when given, e.g. `corpus_vocab` of the training distribution)."""
    bos = getattr(bridge.tokenizer, "bos_token_id", None) if getattr(bridge, "tokenizer", None) else None
    tokens = repeated_random_tokens(batch, half, bridge.cfg.d_vocab, bos, seed, vocab).to(bridge.cfg.device)
    return scores(patterns(bridge, tokens), half, offset=0 if bos is None else 1)


def corpus_vocab(tokenizer, text: str, exclude=()) -> torch.Tensor:
    """The sorted token ids that occur in `text` (minus `exclude`, e.g. BOS).

    Why: most of GPT-2's 50,257 tokens never occur in TinyStories, so a TinyStories model's
    embeddings of them are untrained; a head that would recognise a repeated in-distribution
    token can look inert on uniformly random tokens. Repeating tokens from this set measures
    the heads on inputs the model was trained on."""
    ids = set(tokenizer(text)["input_ids"]) - set(exclude)
    return torch.tensor(sorted(ids), dtype=torch.long)
