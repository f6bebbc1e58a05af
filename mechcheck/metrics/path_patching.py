"""Path patching of one edge: a sender head's output into one receiver head's query or value
input only (Wang et al. 2022; the thesis' edge attribution of §3.4.2, done exactly).

Why our own: TL's get_act_patch_direct_path (which works on GPT-2 and is this function's oracle
there, tests/test_patch_oracle.py) and get_act_patch_attn_head_out_all_pos compute full logits per
patched run, where we stop at the final residual stream and read two columns
(logit_diff_from_resid), several times faster on these vocab-dominated models; and it needs only
hook_resid_pre and hook_q / hook_v, so it runs on the GPT-Neo (TinyStories) bridges too. In
compatibility mode a head's q (or v) is exactly ln1(resid_pre) @ W_Q + b_Q (tested), so we recompute the receiver's q/v from
resid_pre + (sender clean write - sender corrupted write) and leave every other reader on the
corrupted run: the corrupt-to-clean intervention on that edge alone.
"""

from __future__ import annotations

import torch

from mechcheck.activations import final_residual


@torch.no_grad()
def sender_delta(bridge, clean_cache, corrupted_cache, layer: int, head: int) -> torch.Tensor:
    """Clean minus corrupted write of head (layer, head) into the residual stream: [n, pos, d_model]."""
    z = f"blocks.{layer}.attn.hook_z"
    W_O = bridge.W_O[layer, head]
    return (clean_cache[z][:, :, head] - corrupted_cache[z][:, :, head]) @ W_O


@torch.no_grad()
def patch_edge(bridge, corrupted_tokens, delta, receiver: tuple[int, int], component: str) -> torch.Tensor:
    """Final residual stream of the corrupted run with `delta` added to
    the `component` ("q" or "v") input of the receiver head only."""
    if component not in ("q", "v"):
        raise ValueError(f"component must be 'q' or 'v', not {component!r}")
    layer, head = receiver
    W = (bridge.W_Q if component == "q" else bridge.W_V)[layer, head]
    b = (bridge.b_Q if component == "q" else bridge.b_V)[layer, head]
    ln1 = bridge.blocks[layer].ln1
    store = {}

    def keep_resid(act, hook):
        store["resid"] = act

    def patch(act, hook):
        act = act.clone()
        act[:, :, head] = ln1(store["resid"] + delta) @ W + b
        return act

    return final_residual(bridge, corrupted_tokens, [
        (f"blocks.{layer}.hook_resid_pre", keep_resid), (f"blocks.{layer}.attn.hook_{component}", patch)])


@torch.no_grad()
def patch_head_output(bridge, corrupted_tokens, clean_cache, layer: int, head: int) -> torch.Tensor:
    """Final residual stream of the corrupted run with head (layer, head)'s output (hook_z, all
    positions) taken from the clean run: corrupt-to-clean head patching (thesis fig 3.13)."""
    name = f"blocks.{layer}.attn.hook_z"

    def patch(act, hook):
        act = act.clone()
        act[:, :, head] = clean_cache[name][:, :, head]
        return act

    return final_residual(bridge, corrupted_tokens, [(name, patch)])


@torch.no_grad()
def head_output_scores(bridge, prompts, clean_cache, metric) -> torch.Tensor:
    """Per-prompt metric with each head's output patched: [n_layers, n_heads, n]."""
    out = torch.zeros(bridge.cfg.n_layers, bridge.cfg.n_heads, len(prompts))
    for layer in range(bridge.cfg.n_layers):
        for head in range(bridge.cfg.n_heads):
            out[layer, head] = metric(patch_head_output(bridge, prompts.corrupted, clean_cache, layer, head)).cpu()
    return out


@torch.no_grad()
def edge_scores(bridge, prompts, clean_cache, corrupted_cache, receiver, component, metric, clean, corrupt):
    """Normalised recovery (metric - corrupt) / (clean - corrupt) of every sender head in the layers
    before the receiver: per prompt, [receiver_layer, n_heads, n] (clean and corrupt are the
    prompt-set means, so the mean over prompts is the recovery of the mean metric)."""
    layer, _ = receiver
    out = torch.zeros(layer, bridge.cfg.n_heads, len(prompts))
    for sl in range(layer):
        for sh in range(bridge.cfg.n_heads):
            delta = sender_delta(bridge, clean_cache, corrupted_cache, sl, sh)
            value = metric(patch_edge(bridge, prompts.corrupted, delta, receiver, component))
            out[sl, sh] = ((value - corrupt) / (clean - corrupt)).cpu()
    return out
