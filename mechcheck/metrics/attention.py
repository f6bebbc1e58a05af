"""Attention paid from query positions to key positions, read off hook_pattern (the toy's
reversal routing; IOI attention from END to IO / S1 / S2)."""

from __future__ import annotations

import torch


def pattern_at(pattern: torch.Tensor, head: int, queries, keys) -> torch.Tensor:
    """pattern [batch, head, q, k] -> attention of `head` from queries[i] to keys[i], [batch, n]."""
    q = torch.as_tensor(queries)
    k = torch.as_tensor(keys)
    return pattern[:, head, q, k]


def from_end(cache, prompts, layer: int, head: int) -> dict[str, torch.Tensor]:
    """Attention of head (layer, head) from END to IO, S1 and S2, per prompt."""
    p = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]  # [n, q, k]
    n = torch.arange(len(prompts), device=p.device)
    row = p[n, prompts.pos_end]
    return {"IO": row[n, prompts.pos_io], "S1": row[n, prompts.pos_s1], "S2": row[n, prompts.pos_s2]}
