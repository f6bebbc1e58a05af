"""Path patching of one edge: a sender head's output into one receiver head's query or value
input only (Wang et al. 2022; the thesis' edge attribution of §3.4.2, done exactly), or into its
key input (K-composition, Elhage et al. 2021 / Olsson et al. 2022: the induction organism's O2.kcomp).

Why our own: TL's get_act_patch_direct_path (which works on GPT-2 and is this function's oracle
there, tests/test_patch_oracle.py) and get_act_patch_attn_head_out_all_pos compute full logits per
patched run, where we stop at the final residual stream and read two columns
(logit_diff_from_resid), several times faster on these vocab-dominated models; and it needs only
hook_resid_pre and hook_q / hook_v, so it runs on the GPT-Neo (TinyStories) bridges too. In
compatibility mode a head's q (or v) is exactly ln1(resid_pre) @ W_Q + b_Q (tested), so we recompute the receiver's q/v from
resid_pre + (sender clean write - sender corrupted write) and leave every other reader on the
corrupted run: the corrupt-to-clean intervention on that edge alone.

The sweeps (head_output_scores, resid_patching, sender_scores) resume each patched forward pass at
the first patched layer from the cached corrupted residual stream (resume_residual) instead of
recomputing the layers before it, which a patch there cannot change.
"""

from __future__ import annotations

import torch

from mechcheck.metrics.activations import final_residual


@torch.no_grad()
def resume_residual(bridge, entering: torch.Tensor, layer: int, fwd_hooks=()) -> torch.Tensor:
    """The final residual stream [n, seq, d_model] of a forward pass resumed at block `layer`,
    with `entering` the residual that flows into that block before its hook_resid_pre fires
    (the previous block's hook_resid_post, as cached), and `fwd_hooks` on blocks >= `layer`.
    Every hook of blocks `layer`.. and ln_final.hook_in fires as in a full run (final_residual):
    hook_resid_pre of `layer` once, on `entering`.

    Why hand-written: TransformerBridge.forward(start_at_layer=k) of TransformerLens 4.3 still
    executes blocks 0..k-1 (it feeds the residual to the HF model as inputs_embeds and swaps it
    back in at block k; its docstring says so), so it saves nothing. Here the bridge's own blocks
    (BlockBridge, hooks inside) are called one after the other, as the HF model's loop calls
    them; for GPT-2 and GPT-Neo (absolute position embeddings added before block 0, the causal /
    local mask built inside the attention) the result equals the full run (tests/test_patching_resume.py)."""
    x = entering
    with bridge.hooks(fwd_hooks=list(fwd_hooks)):
        for block in bridge.blocks[layer:]:
            out = block(x)
            x = out[0] if isinstance(out, tuple) else out
        return bridge.hook_dict["ln_final.hook_in"](x)


def _entering(cache, layer: int, rows: int) -> torch.Tensor | None:
    """The cached residual flowing into block `layer` before its hook_resid_pre (resid_post of the
    block before), repeated to `rows` sequences; None for layer 0 (the embedding's output is not
    cached) or when no cache holding it is given."""
    name = f"blocks.{layer - 1}.hook_resid_post"
    if cache is None or layer == 0 or name not in cache.keys():
        return None
    x = cache[name]
    return x.repeat(rows // x.shape[0], 1, 1)


def _patched_run(bridge, tokens, layer: int, fwd_hooks, cache) -> torch.Tensor:
    """Final residual stream of the run of `tokens` with `fwd_hooks` (on blocks >= `layer` only):
    resumed at `layer` from `cache` (the unpatched run's cache of `tokens`) when it can be
    (_entering), else the full forward pass. Hooks active outside (a planted or ablated head) must
    be those that were active when `cache` was made, as for every measurement of an IOIRun."""
    entering = _entering(cache, layer, tokens.shape[0])
    if entering is None:
        return final_residual(bridge, tokens, fwd_hooks)
    return resume_residual(bridge, entering, layer, fwd_hooks)


@torch.no_grad()
def sender_delta(bridge, clean_cache, corrupted_cache, layer: int, head: int) -> torch.Tensor:
    """Clean minus corrupted write of head (layer, head) into the residual stream: [n, pos, d_model]."""
    z = f"blocks.{layer}.attn.hook_z"
    W_O = bridge.W_O[layer, head]
    return (clean_cache[z][:, :, head] - corrupted_cache[z][:, :, head]) @ W_O


COMPONENTS = ("q", "k", "v")


def _weights(bridge, component: str):
    """(W, b) of a head input `component` ("q", "k" or "v"): [n_layers, n_heads, d_model, d_head]."""
    if component not in COMPONENTS:
        raise ValueError(f"component must be 'q', 'k' or 'v', not {component!r}")
    return getattr(bridge, f"W_{component.upper()}"), getattr(bridge, f"b_{component.upper()}")


@torch.no_grad()
def patch_edge(bridge, corrupted_tokens, delta, receiver: tuple[int, int], component: str) -> torch.Tensor:
    """Final residual stream of the corrupted run with `delta` added to
    the `component` ("q", "k" or "v") input of the receiver head only."""
    layer, head = receiver
    W, b = (w[layer, head] for w in _weights(bridge, component))
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


MAX_ROWS = 512  # sequences per batched patching forward (several patches ride in one batch)


def _groups(items: list, n: int) -> list[list]:
    """`items` split so that each group's patches times n prompts fit in MAX_ROWS sequences."""
    size = max(1, MAX_ROWS // max(n, 1))
    return [items[i : i + size] for i in range(0, len(items), size)]


@torch.no_grad()
def head_output_scores(bridge, prompts, clean_cache, metric, corrupted_cache=None) -> torch.Tensor:
    """Per-prompt metric with each head's output patched: [n_layers, n_heads, n]. Several heads
    of a layer ride in one forward (rows g * n + i: prompt i with head heads[g] patched), which
    gives the same numbers as one forward per head (tested) at a fraction of the bridge's
    per-call overhead. With `corrupted_cache` (holding hook_resid_post) each forward resumes at
    the patched layer (_patched_run)."""
    n = len(prompts)
    out = torch.zeros(bridge.cfg.n_layers, bridge.cfg.n_heads, n)
    for layer in range(bridge.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        clean = clean_cache[name]
        for heads in _groups(list(range(bridge.cfg.n_heads)), n):

            def patch(act, hook, heads=heads, clean=clean):
                act = act.clone()
                for g, h in enumerate(heads):
                    act[g * n : (g + 1) * n, :, h] = clean[:, :, h]
                return act

            resid = _patched_run(bridge, prompts.corrupted.repeat(len(heads), 1), layer, [(name, patch)],
                                 corrupted_cache)
            for g, h in enumerate(heads):
                out[layer, h] = metric(resid[g * n : (g + 1) * n]).cpu()
    return out


@torch.no_grad()
def edge_scores(bridge, prompts, clean_cache, corrupted_cache, receiver, component, metric, clean, corrupt):
    """Normalised recovery (metric - corrupt) / (clean - corrupt) of every sender head in the layers
    before the receiver: per prompt, [receiver_layer, n_heads, n] (clean and corrupt are the
    prompt-set means, so the mean over prompts is the recovery of the mean metric). Several
    senders ride in one forward (sender_scores)."""
    layer, _ = receiver
    heads = [f"L{sl}H{sh}" for sl in range(layer) for sh in range(bridge.cfg.n_heads)]
    scores = sender_scores(bridge, prompts, clean_cache, corrupted_cache, [receiver], component, metric, clean,
                           corrupt, heads)
    if not heads:  # a layer-0 receiver has no earlier head
        return torch.zeros(0, bridge.cfg.n_heads, len(prompts))
    return torch.stack([scores[h] for h in heads]).reshape(layer, bridge.cfg.n_heads, len(prompts))


@torch.no_grad()
def resid_patching(bridge, prompts, clean_cache, metric, positions: torch.Tensor, corrupted_cache=None) -> torch.Tensor:
    """Corrupt-to-clean patching of the residual stream entering each layer (hook_resid_pre) at
    one position per prompt (thesis figs 3.11/3.12): per-prompt metric [n_layers, P, n] for the
    position sets positions[j] ([P, n], one position per prompt). One forward per layer: the P
    position sets ride in the batch (row j * n + i is prompt i patched at positions[j, i]). With
    `corrupted_cache` (holding hook_resid_post) each forward resumes at the patched layer."""
    n, P = len(prompts), positions.shape[0]
    tokens = prompts.corrupted.repeat(P, 1)
    rows = torch.arange(P * n, device=tokens.device)
    pos = positions.reshape(-1).to(tokens.device)
    out = torch.zeros(bridge.cfg.n_layers, P, n)
    for layer in range(bridge.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        clean = clean_cache[name]

        def patch(act, hook, clean=clean):
            act = act.clone()
            act[rows, pos] = clean[rows % n, pos]
            return act

        resid = _patched_run(bridge, tokens, layer, [(name, patch)], corrupted_cache)
        for j in range(P):
            out[layer, j] = metric(resid[j * n : (j + 1) * n]).cpu()
    return out


def sender_names(bridge, clean_cache, before_layer: int) -> list[str]:
    """Every component writing into the residual stream before `before_layer`, in order: "embed",
    then per layer its heads "LxHy" and "MLPx" (attention-only models have no MLP senders)."""
    with_mlp = "blocks.0.hook_resid_mid" in clean_cache.keys()
    names = ["embed"]
    for layer in range(before_layer):
        names += [f"L{layer}H{h}" for h in range(bridge.cfg.n_heads)] + ([f"MLP{layer}"] if with_mlp else [])
    return names


@torch.no_grad()
def component_delta(bridge, clean_cache, corrupted_cache, name: str) -> torch.Tensor:
    """Clean minus corrupted write of one component (a name of sender_names) into the residual
    stream, [n, pos, d_model]: the embedding's is resid_pre of layer 0, an MLP's resid_post -
    resid_mid of its layer, a head's its z @ W_O (sender_delta)."""
    d = lambda hook: clean_cache[hook] - corrupted_cache[hook]  # noqa: E731
    if name == "embed":
        return d("blocks.0.hook_resid_pre")
    if name.startswith("MLP"):
        layer = int(name[3:])
        return d(f"blocks.{layer}.hook_resid_post") - d(f"blocks.{layer}.hook_resid_mid")
    layer, head = name[1:].split("H")
    return sender_delta(bridge, clean_cache, corrupted_cache, int(layer), int(head))


def _edge_hooks(bridge, delta, receivers, component: str) -> list:
    """Hooks that add `delta` to the `component` input of every receiver head (recomputed from the
    layer's resid_pre + delta through ln1, every other reader untouched)."""
    W_all, b_all = _weights(bridge, component)
    hooks, store = [], {}
    for layer in sorted({r[0] for r in receivers}):
        heads = [r[1] for r in receivers if r[0] == layer]
        W, b = W_all[layer], b_all[layer]
        ln1 = bridge.blocks[layer].ln1

        def keep(act, hook, layer=layer):
            store[layer] = act

        def patch(act, hook, layer=layer, heads=heads, W=W, b=b, ln1=ln1):
            act = act.clone()
            x = ln1(store[layer] + delta)
            for h in heads:
                act[:, :, h] = x @ W[h] + b[h]
            return act

        hooks += [(f"blocks.{layer}.hook_resid_pre", keep), (f"blocks.{layer}.attn.hook_{component}", patch)]
    return hooks


@torch.no_grad()
def patch_edges(bridge, corrupted_tokens, delta, receivers, component: str) -> torch.Tensor:
    """Final residual stream of the corrupted run with `delta` added to the `component` ("q", "k"
    or "v") input of every receiver head (e.g. a sender into all name movers' queries at once)."""
    return final_residual(bridge, corrupted_tokens, _edge_hooks(bridge, delta, receivers, component))


class _Captured(Exception):
    """Stops a forward pass once the receiver's pattern is read."""


@torch.no_grad()
def patched_pattern(bridge, tokens, delta, receiver: tuple[int, int], component: str) -> torch.Tensor:
    """The receiver head's attention pattern [batch, q, k] with `delta` added to its `component`
    input only (e.g. a sender's output removed from its keys: K-composition); the pass stops there."""
    layer, head = receiver

    def capture(act, hook):
        raise _Captured(act[:, head].detach().clone())

    hooks = _edge_hooks(bridge, delta, [receiver], component) + [(f"blocks.{layer}.attn.hook_pattern", capture)]
    try:
        bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    except _Captured as got:
        return got.args[0]
    raise RuntimeError(f"blocks.{layer}.attn.hook_pattern did not fire; cannot read the patched pattern")


@torch.no_grad()
def sender_scores(bridge, prompts, clean_cache, corrupted_cache, receivers, component, metric, clean, corrupt,
                  senders=None) -> dict:
    """Normalised recovery (metric - corrupt) / (clean - corrupt) per prompt, {sender: [n]}, of
    each sender's clean-minus-corrupted write patched into the `component` input of all
    `receivers` at once (senders: names of sender_names; default every component before the
    earliest receiver). Each forward resumes at the earliest receiver's layer (_patched_run)."""
    first = min(r[0] for r in receivers)
    names = sender_names(bridge, clean_cache, first)
    unknown = [s for s in (senders or []) if s not in names]
    if unknown:
        raise ValueError(f"senders {unknown} do not write before layer {first}")
    out, n = {}, len(prompts)
    for group in _groups(list(names if senders is None else senders), n):  # several senders ride in one forward
        delta = torch.cat([component_delta(bridge, clean_cache, corrupted_cache, s) for s in group])
        hooks = _edge_hooks(bridge, delta, receivers, component)
        resid = _patched_run(bridge, prompts.corrupted.repeat(len(group), 1), first, hooks, corrupted_cache)
        for g, name in enumerate(group):
            value = metric(resid[g * n : (g + 1) * n])
            out[name] = ((value - corrupt) / (clean - corrupt)).cpu()
    return out
