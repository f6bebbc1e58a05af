"""Zero-ablation of a component's output weights, done with hooks.

Why hooks: zeroing W_O is the same as zeroing the head outputs z that W_O reads (the attention
output becomes b_O), and zeroing MLP W_out the same as zeroing the hidden activations it reads
(the MLP output becomes b_out). Hooks give that without mutating weights, so an interrupted
ablation can never leave a damaged model behind, and they work on any TransformerBridge.
"""

from __future__ import annotations

import torch

from mechcheck.metrics.activations import require_hooks

# component -> the hook whose zeroing equals zeroing that weight
COMPONENT_HOOKS = {
    "attn.W_O": "blocks.{layer}.attn.hook_z",
    "mlp.W_out": "blocks.{layer}.mlp.hook_post",
}


def zero_hook(component: str, layer: int, index: int | None = None):
    """(hook name, hook fn) zeroing `component` of `layer`; `index` zeroes one unit only
    (a head of hook_z, a neuron of hook_post)."""
    if component not in COMPONENT_HOOKS:
        raise ValueError(f"unknown component {component!r}; one of {sorted(COMPONENT_HOOKS)}")
    name = COMPONENT_HOOKS[component].format(layer=layer)

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        act = act.clone()
        if index is None:
            act.zero_()
        elif component == "attn.W_O" and act.dim() == 4:
            act[:, :, index] = 0.0  # [batch, pos, head, d_head]
        else:
            act[..., index] = 0.0
        return act

    return name, hook


@torch.no_grad()
def logits_with(bridge, tokens: torch.Tensor, fwd_hooks=()) -> torch.Tensor:
    """Logits [batch, pos, vocab] of a run with `fwd_hooks` (e.g. zero_hook's ablation) in place."""
    if fwd_hooks:
        require_hooks(bridge, [name for name, _ in fwd_hooks])
        return bridge.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))
    return bridge(tokens)
