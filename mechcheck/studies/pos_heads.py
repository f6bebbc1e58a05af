"""Activations of the TinyStories-1M POS-head paper (../shared/seeds/
paper-interpreting-tiny-transformers-1M.md, §4): key/query POS probes per head, head activity,
and attention by token class, over tagged TinyStories validation text.

One POSRun is one forward pass over the text, reduced batch by batch on the model's device to
what the claims read: key and query vectors of word tokens (probes), per-token activity, and
per-paragraph attention sums by token class (to opening/closing quotes, earlier past-tense verbs,
nouns by query tag, the most recent noun; in both attention conventions, CONVENTIONS). Attention patterns ([paragraphs, q, k] per head)
are never kept, so memory grows with heads x tokens, not with paragraphs x tokens^2. Every
per-head map covers all heads, so each claim can also say which head best fits its signature.
`POSRun(bridge, texts)` runs a model; `POSRun.from_activations(...)` takes activations computed
elsewhere and applies the same reductions. `PaperText(...)` is the paper's input with its settings
bound; called on a model it is that model's POSRun (the preparation the claims' measures share).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from mechcheck.data import data_dir, paragraphs, tagging, tinystories_validation
from mechcheck.metrics import probes
from mechcheck.metrics.activations import cached
from mechcheck.data.tagging import tokenize_and_tag

NOUNS = ("NN", "NNS", "NNP", "NNPS")
# Probe label set: the tags the claims are about plus the common ones; every other tag is OTHER.
PROBE_TAGS = ("``", "''", "VBD", "PRP$", "DT", "NN", "NNS", "NNP", "PRP", "IN", "JJ", "RB", "VB", "CC", "MD", ".",
              ",", "TO")
# Query classes whose attention is broken down by the tag of the attended token (appendix C/D).
QUERY_CLASSES = ("before_vbd", "prp$")
# Attention conventions: "excluded" drops the keys BOS and self and renormalises the rest (the one the
# claims decide on); "included" is the raw pattern (BOS and self kept), reported beside it.
CONVENTIONS = ("excluded", "included")
EXAMPLE_WIDTH = 40
BATCH = 32  # paragraphs per forward pass


def tag_paragraphs(tokenizer, texts, max_tokens: int = 128, n_train: int | None = None, min_held_out: int = 0,
                   held_out_tags=()) -> tuple[torch.Tensor, np.ndarray]:
    """Token ids [n, pos] (BOS first, BOS-padded) and tags [n, pos] ("" for BOS and padding).
    With `min_held_out`, paragraphs are taken in order only until every tag of `held_out_tags`
    has that many tokens after the first `n_train` paragraphs (the probes' test split)."""
    rows, counts = [], dict.fromkeys(held_out_tags, 0)
    for text in texts:
        ids, tags = tokenize_and_tag(tokenizer, text, max_tokens=max_tokens, bos=tokenizer.bos_token_id)
        if len(ids) <= 2:
            continue
        if min_held_out and n_train is not None and len(rows) >= n_train:
            if min(counts.values(), default=min_held_out) >= min_held_out:
                break
            for t in counts:
                counts[t] += tags.count(t)
        rows.append((ids, tags))
    n, length = len(rows), max(len(r[0]) for r in rows)
    tokens = torch.full((n, length), tokenizer.bos_token_id, dtype=torch.long)
    tag_array = np.full((n, length), "", dtype=object)
    for i, (row_ids, row_tags) in enumerate(rows):
        tokens[i, : len(row_ids)] = torch.tensor(row_ids)
        tag_array[i, : len(row_tags)] = row_tags
    return tokens, tag_array


def token_classes(tags: np.ndarray, words: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Masks [n, pos] of the token classes the claims read, and each quote token's opening quote.
    `words` [n, pos] (decoded tokens) marks the definite article: a DT token whose text is "the"."""
    inside = np.zeros(tags.shape, dtype=bool)
    opening = np.full(tags.shape, -1)
    for i, row in enumerate(tags):
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
    after = np.full(tags.shape, "", dtype=object)
    after[:, :-1] = tags[:, 1:]
    valid = tags != ""
    the = np.zeros(tags.shape, dtype=bool) if words is None else np.char.lower(np.char.strip(words.astype(str))) == "the"
    return {"valid": valid, "in_quote": inside, "opening_of": opening,
            "closing": (tags == "''") & (opening >= 0), "before_vbd": valid & (after == "VBD"),
            "prp$": tags == "PRP$", "vbd": tags == "VBD",
            "prp_dt_before_noun": np.isin(tags, ("PRP$", "DT")) & np.isin(after, NOUNS),
            "prp_the_before_noun": ((tags == "PRP$") | ((tags == "DT") & the)) & np.isin(after, NOUNS),
            "noun": np.isin(tags, NOUNS), "nn": tags == "NN"}


def noun_runs(tags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position q: start of the most recent run of noun tokens before q (a noun word, or a
    compound, split into BPE pieces) and how many such runs precede q: two [n, pos] arrays."""
    start = np.full(tags.shape, -1)
    count = np.zeros(tags.shape, dtype=int)
    for i, row in enumerate(tags):
        last, runs = -1, 0
        for p in range(len(row)):
            start[i, p], count[i, p] = last, runs
            if row[p] in NOUNS and (p == 0 or row[p - 1] not in NOUNS):
                last, runs = p, runs + 1
    return start, count


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """F1 from [..., 3] true positives, false positives, false negatives (0 where undefined)."""
    tp, fp, fn = np.moveaxis(np.asarray(counts), -1, 0)
    return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


@dataclass
class ProbeResult:
    """Held-out predictions of one probe per head (test tokens, in paragraph order)."""

    classes: np.ndarray  # label names, index = class id
    predicted: np.ndarray  # [L, H, n_test_tokens] class ids
    truth: np.ndarray  # [n_test_tokens] label names
    paragraph: np.ndarray  # [n_test_tokens] index of the token's paragraph

    def counts(self, tag: str, heads=None) -> np.ndarray:
        """Per head and test paragraph: true positives, false positives, false negatives:
        [L, H, n_paragraphs, 3]."""
        hit = self.classes[self.predicted] == tag
        real = self.truth == tag
        n_par = int(self.paragraph.max()) + 1 if len(self.paragraph) else 0
        out = np.zeros(hit.shape[:2] + (n_par, 3))
        for j, m in enumerate((hit & real, hit & ~real, ~hit & real)):
            for l in range(hit.shape[0]):
                for h in range(hit.shape[1]):
                    out[l, h, :, j] = np.bincount(self.paragraph, weights=m[l, h], minlength=n_par)
        return out

    def f1(self, tag: str) -> np.ndarray:
        """Held-out F1 of `tag` per head: [L, H] (0 where the probe never predicts it and it occurs)."""
        return f1_from_counts(self.counts(tag).sum(2))


class POSRun:
    """Tagged text and the reductions of its activations that every POS claim reads, for one model."""

    def __init__(self, bridge, texts: list[str], max_tokens: int = 128, seed: int = 0, n_train: int | None = None,
                 min_held_out: int = 0, held_out_tags=(), batch: int = BATCH, tagged=None):
        """`tagged`: (tokens, tags) of `texts` already tagged with these settings (PaperText.tagged)."""
        tokens, tags = tagged or tag_paragraphs(bridge.tokenizer, texts, max_tokens, n_train, min_held_out, held_out_tags)
        L = bridge.cfg.n_layers
        W_O = bridge.W_O.detach()
        names = [f"blocks.{l}.attn.{k}" for l in range(L) for k in ("hook_k", "hook_q", "hook_z", "hook_pattern")]


        def batches():
            for start in range(0, tokens.shape[0], batch):
                # the one activation capture: stops once every hook asked for has fired (no logits)
                store = cached(bridge, tokens[start : start + batch], names, chunk=batch)
                get = lambda k: torch.stack([store[f"blocks.{l}.attn.{k}"] for l in range(L)])  # noqa: E731
                z = get("hook_z")  # [L, b, pos, H, d_head]
                yield get("hook_k"), get("hook_q"), torch.einsum("lnphe,lhed->lnphd", z, W_O).norm(dim=-1), get("hook_pattern")

        self._reduce(tokens, tags, batches(), n_train, seed, lambda ids: [bridge.tokenizer.decode([i]) for i in ids])

    @classmethod
    def from_activations(cls, tokens: torch.Tensor, tags: np.ndarray, keys, queries, activity, pattern,
                         n_train: int | None = None, seed: int = 0, decode=None) -> "POSRun":
        """A run from activations of the whole text: keys/queries [L, n, pos, H, d], activity
        [L, n, pos, H] (||z W_O|| per head), pattern [L, n, H, q, k]; same reductions as a model run.
        `decode` (ids -> token strings) finds the definite article; without it no token is "the"."""
        run = cls.__new__(cls)
        b = BATCH
        run._reduce(tokens, tags, ((keys[:, s : s + b], queries[:, s : s + b], activity[:, s : s + b],
                                    pattern[:, s : s + b]) for s in range(0, tokens.shape[0], b)), n_train, seed, decode)
        return run

    # ------------------------------------------------------------- the one pass

    def _reduce(self, tokens, tags, batches, n_train, seed, decode=None):
        self.tokens, self.tags, self.seed = tokens, tags, seed
        self.decode = decode or (lambda ids: [str(i) for i in ids])
        words = None
        if decode is not None:
            ids = np.unique(tokens.numpy())
            text = dict(zip(ids.tolist(), decode(ids.tolist())))
            words = np.vectorize(text.get, otypes=[object])(tokens.numpy())
        self.classes = token_classes(tags, words)
        run_start, n_runs = noun_runs(tags)
        self.valid, self.in_quote, self.opening_of = (self.classes[k] for k in ("valid", "in_quote", "opening_of"))
        n = tags.shape[0]
        self.n_train = int(0.75 * n) if n_train is None else min(n_train, n)
        self.tag_names = np.array(sorted({t for t in tags.ravel()} | {"(none)"}))
        tag_id = np.searchsorted(self.tag_names, np.where(tags == "", "(none)", tags))
        quote_seq = np.nonzero(self.in_quote.any(1))[0]
        self._example_seq = int(quote_seq[0]) if len(quote_seq) else 0
        keys, queries, activity = [], [], []
        sums: dict[str, list] = {k: [] for k in ("open", "close_self", "close_open", "quote_self", "vbd", "vbd_x", "to_nn",
                                                 "to_nn_raw", "recent")}
        by_tag = {c: 0.0 for c in QUERY_CLASSES}
        raw_by_tag = {c: 0.0 for c in QUERY_CLASSES}
        by_tag_rows = {c: 0.0 for c in QUERY_CLASSES}
        start = 0
        for k, q, act, pat in batches:
            stop = start + pat.shape[1]
            dev = pat.device
            cls = {name: torch.as_tensor(m[start:stop], device=dev) for name, m in self.classes.items()}
            valid = cls["valid"]
            keys.append(k[:, valid].float())  # [L, tokens, H, d]
            queries.append(q[:, valid].float())
            activity.append(act.float().cpu().numpy())
            pat = pat.float()
            L, b, H, P, _ = pat.shape
            pos = torch.arange(P, device=dev)
            opening = cls["opening_of"].clamp_min(0)
            at_open = pat.gather(-1, opening[None, :, None, :, None].expand(L, b, H, P, 1))[..., 0]  # [L, b, H, q]
            at_self = pat.diagonal(dim1=-2, dim2=-1)
            per_seq = lambda x, m: (x * m[None, :, None, :]).sum(-1).permute(1, 0, 2)  # noqa: E731  [b, L, H]
            sums["open"].append(per_seq(at_open, cls["in_quote"]).cpu())
            sums["close_self"].append(per_seq(at_self, cls["closing"]).cpu())
            sums["close_open"].append(per_seq(at_open, cls["closing"]).cpu())
            sums["quote_self"].append(per_seq(at_self, cls["in_quote"]).cpu())
            earlier = pos[None, :] < pos[:, None]  # [q, k]: k strictly before q
            has_earlier = cls["before_vbd"] & ((cls["vbd"][:, None, :] & earlier).any(-1))
            # Every attention-by-key-class statistic is the pattern times a key-feature matrix (one
            # matmul, no [L, b, H, q, k] temporaries): columns 1 (row sums), VBD, NN, one-hot tags.
            # The earlier keys' mass is that minus the self column; keys 1..q-1 (the "excluded"
            # convention) also minus BOS, renormalised by their total.
            onehot = torch.nn.functional.one_hot(torch.as_tensor(tag_id[start:stop], device=dev), len(self.tag_names)).float()
            # The one-hot tag columns are read only at the query classes' tokens (a few %): they
            # are computed there (below), the three columns 1, VBD, NN at every query.
            feats = torch.cat([torch.ones_like(onehot[..., :1]), cls["vbd"][..., None].float(),
                               cls["nn"][..., None].float()], -1)  # [b, k, 3]
            mass = pat @ feats[None, :, None]  # [L, b, H, q, 3]: all keys <= q
            own = at_self[..., None] * feats[None, :, None]  # the query's own column
            bos = pat[..., :1] * feats[:, 0][None, :, None, None] * (pos >= 1)[:, None]  # BOS, for q >= 1
            earlier_mass = mass - own
            inner = earlier_mass - bos  # keys 1..q-1
            total = inner[..., :1]
            share = torch.where(total > 0, inner / total.clamp_min(1e-12), 0.0)
            to_vbd = earlier_mass[..., 1]  # [L, b, H, q]
            sums["vbd"].append(torch.stack([per_seq(to_vbd, has_earlier).cpu(),
                                            has_earlier.sum(-1).float().cpu()[:, None, None].expand(b, L, H)], -1))
            for c in QUERY_CLASSES:  # attention by tag from each query class, both conventions
                mask = (cls[c] & (pos >= 2)).float()  # q >= 2: at least one key besides BOS and self
                by_tag_rows[c] = by_tag_rows[c] + torch.einsum("lnhq,nq->lh", (total[..., 0] > 0).float(), mask).cpu().numpy()
                n_idx, q_idx = mask.nonzero(as_tuple=True)
                rows = pat[:, n_idx, :, q_idx]  # [A, L, H, k]: the pattern rows of this class's queries
                tag_of = onehot[n_idx]  # [A, k, T]
                tag_mass = torch.einsum("alhk,akt->alht", rows, tag_of)  # all keys <= q, by key tag
                tag_own = rows.gather(-1, q_idx[:, None, None, None].expand(*rows.shape[:3], 1)) * tag_of[torch.arange(len(q_idx)), q_idx][:, None, None]
                tag_bos = rows[..., :1] * tag_of[:, 0][:, None, None]  # q >= 2 here: BOS is never the query
                tag_total = total[:, n_idx, :, q_idx]  # [A, L, H, 1]
                tag_share = torch.where(tag_total > 0, (tag_mass - tag_own - tag_bos) / tag_total.clamp_min(1e-12), 0.0)
                by_tag[c] = by_tag[c] + tag_share.sum(0).cpu().numpy()
                raw_by_tag[c] = raw_by_tag[c] + tag_mass.sum(0).cpu().numpy()
            # P6, excluded convention: share of the attention on keys 1..q-1 that goes to earlier VBDs
            sums["vbd_x"].append(per_seq(share[..., 1], has_earlier).cpu())
            # appendix D: attention to NN from every query (q >= 2), summed by the query's tag, per paragraph
            from_q = onehot * (valid & (pos >= 2))[..., None]  # [b, q, T]
            for name, x in (("to_nn", share[..., 2]), ("to_nn_raw", mass[..., 2])):
                sums[name].append(torch.einsum("lnhq,nqt->nlht", x, from_q).cpu())
            # fig 4c: from "the"/PRP$ before a noun with >= 2 earlier noun runs, is the most attended
            # earlier noun in the most recent run? (argmax is the same in both conventions; read
            # only at the asked queries)
            inner_keys = (pos[None, :] >= 1) & earlier
            recent = torch.as_tensor(run_start[start:stop], device=dev)
            asked = cls["prp_the_before_noun"] & torch.as_tensor(n_runs[start:stop] >= 2, device=dev)
            hit = torch.zeros(L, b, H, P, device=dev)
            n_idx, q_idx = asked.nonzero(as_tuple=True)
            if len(n_idx):
                rows = pat[:, n_idx, :, q_idx]  # [A, L, H, k]
                noun_key = (cls["noun"][n_idx] & inner_keys[q_idx])[:, None, None]  # [A, 1, 1, k]
                best = rows.masked_fill(~noun_key, -1.0).max(-1)
                found = (best.indices >= recent[n_idx, q_idx][:, None, None]) & (best.values > 0)  # [A, L, H]
                hit[:, n_idx, :, q_idx] = found.float()
            chance = torch.as_tensor(1.0 / np.maximum(n_runs[start:stop], 1), device=dev, dtype=torch.float32)
            sums["recent"].append(torch.stack([per_seq(hit, asked).cpu(),
                                               asked.sum(-1).float().cpu()[:, None, None].expand(b, L, H),
                                               (chance * asked).sum(-1).cpu()[:, None, None].expand(b, L, H)], -1))
            if start <= self._example_seq < stop:
                e = self._example_seq - start
                self._example = pat[:, e, :, :EXAMPLE_WIDTH, :EXAMPLE_WIDTH].cpu().numpy()
            start = stop
        self.keys, self.queries = torch.cat(keys, 1), torch.cat(queries, 1)  # [L, word tokens, H, d], on the device
        self.activity = np.concatenate(activity, 1)  # [L, n, pos, H]
        cat = {k: torch.cat(v).numpy() for k, v in sums.items()}
        self._open_sum, self._close_self, self._close_open = cat["open"], cat["close_self"], cat["close_open"]
        self._quote_self = cat["quote_self"]
        self._vbd_sum, self._vbd_count = cat["vbd"][..., 0], cat["vbd"][:, 0, 0, 1]
        self._vbd_share = cat["vbd_x"]
        self._to_nn = {"excluded": cat["to_nn"], "included": cat["to_nn_raw"]}  # [n, L, H, T]
        q_tag = np.where(self.valid & (np.arange(tags.shape[1]) >= 2), tag_id, -1)
        self._to_nn_rows = np.stack([np.bincount(r[r >= 0], minlength=len(self.tag_names)) for r in q_tag])  # [n, T]
        self._recent_hits, self._recent_rows, self._recent_chance = (cat["recent"][..., i] for i in range(3))
        self._by_tag = {c: (by_tag[c], by_tag_rows[c]) for c in QUERY_CLASSES}
        self._raw_by_tag = raw_by_tag
        self._probes: dict = {}

    # ------------------------------------------------------------- token classes

    def before_vbd(self) -> np.ndarray:
        return self.classes["before_vbd"]

    def prp_dt_before_noun(self) -> np.ndarray:
        return self.classes["prp_dt_before_noun"]

    def prp_the_before_noun(self) -> np.ndarray:
        """PRP$ or the definite article ("the"/"The", tagged DT) right before a noun (§5.3)."""
        return self.classes["prp_the_before_noun"]

    # ------------------------------------------------------------- probes (§4.1)

    def held_out_counts(self, tags) -> dict[str, int]:
        """Number of test-split tokens of each tag (paragraphs after the first n_train)."""
        return {t: int((self.tags[self.n_train :] == t).sum()) for t in tags}

    def probe(self, kind: str, heads=None, shuffled: bool = False) -> ProbeResult:
        """One multinomial logistic-regression probe per head on its key or query vectors
        (standardised), trained on the first n_train paragraphs' word tokens, predicting the
        rest. `shuffled` permutes the training labels (the chance baseline). Memoised."""
        key = (kind, None if heads is None else tuple(heads), shuffled)
        if key not in self._probes:
            self._probes[key] = self._fit(kind, heads, shuffled)
        return self._probes[key]

    def _fit(self, kind, heads, shuffled) -> ProbeResult:
        feats = self.keys if kind == "key" else self.queries  # [L, N, H, d]
        L, N, H, d = feats.shape
        labels = np.where(np.isin(self.tags, PROBE_TAGS), self.tags, "OTHER")[self.valid]
        paragraph = np.nonzero(self.valid)[0]
        train = paragraph < self.n_train
        y_train = labels[train]
        if shuffled:
            y_train = np.random.default_rng(self.seed).permutation(y_train)
        classes = np.unique(y_train)
        x = feats.permute(0, 2, 1, 3).reshape(L * H, N, d)
        chosen = list(heads) if heads is not None else [(l, h) for l in range(L) for h in range(H)]
        x = x[[l * H + h for l, h in chosen]]
        mask = torch.as_tensor(train, device=x.device)
        x_train, x_test = probes.standardise(x[:, mask], x[:, ~mask])
        y = torch.as_tensor(np.searchsorted(classes, y_train), device=x.device)
        W, b = probes.fit_multinomial(x_train, y, len(classes))
        predicted = np.full((L, H, int((~train).sum())), len(classes), dtype=np.int64)  # heads not probed
        out = probes.predict(x_test, W, b).cpu().numpy()
        for i, (l, h) in enumerate(chosen):
            predicted[l, h] = out[i]
        return ProbeResult(np.append(classes, "(not probed)"), predicted, labels[~train], paragraph[~train] - self.n_train)

    def probe_f1(self, kind: str, tags=("``", "''"), heads=None, shuffled: bool = False) -> dict[str, np.ndarray]:
        """Per-tag held-out F1 per head: {tag: [L, H]} (NaN for heads not probed)."""
        result = self.probe(kind, heads, shuffled)
        out = {t: result.f1(t) for t in tags}
        if heads is not None:
            keep = np.zeros(out[tags[0]].shape, dtype=bool)
            for l, h in heads:
                keep[l, h] = True
            out = {t: np.where(keep, v, np.nan) for t, v in out.items()}
        return out

    # ------------------------------------------------------------- activity (§4.2)

    def activity_ratio(self, mask: np.ndarray, seqs=None) -> np.ndarray:
        """Mean activity on `mask` tokens / mean activity on the other word tokens: [L, H]."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        act, m, v = self.activity[:, seqs], mask[seqs], self.valid[seqs]
        return act[:, m].mean(1) / act[:, v & ~m].mean(1)

    # ------------------------------------------------------------- attention by class (§4.3)

    def attention_to_opening_quote(self, seqs=None) -> np.ndarray:
        """From tokens inside a quotation, attention on its opening quote: [L, H]."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        return self._open_sum[seqs].sum(0) / self.in_quote[seqs].sum()

    def closing_quote_attention(self) -> dict[str, np.ndarray]:
        """At the closing quote: attention on itself vs on the opening quote: {to: [L, H]}."""
        count = self.classes["closing"].sum()
        if count == 0:
            return {}
        return {"closing": self._close_self.sum(0) / count, "opening": self._close_open.sum(0) / count}

    def closing_shift(self, seqs=None) -> np.ndarray:
        """The shift to the end mark: at the closing quote, attention on itself (the end mark) minus
        attention on its opening quote (mean over closing quotes), less the head's own attention on
        itself inside quotations (mean over in-quote tokens): [L, H] (NaN without a closed
        quotation). Why the last term: a current-token head attends to itself at the closing quote
        too; only attention to the end mark beyond the head's in-quote habit is a shift."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        count, inside = self.classes["closing"][seqs].sum(), self.in_quote[seqs].sum()
        diff = (self._close_self[seqs] - self._close_open[seqs]).sum(0)
        if not count or not inside:
            return np.full(diff.shape, np.nan)
        return diff / count - self._quote_self[seqs].sum(0) / inside

    def attention_to_earlier_vbd(self, convention: str = "excluded", seqs=None) -> np.ndarray:
        """From the token right before a VBD (with an earlier VBD in its paragraph), attention on
        earlier VBD tokens: [L, H]. "excluded": share of the attention on keys other than BOS and
        self; "included": mass of the raw pattern (BOS and self kept)."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        count = self._vbd_count[seqs].sum()
        sums = (self._vbd_share if convention == "excluded" else self._vbd_sum)[seqs]
        return sums.sum(0) / count if count else np.full(sums.shape[1:], np.nan)

    def earlier_vbd_queries(self) -> int:
        """How many tokens right before a VBD have an earlier VBD in their paragraph (P6's queries)."""
        return int(self._vbd_count.sum())

    def attention_to_nn_by_query_tag(self, convention: str = "excluded", seqs=None, min_tokens: int = 1):
        """Appendix D: mean attention on NN tokens from query tokens of each tag (q >= 2), per head:
        ({tag: [L, H]}, {tag: query tokens}) for the tags with >= `min_tokens` queries."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        sums, rows = self._to_nn[convention][seqs].sum(0), self._to_nn_rows[seqs].sum(0)  # [L, H, T], [T]
        keep = [i for i, t in enumerate(self.tag_names) if rows[i] >= min_tokens and t != "(none)"]
        return ({str(self.tag_names[i]): sums[..., i] / rows[i] for i in keep},
                {str(self.tag_names[i]): int(rows[i]) for i in keep})

    def to_nn_per_paragraph(self, layer: int, head: int, convention: str = "excluded") -> tuple[np.ndarray, np.ndarray]:
        """One head's appendix-D sums per paragraph: attention on NN summed by query tag [n, T], and
        the query tokens of each tag [n, T] (tags: self.tag_names); for bootstrap CIs."""
        return self._to_nn[convention][:, layer, head], self._to_nn_rows

    def most_recent_noun(self, seqs=None) -> tuple[np.ndarray, int, float]:
        """Fig 4c: from "the"/PRP$ right before a noun, with >= 2 earlier noun runs, the fraction of
        queries whose most attended earlier noun token lies in the most recent noun run: [L, H];
        also the number of such queries and the chance level (mean of 1 / number of runs)."""
        seqs = np.arange(self.tags.shape[0]) if seqs is None else seqs
        rows = self._recent_rows[seqs, 0, 0].sum()
        if not rows:
            return np.full(self._recent_hits.shape[1:], np.nan), 0, float("nan")
        return self._recent_hits[seqs].sum(0) / rows, int(rows), float(self._recent_chance[seqs, 0, 0].sum() / rows)

    def attention_by_tag(self, query_class: str, layer: int, head: int) -> dict[str, float]:
        """Share of a head's attention (BOS and self excluded, renormalised) that goes to each POS
        tag, averaged over the `query_class` tokens (QUERY_CLASSES; appendix C/D)."""
        sums, rows = self._by_tag[query_class]
        if rows[layer, head] == 0:
            return {}
        shares = sums[layer, head] / rows[layer, head]
        return {str(t): float(v) for t, v in sorted(zip(self.tag_names, shares), key=lambda kv: -kv[1]) if v > 0}

    def noun_share(self, query_class: str, convention: str = "excluded") -> np.ndarray:
        """[L, H]: attention going to nouns from `query_class` tokens (q >= 2): the share of the
        attention on keys other than BOS and self ("excluded"), or the raw mass ("included")."""
        sums = self._by_tag[query_class][0] if convention == "excluded" else self._raw_by_tag[query_class]
        rows = (self.classes[query_class][:, 2:]).sum()
        noun = np.isin(self.tag_names, NOUNS)
        return sums[..., noun].sum(-1) / rows if rows else np.full(sums.shape[:2], np.nan)

    def example_pattern(self, layer: int, head: int) -> dict:
        """A head's pattern on the first paragraph with a quotation (first EXAMPLE_WIDTH tokens)."""
        ids = self.tokens[self._example_seq, :EXAMPLE_WIDTH].tolist()
        return {"head": f"L{layer}H{head}", "tokens": self.decode(ids), "pattern": self._example[layer, head].round(3)}


_TAGGED: dict = {}


@dataclass(frozen=True)
class PaperText:
    """The paper's input (§2, §4): TinyStories validation paragraphs in file order (the data
    directory's offline sample, $MECHCHECK_DATA, else the hub's file), at most `max_tokens` tokens
    each, BOS first, tagged by NLTK (mechcheck.data.tagging); the probes train on the first
    `n_train` paragraphs and are tested on the paragraphs that follow, until every tag of
    `held_out_tags` has `min_held_out` tokens.

    Why an object: it is every POS claim's preparation (`Measure(fn, on=PaperText(...))`), so the
    claim's model and each control model are run on the very same text with the same settings, and
    the constructed control models read their token classes off the same tagged text."""

    n_train: int
    min_held_out: int
    held_out_tags: tuple
    max_tokens: int = 128

    def texts(self) -> list[str]:
        data = data_dir()
        tagging.use_data_dir(data)
        return paragraphs(tinystories_validation(data))

    def tagged(self, tokenizer) -> tuple[torch.Tensor, np.ndarray]:
        """(tokens, tags) as tag_paragraphs gives them; tagged once per tokenizer vocabulary and data
        directory in a process (the claim's model and its controls share the tokenizer)."""
        vocab = hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode()).hexdigest()
        key = (self, vocab, str(data_dir()))
        if key not in _TAGGED:
            _TAGGED[key] = tag_paragraphs(tokenizer, self.texts(), self.max_tokens, self.n_train, self.min_held_out,
                                          self.held_out_tags)
        return _TAGGED[key]

    def __call__(self, bridge) -> "POSRun":
        """The model's POSRun on this text (one forward pass, the reductions every claim reads)."""
        return POSRun(bridge, [], self.max_tokens, n_train=self.n_train, tagged=self.tagged(bridge.tokenizer))


def best_head(head_map: np.ndarray) -> str:
    """The location-free form: which head fits the signature best in this checkpoint."""
    l, h = np.unravel_index(np.nanargmax(head_map), head_map.shape)
    return f"L{l}H{h}"
