"""Non-finite activations make a claim an error, never a verdict.

Why hooks and not a check of the recorded value: argmax, masks, ranks and comparisons turn NaN
into finite numbers (a checkpoint with one NaN weight measured "accuracy 0.25, FAIL"). So every
hook point of a model handed to a claim gets a permanent forward hook that folds "did a NaN or
an infinity pass here" into a running sum of |sum(activation)| kept on the model's device (one
reduction, no host sync per hook; the sum of anything holding NaN/inf is NaN/inf); the
plugin reads the flags once, when it decides the claim, and names the first hook (in forward
order) that carried a non-finite value. A short probe pass when the watch is installed covers
forward passes that ran before the model was handed over (shared caches, module fixtures).

Masked attention scores are -inf by construction (causal mask), so `*attn_scores` hooks are
not summed; a NaN there shows in the `hook_pattern` right after. The flags are sticky per model:
a NaN weight poisons every pass, and a claim that read a shared cache computed for another claim
read the same activations. Cost: about +35% per forward pass on the d_model=4 toy (45 hooks on
a tiny model; proportionally less on real ones).
"""

from __future__ import annotations

import weakref

import torch

from mechcheck.core.claim import ClaimError

PROBE_TOKENS = 8


class NonFiniteError(ClaimError):
    """A claim's model produced NaN or infinite activations."""


class _Watch:
    def __init__(self, name: str | None, where=None):
        self.name = name
        self.where = where  # the series step or explicit checkpoint it was loaded for (None: the name's own)
        self.flags: dict[str, torch.Tensor] = {}  # hook name -> running sum of |sum(act)|, first-fire order

    def hook(self, act, hook):
        if not isinstance(act, torch.Tensor) or not act.is_floating_point():
            return None
        name = hook.name or "?"
        if name.endswith("attn_scores"):  # -inf where masked; a NaN here shows in hook_pattern next
            return None
        with torch.no_grad():
            # one reduction: the sum of a tensor holding NaN or inf is NaN or inf (accumulated in
            # float32, so half-precision activations do not overflow it)
            total = act.sum(dtype=torch.float32)
            flag = self.flags.get(name)
            if flag is None or flag.device != total.device:
                self.flags[name] = total.abs()
            else:
                flag.add_(total.abs())
        return None

    def first(self) -> str | None:
        for name, flag in list(self.flags.items()):
            if not bool(torch.isfinite(flag)):
                return name
        return None


_WATCHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def watch(bridge, name: str | None = None, where=None) -> None:
    """Install the finiteness hooks on every hook point of `bridge` (once) and run a probe pass.
    `name`: the registry name when one checkpoint serves every claim on that name (the session
    loader), so a claim whose fixtures failed before it named its model can still be checked;
    `where`: the series step or explicit checkpoint it was loaded for (a NaN checkpoint must not
    reach the claims measured on another checkpoint of the same name)."""
    if bridge is None:
        return
    if bridge in _WATCHES:
        _WATCHES[bridge].name = _WATCHES[bridge].name or name
        return
    w = _WATCHES[bridge] = _Watch(name, None if where is None else str(where))
    seen = set()
    for hp in bridge.hook_dict.values():
        if id(hp) not in seen:
            seen.add(id(hp))
            hp.add_hook(w.hook, dir="fwd", is_permanent=True)
    n = max(1, min(PROBE_TOKENS, int(bridge.cfg.d_vocab), int(getattr(bridge.cfg, "n_ctx", PROBE_TOKENS))))
    tokens = torch.arange(n, device=bridge.cfg.device).unsqueeze(0)
    with torch.no_grad():
        bridge(tokens)


def first_nonfinite(bridge) -> str | None:
    """The first hook (forward order) of a watched model that carried NaN/inf, else None."""
    w = _WATCHES.get(bridge) if bridge is not None else None
    return w.first() if w is not None else None


def check(bridge, model_name: str, where=None) -> None:
    """Raise NonFiniteError (one line) when a watched model produced non-finite activations.
    With bridge None, the models watched under `model_name` by the session loader for `where` (the
    series step the claim runs on; None: the name's own checkpoint, not one a test named itself)."""
    if bridge is None:
        where = None if where is None else str(where)
        bridges = [b for b, w in list(_WATCHES.items()) if w.name == model_name and w.where == where]
    else:
        bridges = [bridge]
    hook = next((h for h in map(first_nonfinite, bridges) if h is not None), None)
    if hook is not None:
        raise NonFiniteError(
            f"non-finite activations (NaN or inf) in {model_name}, first at hook {hook}; "
            "no verdict is possible from this model (check the checkpoint's weights)")
