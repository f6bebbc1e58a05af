"""Logit difference (IO - S) at END, its logit-lens curve through the residual stream, and the
direct logit attribution of every head (thesis §3.4.1-3.4.2, figs 3.7-3.10).

All three read the residual stream through the final LayerNorm the way TransformerLens does for
a compatibility-mode model (folded LayerNorm, or an organism with parameter-free LNPre): centre,
then divide by the final LayerNorm scale of the actual run at END, then project on
W_U[:, IO] - W_U[:, S]. With that, the last point of
the curve plus b_U[IO] - b_U[S] is exactly the model's logit difference (tested)."""

from __future__ import annotations

import torch


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
    (path_patching.final_residual): ln_final, then only the IO and S columns of the unembedding.

    Why: a patching sweep needs two logits per prompt; the full-vocabulary unembedding (50257
    columns) is most of the cost of each forward pass of these small models."""
    final = bridge.ln_final(_at_end(resid, prompts))  # [n, d_model]
    b_U = bridge.b_U
    return (final * _direction(bridge, prompts)).sum(-1) + b_U[prompts.io] - b_U[prompts.s]


@torch.no_grad()
def correct_probability(logits: torch.Tensor, prompts) -> torch.Tensor:
    """Per prompt: softmax probability of IO at END (thesis §3.5.1: 77.3%); logits as logit_diff."""
    n = torch.arange(len(prompts), device=logits.device)
    end = logits[n, prompts.pos_end] if logits.dim() == 3 else logits
    return end.softmax(-1)[n, prompts.io]


def _direction(bridge, prompts) -> torch.Tensor:
    W_U = bridge.W_U  # [d_model, vocab]
    return (W_U[:, prompts.io] - W_U[:, prompts.s]).T  # [n, d_model]


def _at_end(x: torch.Tensor, prompts) -> torch.Tensor:
    return x[torch.arange(len(prompts), device=x.device), prompts.pos_end]


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


def attention_from_end(cache, prompts, layer: int, head: int) -> dict[str, torch.Tensor]:
    """Attention of head (layer, head) from END to IO, S1 and S2, per prompt."""
    p = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]  # [n, q, k]
    n = torch.arange(len(prompts), device=p.device)
    row = p[n, prompts.pos_end]
    return {"IO": row[n, prompts.pos_io], "S1": row[n, prompts.pos_s1], "S2": row[n, prompts.pos_s2]}
