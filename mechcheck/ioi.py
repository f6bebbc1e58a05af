"""The IOI prompt set of the thesis (../shared/seeds/thesis-ioi-circuits-tinystories-8M.txt, §3.4).

Why our own builder and not TL's evals.IOIDataset: the thesis averages "over a batch of IOI
prompts with names permuted", i.e. every ordered (IO, S) pair of a name list in every template,
which IOIDataset (random sampling of names) does not enumerate. The set is deterministic; every
name must be one token (checked against the tokenizer) and every template the same length, so
the whole set is one batch with fixed S1 / IO / S2 / END positions per prompt.

Corruption (§3.4.2): S2 is replaced by IO ("When John and Mary went to the shops, Mary gave the
bag to"), the thesis' clean/corrupted pair, applied to every prompt.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from mechcheck.claim import ClaimError

# The thesis' clean sentence is the first template with S = John, IO = Mary.
TEMPLATES = (
    "When {S1} and {IO} went to the shops, {S2} gave the bag to",
    "When {IO} and {S1} went to the shops, {S2} gave the bag to",
    "After {S1} and {IO} went to the park, {S2} gave a ball to",
    "After {IO} and {S1} went to the park, {S2} gave a ball to",
)
NAMES = ("John", "Mary", "Tom", "Sue", "Ben", "Anna")
CLEAN_EXAMPLE = "When John and Mary went to the shops, John gave the bag to"
CORRUPTED_EXAMPLE = "When John and Mary went to the shops, Mary gave the bag to"


@dataclass
class IOIPrompts:
    """One batch of IOI prompts: token ids and, per prompt, the IO / S token ids and positions."""

    texts: list[str]
    tokens: torch.Tensor  # [n, seq] with BOS
    corrupted: torch.Tensor  # [n, seq], S2 replaced by IO
    io: torch.Tensor  # [n] token id of IO
    s: torch.Tensor  # [n] token id of S
    pos_io: torch.Tensor
    pos_s1: torch.Tensor
    pos_s2: torch.Tensor
    pos_end: torch.Tensor

    def __len__(self) -> int:
        return len(self.texts)

    def to(self, device):
        for name in ("tokens", "corrupted", "io", "s", "pos_io", "pos_s1", "pos_s2", "pos_end"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _single_token(tokenizer, name: str) -> int:
    ids = _encode(tokenizer, " " + name)
    if len(ids) != 1:
        raise ClaimError(f"IOI name {name!r} is {len(ids)} tokens for this tokenizer; names must be one token")
    return ids[0]


def build(tokenizer, names=NAMES, templates=TEMPLATES, bos: int | None = None) -> IOIPrompts:
    """Every ordered (IO, S) pair of `names` in every template."""
    if bos is None:
        bos = tokenizer.bos_token_id
    ids = {n: _single_token(tokenizer, n) for n in names}
    texts, rows, corrupted, meta = [], [], [], []
    for template, (io, s) in itertools.product(templates, itertools.permutations(names, 2)):
        text = template.format(IO=io, S1=s, S2=s)
        bad = template.format(IO=io, S1=s, S2=io)
        toks = [bos] + _encode(tokenizer, text)
        positions = [i for i, t in enumerate(toks) if t == ids[s]]
        if len(positions) != 2 or toks.count(ids[io]) != 1:
            raise ClaimError(f"IOI template {template!r} does not tokenize to one IO and two S names")
        texts.append(text)
        rows.append(toks)
        corrupted.append([bos] + _encode(tokenizer, bad))
        meta.append((ids[io], ids[s], toks.index(ids[io]), positions[0], positions[1], len(toks) - 1))
    lengths = {len(r) for r in rows} | {len(r) for r in corrupted}
    if len(lengths) != 1:
        raise ClaimError(f"IOI templates tokenize to different lengths {sorted(lengths)}; they must match")
    m = torch.tensor(meta)
    return IOIPrompts(texts, torch.tensor(rows), torch.tensor(corrupted), *m.T)


KEEP = ("attn.hook_z", "attn.hook_pattern", "hook_resid_pre", "hook_resid_mid", "hook_resid_post")


class IOIRun:
    """One model on the prompt set: the clean and corrupted forward passes (one cache each, only
    the hooks the IOI measurements read, in bounded batches, END logits only), shared by every
    IOI claim on that model; the costly sweeps (head patching, edges) are computed on first use
    and kept."""

    def __init__(self, bridge, prompts: IOIPrompts):
        from mechcheck.activations import cached
        from mechcheck.metrics.logit_diff import end_logits, logit_diff

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
        """Per-prompt logit difference from a final residual stream (mechcheck.activations.final_residual)."""
        from mechcheck.metrics.logit_diff import logit_diff_from_resid

        return logit_diff_from_resid(self.bridge, resid, self.prompts)

    def head_patching(self):
        """Corrupt-to-clean patching of every head's output: (normalised recovery [n_layers,
        n_heads], per-prompt patched logit differences [n_layers, n_heads, n])."""
        if self._head_patching is None:
            from mechcheck.metrics.path_patching import head_output_scores

            values = head_output_scores(self.bridge, self.prompts, self.cache, self.metric, self.corrupted_cache)
            clean, corrupt = self.ld.mean().item(), self.ld_corrupted.mean().item()
            self._head_patching = ((values.mean(-1) - corrupt) / (clean - corrupt), values)
        return self._head_patching

    def edges(self, receiver: tuple[int, int], component: str):
        """Path-patching recovery of every earlier head into the receiver's q or v, per prompt:
        [layer, n_heads, n] (mean over the last axis: the recovery)."""
        from mechcheck.metrics.path_patching import edge_scores

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
            from mechcheck.metrics.path_patching import resid_patching

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
        from mechcheck.metrics.path_patching import sender_scores

        key = (tuple(map(tuple, receivers)), component, None if senders is None else tuple(senders))
        if key not in self._senders:
            self._senders[key] = sender_scores(self.bridge, self.prompts, self.cache, self.corrupted_cache,
                                               list(receivers), component, self.metric, self.ld.mean(),
                                               self.ld_corrupted.mean(), senders)
        return self._senders[key]
