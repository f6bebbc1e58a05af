"""Next-token accuracy on the positions a task scores."""

from __future__ import annotations

import torch


def per_sequence_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions per sequence: logits [b, n, vocab], targets [b, n].

    Per sequence (not pooled) so a bootstrap over sequences gives the CI."""
    return (logits.argmax(-1) == targets).float().mean(-1)
