"""Direct logit attribution on the IOI logit difference (thesis §3.4.2, figs 3.7-3.10): the
logit-lens curve through the residual stream and every head's direct effect.

Both read the residual stream through the final LayerNorm the way TransformerLens does for a
compatibility-mode model (folded LayerNorm, or an organism with parameter-free LNPre): centre,
then divide by the final LayerNorm scale of the actual run at END, then project on
W_U[:, IO] - W_U[:, S]. With that, the last point of the curve plus b_U[IO] - b_U[S] is exactly
the model's logit difference (tested)."""

from __future__ import annotations

import torch

from mechcheck.metrics.logit_diff import _at_end, _direction


def final_scale(bridge, cache, prompts) -> torch.Tensor:
    """The final LayerNorm's scale at END of the actual run, [n, 1] (from the residual entering
    ln_final, cache["final_resid"] of mechcheck.activations.cached)."""
    x = _at_end(cache["final_resid"], prompts)
    x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + bridge.cfg.eps).sqrt()


def _read(bridge, cache, prompts, resid_end: torch.Tensor) -> torch.Tensor:
    """Project END residual vectors [..., n, d_model] onto the logit-difference direction."""
    scale = final_scale(bridge, cache, prompts)  # [n, 1]
    centred = resid_end - resid_end.mean(-1, keepdim=True)
    return ((centred / scale) * _direction(bridge, prompts)).sum(-1)


@torch.no_grad()
def accumulated(bridge, cache, prompts) -> tuple[torch.Tensor, list[str]]:
    """Logit difference read off the residual stream after the embedding and after every attention
    and MLP layer: ([n_points, n], labels). Labels follow the thesis' ticks: layer L's attention
    is L, its MLP L.5."""
    points, labels = [_at_end(cache["blocks.0.hook_resid_pre"], prompts)], ["embed"]
    for layer in range(bridge.cfg.n_layers):
        mid = f"blocks.{layer}.hook_resid_mid"
        if mid in cache:  # attention-only models: the residual after attention is resid_post
            points.append(_at_end(cache[mid], prompts))
            labels.append(f"{layer}")
        points.append(_at_end(cache[f"blocks.{layer}.hook_resid_post"], prompts))
        labels.append(f"{layer}.5" if mid in cache else f"{layer}")
    return _read(bridge, cache, prompts, torch.stack(points)), labels


@torch.no_grad()
def head_dla(bridge, cache, prompts) -> torch.Tensor:
    """Direct logit attribution of every head: [n_layers, n_heads, n] (its output at END, through
    the final LayerNorm scale, on IO - S)."""
    rows = []
    for layer in range(bridge.cfg.n_layers):
        z = _at_end(cache[f"blocks.{layer}.attn.hook_z"], prompts)  # [n, head, d_head]
        out = torch.einsum("nhe,hed->hnd", z, bridge.W_O[layer])  # [head, n, d_model]
        rows.append(_read(bridge, cache, prompts, out))
    return torch.stack(rows)
