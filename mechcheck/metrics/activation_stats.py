"""Summary statistics of an activation tensor (the one-layer post's table: mean, std, max, min,
quartiles), and the conventions under which a published table can be reproduced.

Why conventions: the post used TransformerLens, whose default loading centres the weights that
write to the residual stream and folds LayerNorm weights; the raw HF weights give other numbers.
We compute every statistic under each (BOS or not) x (raw HF / TL-processed) convention from one
raw forward pass, since TL's processing is an exact transformation of it:
- TL centring of W_O and b_O makes attn_out centred across d_model at each position;
- "residual + LayerNorm" is the block's ln_2 with its affine weights (raw), or the plain
  normalisation (TL folds the affine weights into the MLP).
"""

from __future__ import annotations

import torch

from mechcheck.metrics.activations import cached

STATS = ("mean", "std", "max", "min", "q25", "median", "q75")


def describe(x: torch.Tensor) -> dict[str, float]:
    """The seven statistics over all entries of x (std with Bessel's correction, like pandas)."""
    x = x.detach().double().flatten().cpu()
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=torch.double))
    return {"mean": x.mean().item(), "std": x.std().item(), "max": x.max().item(), "min": x.min().item(),
            "q25": q[0].item(), "median": q[1].item(), "q75": q[2].item()}


def max_abs_deviation(measured: dict[str, float], published: dict[str, float]) -> float:
    return max(abs(measured[k] - published[k]) for k in STATS)


def centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def normalised(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = centred(x)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def attention_output_conventions(bridge, text: str, layer: int = 0) -> dict[str, dict]:
    """Statistics of layer `layer`'s attention output, and of (attention output + residual)
    after LayerNorm, under each (BOS, processing) convention. `bridge` must hold raw HF weights
    (not compatibility mode)."""
    out = {}
    ln2 = bridge.blocks[layer].ln2
    for bos in (True, False):
        tokens = bridge.to_tokens(text, prepend_bos=bos)
        names = (f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_resid_mid")
        cache = cached(bridge, tokens, names)
        attn_out, resid_mid = cache[names[0]][0], cache[names[1]][0]
        with torch.no_grad():
            after_raw = ln2(resid_mid)
        tag = "BOS" if bos else "no BOS"
        out[f"{tag}, raw HF weights"] = {
            "token_ids": tokens[0].tolist(),
            "attn_out": describe(attn_out), "after_ln": describe(after_raw)}
        out[f"{tag}, TL-processed weights"] = {
            "token_ids": tokens[0].tolist(),
            "attn_out": describe(centred(attn_out)), "after_ln": describe(normalised(resid_mid))}
    return out
