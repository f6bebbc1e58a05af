"""Caching only the activations a measurement reads, in bounded batches, without logits.

Why: a GPT-2-vocabulary model's logits are [batch, pos, 50257] floats, 1.6 GB for 32 x 256 tokens,
while the measurements here read a few hooks (and at most two logit columns). Running in chunks
and stopping at the final LayerNorm keeps peak memory far below the machine's 24 GiB whatever the
number of prompts or sequences."""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache

from mechcheck.models import ModelError

CHUNK = 32  # sequences per forward pass


class UnsupportedMeasurement(ModelError):
    """A measurement reads a hook this model's architecture does not have (e.g. an MLP ablation on
    an attention-only model): one line naming the hook and the architecture, not TL's KeyError."""


def require_hooks(bridge, names) -> None:
    """Raise UnsupportedMeasurement unless every hook in `names` exists on `bridge`."""
    missing = [n for n in names if n not in bridge.hook_dict]
    if missing:
        arch = getattr(bridge.cfg, "architecture", None) or type(bridge).__name__
        raise UnsupportedMeasurement(
            f"this measurement reads hook {missing[0]!r}, which the {arch} model "
            f"({bridge.cfg.n_layers} layers{', attention-only' if getattr(bridge.cfg, 'attn_only', False) else ''}) "
            f"does not have")


class _Stop(Exception):
    """Carries an activation out of the forward pass at the hook where the run stops."""


def _run_to(bridge, tokens, fwd_hooks, stop_at: str) -> torch.Tensor:
    """Run with `fwd_hooks` and stop at `stop_at` (an ln_final hook), returning its activation
    (TL's stop_at_layer cannot stop after the last block)."""

    def stop(act, hook):
        raise _Stop(act)

    require_hooks(bridge, [name for name, _ in fwd_hooks])

    try:
        bridge.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks) + [(stop_at, stop)])
    except _Stop as done:
        return done.args[0]
    raise RuntimeError(f"{stop_at} did not fire; cannot read the final residual stream")


def final_residual(bridge, tokens, fwd_hooks=()) -> torch.Tensor:
    """The final residual stream [n, seq, d_model] of a hooked run, stopping before ln_final and
    the unembedding."""
    return _run_to(bridge, tokens, fwd_hooks, "ln_final.hook_in")


@torch.no_grad()
def cached(bridge, tokens: torch.Tensor, names, chunk: int = CHUNK) -> ActivationCache:
    """TransformerLens ActivationCache of the hooks `names` for all `tokens` (on the model's
    device), `chunk` sequences at a time, each forward pass stopped as soon as every hook asked for
    has fired (a layer-0 pattern costs one block, never the unembedding). ln_final's hook_in and
    hook_scale may be asked for, so that the cache's logit_attrs / accumulated_resid read the
    residual stream through the final LayerNorm. The one activation capture of mechcheck (IOI,
    head scores, head roles, activation statistics, POS)."""
    names = tuple(dict.fromkeys(names))
    require_hooks(bridge, names)
    parts: dict[str, list] = {n: [] for n in names}
    device = bridge.cfg.device
    for start in range(0, tokens.shape[0], chunk):
        batch = tokens[start : start + chunk].to(device)
        fired: set[str] = set()

        def keeper(name):  # keyed by the name asked for: in compatibility mode hook.name may be an alias
            def keep(act, hook):
                parts[name].append(act.detach())
                fired.add(name)
                if len(fired) == len(names):
                    raise _Stop(None)
            return keep

        try:
            bridge.run_with_hooks(batch, fwd_hooks=[(n, keeper(n)) for n in names])
        except _Stop:
            continue
        missing = [n for n in names if n not in fired]
        raise RuntimeError(f"hooks {missing} did not fire in a forward pass of {getattr(bridge.cfg, 'model_name', 'this model')}")
    return ActivationCache({n: torch.cat(v) for n, v in parts.items()}, bridge)
