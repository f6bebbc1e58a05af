"""Measurements of the TinyStories-1M POS-head paper (../shared/seeds/
paper-interpreting-tiny-transformers-1M.md, §4): key/query POS probes per head, head activity,
and attention by token class, over TinyStories validation text.

One POSRun holds one forward pass over the text (keys, queries, head outputs, patterns of every
layer) and every per-head map is computed from it for all heads at once, so each claim can also
say which head best fits its signature (the location-free form of the claim).
"""

from __future__ import annotations

import numpy as np
import torch

from mechcheck.tagging import tokenize_and_tag

NOUNS = ("NN", "NNS", "NNP", "NNPS")
# Probe label set: the tags the claims are about plus the common ones; every other tag is OTHER.
PROBE_TAGS = ("``", "''", "VBD", "PRP$", "DT", "NN", "NNS", "NNP", "PRP", "IN", "JJ", "RB", "VB", "CC", ".", ",", "TO")


class POSRun:
    """Tagged text and the activations every POS claim reads, for one model."""

    def __init__(self, bridge, texts: list[str], max_tokens: int = 128, seed: int = 0):
        tok = bridge.tokenizer
        rows = [tokenize_and_tag(tok, t, max_tokens=max_tokens, bos=tok.bos_token_id) for t in texts]
        rows = [r for r in rows if len(r[0]) > 2]
        n, length = len(rows), max(len(r[0]) for r in rows)
        ids = torch.full((n, length), tok.bos_token_id, dtype=torch.long)
        self.tags = np.full((n, length), "", dtype=object)
        for i, (row_ids, row_tags) in enumerate(rows):
            ids[i, : len(row_ids)] = torch.tensor(row_ids)
            self.tags[i, : len(row_tags)] = row_tags
        self.valid = self.tags != ""  # real word tokens (not BOS, not padding)
        self.tokens = ids
        self.seed = seed
        from mechcheck.activations import cached

        L = bridge.cfg.n_layers
        keep = ("hook_k", "hook_q", "hook_z", "hook_pattern")
        cache = cached(bridge, ids, [f"blocks.{l}.attn.{k}" for l in range(L) for k in keep], chunk=16)
        with torch.no_grad():
            stack = lambda name: torch.stack([cache[f"blocks.{l}.attn.{name}"] for l in range(L)]).cpu()  # noqa: E731
            self.keys, self.queries = stack("hook_k").numpy(), stack("hook_q").numpy()  # [L, n, pos, H, d]
            z = stack("hook_z")
            self.activity = torch.einsum("lnphe,lhed->lnphd", z, bridge.W_O.detach().cpu()).norm(dim=-1).numpy()
            self.pattern = stack("hook_pattern").numpy()  # [L, n, H, q, k]
        self.in_quote, self.opening_of = self._quotes()

    # ------------------------------------------------------------- token classes

    def _quotes(self):
        inside = np.zeros(self.tags.shape, dtype=bool)
        opening = np.full(self.tags.shape, -1)
        for i, row in enumerate(self.tags):
            open_pos = -1
            for p, tag in enumerate(row):
                if tag == "``":
                    open_pos = p
                elif tag == "''":
                    opening[i, p] = open_pos
                    open_pos = -1
                elif open_pos >= 0 and tag:
                    inside[i, p] = True
                    opening[i, p] = open_pos
        return inside, opening

    def shifted_tag(self, offset: int) -> np.ndarray:
        out = np.full(self.tags.shape, "", dtype=object)
        if offset > 0:
            out[:, :-offset] = self.tags[:, offset:]
        return out

    def before_vbd(self) -> np.ndarray:
        return self.valid & (self.shifted_tag(1) == "VBD")

    def prp_dt_before_noun(self) -> np.ndarray:
        return np.isin(self.tags, ("PRP$", "DT")) & np.isin(self.shifted_tag(1), NOUNS)

    # ------------------------------------------------------------- probes (§4.1)

    def probe_f1(self, kind: str, tags=("``", "''"), heads=None, shuffled: bool = False) -> dict[str, np.ndarray]:
        """Per-tag held-out F1 of a multinomial logistic-regression probe on each head's key or
        query vectors: {tag: [n_layers, n_heads]} (NaN for heads not probed). Train/test split by
        sequence (first 75% / rest); `shuffled` permutes the training labels (chance baseline)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score

        feats = self.keys if kind == "key" else self.queries
        L, _, _, H, _ = feats.shape
        labels = np.where(np.isin(self.tags, PROBE_TAGS), self.tags, "OTHER")
        n_train = int(0.75 * self.tags.shape[0])
        tr, te = self.valid.copy(), self.valid.copy()
        tr[n_train:], te[:n_train] = False, False
        y_tr, y_te = labels[tr], labels[te]
        if shuffled:
            y_tr = np.random.default_rng(self.seed).permutation(y_tr)
        out = {t: np.full((L, H), np.nan) for t in tags}
        for l, h in heads or [(l, h) for l in range(L) for h in range(H)]:
            x = feats[l, :, :, h]
            probe = LogisticRegression(max_iter=300).fit(x[tr], y_tr)
            f1 = f1_score(y_te, probe.predict(x[te]), labels=list(tags), average=None, zero_division=0)
            for t, v in zip(tags, f1):
                out[t][l, h] = v
        return out

    # ------------------------------------------------------------- activity (§4.2)

    def activity_ratio(self, mask: np.ndarray, seqs=None) -> np.ndarray:
        """Mean activity on `mask` tokens / mean activity on the other word tokens: [L, H]."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        act, m, v = self.activity[:, seqs], mask[seqs], self.valid[seqs]
        on = act[:, m].mean(1)
        off = act[:, v & ~m].mean(1)
        return on / off

    # ------------------------------------------------------------- attention by class (§4.3)

    def attention_to_opening_quote(self) -> np.ndarray:
        """From tokens inside a quotation, attention on its opening quote: [L, H]."""
        n, q = np.nonzero(self.in_quote)
        k = self.opening_of[n, q]
        return self.pattern[:, n, :, q, k].mean(0)

    def closing_quote_attention(self) -> dict[str, np.ndarray]:
        """At the closing quote: attention on itself vs on the opening quote: {to: [L, H]}."""
        n, q = np.nonzero((self.tags == "''") & (self.opening_of >= 0))
        if len(n) == 0:
            return {}
        k = self.opening_of[n, q]
        return {"closing": self.pattern[:, n, :, q, q].mean(0), "opening": self.pattern[:, n, :, q, k].mean(0)}

    def attention_to_earlier_vbd(self) -> np.ndarray:
        """From the token right before a VBD, attention mass on earlier VBD tokens: [L, H]."""
        vbd = self.tags == "VBD"
        rows = []
        for n, q in zip(*np.nonzero(self.before_vbd())):
            earlier = np.nonzero(vbd[n, :q])[0]
            if len(earlier):
                rows.append(self.pattern[:, n, :, q, :][..., earlier].sum(-1))  # [L, H]
        return np.mean(rows, axis=0) if rows else np.full(self.pattern.shape[0:1] + self.pattern.shape[2:3], np.nan)

    def attention_by_tag(self, query_mask: np.ndarray, layer: int, head: int) -> dict[str, float]:
        """Share of a head's attention (BOS and self excluded, renormalised) that goes to each POS
        tag, averaged over the `query_mask` tokens (appendix C/D)."""
        totals: dict[str, float] = {}
        count = 0
        for n, q in zip(*np.nonzero(query_mask)):
            w = self.pattern[layer, n, head, q, 1:q].copy()
            if w.sum() <= 0:
                continue
            w /= w.sum()
            for tag, x in zip(self.tags[n, 1:q], w):
                totals[tag or "(none)"] = totals.get(tag or "(none)", 0.0) + float(x)
            count += 1
        return {t: v / count for t, v in sorted(totals.items(), key=lambda kv: -kv[1])} if count else {}

    def noun_share(self, query_mask: np.ndarray) -> np.ndarray:
        """[L, H]: share of attention (BOS and self excluded) going to nouns from `query_mask` tokens."""
        noun = np.isin(self.tags, NOUNS)
        rows = []
        for n, q in zip(*np.nonzero(query_mask)):
            if q < 2:
                continue
            w = self.pattern[:, n, :, q, 1:q]  # [L, H, q-1]
            total = w.sum(-1)
            rows.append(np.where(total > 0, (w * noun[n, 1:q]).sum(-1) / np.maximum(total, 1e-12), 0.0))
        return np.mean(rows, axis=0)


def best_head(head_map: np.ndarray) -> str:
    """The location-free form: which head fits the signature best in this checkpoint."""
    l, h = np.unravel_index(np.nanargmax(head_map), head_map.shape)
    return f"L{l}H{h}"
