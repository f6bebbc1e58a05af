"""Logit difference (IO - S) at END (thesis §3.4.1): from logits, or from the final residual
stream reading only the IO and S columns of the unembedding. Its decomposition into the residual
stream and the heads is mechcheck.metrics.dla."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Contrast:
    """Clean prompts, their corrupted counterparts and the two answers compared at END: what the
    logit difference, DLA and every patching measurement read (the IOI prompt set is one; build
    your own for any other task). All tensors on the model's device."""

    tokens: torch.Tensor  # [n, seq]
    corrupted: torch.Tensor  # [n, seq], the same length
    io: torch.Tensor  # [n] the correct answer's token id (IO)
    s: torch.Tensor  # [n] the contrasted answer's token id (S)
    pos_end: torch.Tensor  # [n] the position that predicts the answer (END)

    def __len__(self) -> int:
        return self.tokens.shape[0]


@torch.no_grad()
def logit_diff(logits: torch.Tensor, prompts) -> torch.Tensor:
    """Per prompt: logit(IO) - logit(S) at END. logits [n, seq, vocab] or END logits [n, vocab]."""
    n = torch.arange(len(prompts), device=logits.device)
    end = logits[n, prompts.pos_end] if logits.dim() == 3 else logits
    return end[n, prompts.io] - end[n, prompts.s]


@torch.no_grad()
def end_logits(bridge, final_resid: torch.Tensor, prompts) -> torch.Tensor:
    """Full-vocabulary logits at END only, [n, vocab], from the residual entering ln_final."""
    return bridge.unembed(bridge.ln_final(_at_end(final_resid, prompts)))


@torch.no_grad()
def logit_diff_from_resid(bridge, resid: torch.Tensor, prompts) -> torch.Tensor:
    """Per prompt logit difference from the final residual stream [n, seq, d_model]
    (mechcheck.metrics.activations.final_residual): ln_final, then only the IO and S columns of the unembedding.

    Why: a patching sweep needs two logits per prompt; the full-vocabulary unembedding (50257
    columns) is most of the cost of each forward pass of these small models."""
    final = bridge.ln_final(_at_end(resid, prompts))  # [n, d_model]
    b_U = bridge.b_U
    return (final * _direction(bridge, prompts)).sum(-1) + b_U[prompts.io] - b_U[prompts.s]


def _direction(bridge, prompts) -> torch.Tensor:
    W_U = bridge.W_U  # [d_model, vocab]
    return (W_U[:, prompts.io] - W_U[:, prompts.s]).T  # [n, d_model]


def _at_end(x: torch.Tensor, prompts) -> torch.Tensor:
    return x[torch.arange(len(prompts), device=x.device), prompts.pos_end]
