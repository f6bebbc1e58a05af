"""Logit lens: read a residual-stream vector with the model's own unembedding.

Why the final LayerNorm: the model reads its last residual stream through ln_final; the
tutorial projects with W_U alone. We apply ln_final (the faithful readout) and keep the
tutorial's raw projection as a detail in the report."""

from __future__ import annotations

import torch


@torch.no_grad()
def lens_logits(bridge, resid: torch.Tensor) -> torch.Tensor:
    """Logit-lens logits [..., vocab] of a residual-stream vector: the model's final LayerNorm, then its unembedding."""
    return bridge.unembed(bridge.ln_final(resid))


@torch.no_grad()
def raw_logits(bridge, resid: torch.Tensor) -> torch.Tensor:
    """The tutorial's `resid @ W_U` (no LayerNorm, no bias)."""
    return resid @ bridge.W_U
