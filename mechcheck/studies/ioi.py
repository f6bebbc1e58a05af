"""One model on the thesis' IOI prompt set (mechcheck.data.ioi_prompts): the clean and corrupted
forward passes, shared by every IOI claim on that model."""

from __future__ import annotations

import torch

from mechcheck.data.ioi_prompts import IOIPrompts
from mechcheck.metrics.activations import cached
from mechcheck.metrics.logit_diff import end_logits, logit_diff, logit_diff_from_resid
from mechcheck.metrics.path_patching import edge_scores, head_output_scores, resid_patching, sender_scores

KEEP = ("attn.hook_z", "attn.hook_pattern", "hook_resid_pre", "hook_resid_mid", "hook_resid_post")


class IOIRun:
    """One model on the prompt set: the clean and corrupted forward passes (one cache each, only
    the hooks the IOI measurements read, in bounded batches, END logits only), shared by every
    IOI claim on that model; the costly sweeps (head patching, edges) are computed on first use
    and kept."""

    def __init__(self, bridge, prompts: IOIPrompts):
        self.bridge = bridge
        self.prompts = prompts.to(bridge.cfg.device)
        names = [f"blocks.{l}.{k}" for l in range(bridge.cfg.n_layers) for k in KEEP]
        names = [n for n in names if n in bridge.hook_dict]  # attention-only models have no resid_mid
        names += ["ln_final.hook_in", "ln_final.hook_scale"]
        self.cache = cached(bridge, self.prompts.tokens, names)
        self.corrupted_cache = cached(bridge, self.prompts.corrupted, names)
        self.logits = end_logits(bridge, self.cache["ln_final.hook_in"], self.prompts)  # [n, vocab] at END
        self.ld = logit_diff(self.logits, self.prompts)
        self.ld_corrupted = logit_diff(end_logits(bridge, self.corrupted_cache["ln_final.hook_in"], self.prompts), self.prompts)
        self._edges: dict = {}
        self._senders: dict = {}
        self._head_patching = None
        self._resid_patching = None

    def metric(self, resid):
        """Per-prompt logit difference from a final residual stream (mechcheck.metrics.activations.final_residual)."""
        return logit_diff_from_resid(self.bridge, resid, self.prompts)

    def head_patching(self):
        """Corrupt-to-clean patching of every head's output: (normalised recovery [n_layers,
        n_heads], per-prompt patched logit differences [n_layers, n_heads, n])."""
        if self._head_patching is None:
            values = head_output_scores(self.bridge, self.prompts, self.cache, self.metric, self.corrupted_cache)
            clean, corrupt = self.ld.mean().item(), self.ld_corrupted.mean().item()
            self._head_patching = ((values.mean(-1) - corrupt) / (clean - corrupt), values)
        return self._head_patching

    def edges(self, receiver: tuple[int, int], component: str):
        """Path-patching recovery of every earlier head into the receiver's q or v, per prompt:
        [layer, n_heads, n] (mean over the last axis: the recovery)."""
        key = (tuple(receiver), component)
        if key not in self._edges:
            self._edges[key] = edge_scores(self.bridge, self.prompts, self.cache, self.corrupted_cache, receiver,
                                           component, self.metric, self.ld.mean(), self.ld_corrupted.mean())
        return self._edges[key]

    def resid_patching(self):
        """Corrupt-to-clean patching of resid_pre at every layer and at each position from S2 to
        END (positions before S2 are the same in both runs, so patching them changes nothing):
        (labels ["S2", "S2+1", ..., "END"], normalised recovery per prompt [n_layers, P, n])."""
        if self._resid_patching is None:
            p = self.prompts
            gap = int((p.pos_end - p.pos_s2).min())
            positions = torch.stack([p.pos_s2 + k for k in range(gap)] + [p.pos_end])
            labels = ["S2"] + [f"S2+{k}" for k in range(1, gap)] + ["END"]
            values = resid_patching(self.bridge, p, self.cache, self.metric, positions, self.corrupted_cache)
            clean, corrupt = self.ld.mean().item(), self.ld_corrupted.mean().item()
            self._resid_patching = (labels, (values - corrupt) / (clean - corrupt))
        return self._resid_patching

    def senders(self, receivers, component: str, senders=None) -> dict:
        """Path-patching recovery per prompt, {sender: [n]}, of each earlier component (embed,
        heads, MLPs; or the named `senders`) into the q or v input of all `receivers` at once."""
        key = (tuple(map(tuple, receivers)), component, None if senders is None else tuple(senders))
        if key not in self._senders:
            self._senders[key] = sender_scores(self.bridge, self.prompts, self.cache, self.corrupted_cache,
                                               list(receivers), component, self.metric, self.ld.mean(),
                                               self.ld_corrupted.mean(), senders)
        return self._senders[key]
