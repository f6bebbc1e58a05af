"""Next-token accuracy on the positions a task scores, and the probability of the correct IOI name."""

from __future__ import annotations

import torch


def per_sequence_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions per sequence: logits [b, n, vocab], targets [b, n].

    Per sequence (not pooled) so a bootstrap over sequences gives the CI."""
    return (logits.argmax(-1) == targets).float().mean(-1)


@torch.no_grad()
def correct_probability(logits: torch.Tensor, prompts) -> torch.Tensor:
    """Per prompt: softmax probability of IO at END (thesis §3.5.1: 77.3%); logits [n, seq, vocab] or
    END logits [n, vocab]."""
    n = torch.arange(len(prompts), device=logits.device)
    end = logits[n, prompts.pos_end] if logits.dim() == 3 else logits
    return end.softmax(-1)[n, prompts.io]
