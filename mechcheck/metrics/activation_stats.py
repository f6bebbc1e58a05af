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


ATTN_OUT = "blocks.0.hook_attn_out"
RESID_MID = "blocks.0.hook_resid_mid"
AFTER_LN = "blocks.0.ln2.hook_out"  # the block's ln_2 output with its affine weights (raw HF)


def attention_output_conventions(bridge, text: str) -> dict[str, dict]:
    """Statistics of layer 0's attention output, and of (attention output + residual) after
    LayerNorm, under each (BOS, processing) convention, from one forward pass each. `bridge` must
    hold raw HF weights (not compatibility mode)."""
    out = {}
    for bos in (True, False):
        tokens = bridge.to_tokens(text, prepend_bos=bos)
        cache = cached(bridge, tokens, (ATTN_OUT, RESID_MID, AFTER_LN))
        attn_out, resid_mid, after_raw = cache[ATTN_OUT][0], cache[RESID_MID][0], cache[AFTER_LN][0]
        tag = "BOS" if bos else "no BOS"
        out[f"{tag}, raw HF weights"] = {
            "token_ids": tokens[0].tolist(),
            "attn_out": describe(attn_out), "after_ln": describe(after_raw)}
        out[f"{tag}, TL-processed weights"] = {
            "token_ids": tokens[0].tolist(),
            "attn_out": describe(centred(attn_out)), "after_ln": describe(normalised(resid_mid))}
    return out


def with_statistics(stats: dict[str, float], n: int, seed: int = 0):
    """`n` numbers (numpy, shuffled with `seed`) whose seven statistics (`describe`) are `stats`
    to 1e-6: the minimum and the maximum once each, the quartiles held exactly by two equal
    neighbours at each quartile position, and a piecewise-linear body between them whose four
    tail knots are solved (scipy least squares) so that the mean and std come out right.

    Why: a positive control of a reproduced statistics table is a model that produces exactly
    that table (mechcheck.studies.one_layer_heads.planted_statistics)."""
    import numpy as np
    from scipy.optimize import least_squares

    if n < 16:
        raise ValueError(f"with_statistics needs at least 16 numbers, got {n}")
    qpos = [q * (n - 1) for q in (0.25, 0.5, 0.75)]
    qval = [stats["q25"], stats["median"], stats["q75"]]
    fixed = {0: stats["min"], n - 1: stats["max"]}
    for p, v in zip(qpos, qval):
        fixed[int(np.floor(p))] = v
        fixed[int(np.ceil(p))] = v
    lo_knots = [1, max(2, n // 50)]
    hi_knots = [min(n - 3, n - 1 - n // 50), n - 2]

    def build(free):
        knots = dict(fixed)
        knots.update({lo_knots[0]: free[0], lo_knots[1]: free[1], hi_knots[0]: free[2], hi_knots[1]: free[3]})
        idx = np.array(sorted(knots))
        body = np.interp(np.arange(n), idx, [knots[i] for i in idx])
        for i, v in fixed.items():
            body[i] = v
        return body

    def residual(free):
        x = build(free)
        return [x.mean() - stats["mean"], x.std(ddof=1) - stats["std"]]

    lo = (stats["min"], stats["q25"])
    hi = (stats["q75"], stats["max"])
    start = [stats["q25"] - 0.5 * (stats["q75"] - stats["q25"])] * 2 + [stats["q75"] + 0.5 * (stats["q75"] - stats["q25"])] * 2
    fit = least_squares(residual, start, bounds=([lo[0], lo[0], hi[0], hi[0]], [lo[1], lo[1], hi[1], hi[1]]),
                        xtol=1e-14, ftol=1e-14, gtol=1e-14)
    x = build(fit.x)
    got = describe(torch.tensor(x))
    if max_abs_deviation(got, stats) > 1e-6:
        raise ValueError(f"no {n} numbers with these statistics in this family (off by {max_abs_deviation(got, stats):.2g})")
    return np.random.default_rng(seed).permutation(x)
