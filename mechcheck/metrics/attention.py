"""Attention paid from query positions to key positions, read off hook_pattern."""

from __future__ import annotations

import torch


def pattern_at(pattern: torch.Tensor, head: int, queries, keys) -> torch.Tensor:
    """pattern [batch, head, q, k] -> attention of `head` from queries[i] to keys[i], [batch, n]."""
    q = torch.as_tensor(queries)
    k = torch.as_tensor(keys)
    return pattern[:, head, q, k]
