"""Direct logit attribution on the IOI logit difference (thesis §3.4.2, figs 3.7-3.10): the
logit-lens curve through the residual stream and every head's direct effect.

Both are TransformerLens' own: ActivationCache.accumulated_resid / stack_head_results, read by
logit_attrs on W_U[:, IO] - W_U[:, S] through the final LayerNorm's cached scale at END (centre,
divide). That is exact for a processed bridge (compatibility mode: ln_final folded into W_U, or
an organism with parameter-free LNPre); with it the last point of the curve plus
b_U[IO] - b_U[S] is the model's logit difference (tested)."""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache

from mechcheck.metrics.logit_diff import _at_end


def _at_end_cache(bridge, cache, prompts) -> ActivationCache:
    """The cache at END only, keeping a position axis of length 1 (END differs per prompt, so TL's
    pos_slice cannot select it)."""
    return ActivationCache({k: _at_end(v, prompts)[:, None] for k, v in cache.items()
                            if not k.endswith(("hook_pattern", "hook_attn_scores"))}, bridge)  # [n, head, q, k]


def _ld_attrs(end: ActivationCache, stack: torch.Tensor, prompts) -> torch.Tensor:
    """[components, n]: each component's share of logit(IO) - logit(S) at END."""
    return end.logit_attrs(stack, tokens=prompts.io, incorrect_tokens=prompts.s)[..., 0]


@torch.no_grad()
def accumulated(bridge, cache, prompts) -> tuple[torch.Tensor, list[str]]:
    """Logit difference read off the residual stream after the embedding and after every attention
    and MLP layer: ([n_points, n], labels). Labels follow the thesis' ticks: layer L's attention
    is L, its MLP L.5 (attention-only models: L)."""
    end = _at_end_cache(bridge, cache, prompts)
    with_mid = "blocks.0.hook_resid_mid" in cache.keys()
    stack = end.accumulated_resid(incl_mid=with_mid)
    labels = ["embed"]
    for layer in range(bridge.cfg.n_layers):
        labels += [f"{layer}", f"{layer}.5"] if with_mid else [f"{layer}"]
    return _ld_attrs(end, stack, prompts), labels


@torch.no_grad()
def head_dla(bridge, cache, prompts) -> torch.Tensor:
    """Direct logit attribution of every head: [n_layers, n_heads, n] (its output at END, through
    the final LayerNorm scale, on IO - S)."""
    end = _at_end_cache(bridge, cache, prompts)
    attrs = _ld_attrs(end, end.stack_head_results(), prompts)  # [L * H, n]
    return attrs.reshape(bridge.cfg.n_layers, bridge.cfg.n_heads, -1)
