"""Models of TinyStories-1M's shape with the paper's heads built in: the positive and negative
controls of the POS-head claims (claims/test_pos_heads_tinystories_1m.py).

Why constructed: no trained model is known to have a quotation head at L2H0, a past-tense head at
L6H4 and a definite-noun head at L5H5, so the controls build them. A native model of the 1M
shape (8 layers, d_model 64, 16 heads of 4, the GPT-2 vocabulary, random weights otherwise)
whose embeddings mark token classes, whose key (query) weights read those marks with a chosen
strength per head, and whose three named heads get their attention pattern from the input ids (a
permanent hook on hook_pattern; `embed.hook_in` hands the ids over). The claims' bound measure
then runs on it exactly as on TinyStories-1M: the same PaperText, the same probes, the same
reductions. The token classes come from the claim's own tagged text (each token's majority tag:
what a token-level model can know).

Layouts (`LAYOUTS`):
- "paper": what the paper describes. Keys read VBD high early and falling with depth, L6H4 the late
  exception; CC read by 24 early heads; MD by 3 heads; L5H5's query reads PRP$. L2H0 attends from
  inside a quotation to its opening quote and, at the closing quote, to the end mark; its value
  reads the opening-quote mark (active inside quotations). L6H4 attends, from the token right
  before a past-tense verb, to the last earlier one (its value reads the VBD mark: active there),
  elsewhere to BOS. L5H5 attends, from PRP$ and "the", to the last noun (its value reads the noun
  mark), elsewhere to BOS.
- "swapped": the same model with the other readings: VBD rising with depth, CC read by late heads,
  MD by 48 heads, no PRP$ query reading; L2H0 stays on the opening quote at the closing one; L6H4
  attends to the last noun from every token; L5H5 attends from "a"/"an" to the first noun.
- "current-token": "paper" with L2H0 attending to the current token everywhere (a current-token
  head must not pass P3.closing).
- `random_weights()`: the same architecture and seed without any of it.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from mechcheck.core.claim import negative, positive
from mechcheck.data import data_dir, gpt2_tokenizer
from mechcheck.models import checkpoints
from mechcheck.studies.pos_heads import NOUNS, PaperText

N_LAYERS, D_MODEL, N_HEADS, D_HEAD, D_MLP, D_VOCAB = 8, 64, 16, 4, 256, 50257  # TinyStories-1M
SEED = 3
# Embedding dimensions that mark token classes: 1 opening quote, 2 other quote tokens, then the
# tokens whose majority tag is VBD, CC, MD, a noun, PRP$.
OPEN, QUOTE = 1, 2
MARK = {"VBD": 3, "CC": 4, "MD": 5, "noun": 6, "PRP$": 7}
STRENGTH = 3.0  # of a mark in the embedding, and of a head reading it
FALLING = (3.0, 2.0, 1.2, 0.6, 0.0, 0.0, 0.0, 0.0)  # VBD key reading per layer ("paper")
EXCEPTION = 1.5  # L6H4's VBD reading: high, yet below the early heads' (not the argmax of all 128)
LAYOUTS = ("paper", "swapped", "current-token")  # no "faint" VBD layout: the probes standardise, a weaker reading decodes as well


def config():
    """The constructed model's TransformerLens config (built at first use: checkpoints.bridge_config)."""
    return checkpoints.bridge_config(n_layers=N_LAYERS, d_model=D_MODEL, n_heads=N_HEADS, d_head=D_HEAD, d_mlp=D_MLP,
                                     d_vocab=D_VOCAB, n_ctx=256, act_fn="gelu", normalization_type="LNPre", seed=SEED)


def lexicon(tokenizer, text: PaperText) -> dict[str, set]:
    """Token ids by their majority tag in the claim's tagged text, plus the definite words (PRP$
    and "the") and the indefinite articles ("a", "an")."""
    tokens, tags = text.tagged(tokenizer)
    votes: dict = {}
    for i, t in zip(tokens.numpy().ravel().tolist(), tags.ravel().tolist()):
        if t:
            votes.setdefault(i, {}).setdefault(t, 0)
            votes[i][t] += 1
    major = {i: max(v, key=v.get) for i, v in votes.items()}
    word = {i: tokenizer.decode([i]).strip().lower() for i in major}
    out = {k: {i for i, t in major.items() if t == k} for k in ("VBD", "CC", "MD", "PRP$")}
    out["noun"] = {i for i, t in major.items() if t in NOUNS}
    out["definite"] = out["PRP$"] | {i for i in major if word[i] == "the"}
    out["indefinite"] = {i for i in major if word[i] in ("a", "an")}
    return out


def key_reads(layout: str) -> dict[str, np.ndarray]:
    """[L, H] strength with which each head's key reads the VBD, CC and MD marks."""
    vbd, cc, md = np.zeros((N_LAYERS, N_HEADS)), np.zeros((N_LAYERS, N_HEADS)), np.zeros((N_LAYERS, N_HEADS))
    falling = np.array(FALLING)[:, None]
    if layout == "swapped":
        vbd[:] = falling[::-1]
        cc[4:8, 0:6] = STRENGTH
        md[0:6, 8:16] = STRENGTH
    else:
        vbd[:] = falling
        vbd[6, 4] = EXCEPTION
        cc[0:4, 0:6] = STRENGTH
        md[1, 7] = md[3, 9] = md[6, 2] = STRENGTH
    return {"VBD": vbd, "CC": cc, "MD": md}


def _head_reads(weight, head: int, dim: int, strength: float, out: bool = False) -> None:
    """Head `head`'s slice of a projection reads (writes, `out`) only residual dimension `dim`."""
    rows = slice(D_HEAD * head, D_HEAD * (head + 1))
    if out:
        weight[:, rows] = 0.0
        weight[:, D_HEAD * head] = 1.0
    else:
        weight[rows] = 0.0
        weight[D_HEAD * head, dim] = strength


def _targets(layout: str, lex: dict, quote_ids: set, opening: int, starts: set) -> dict:
    """(layer, head) -> function(row of ids) -> the key each query attends to."""

    def quotation(row, closing_shift=True):
        out, open_pos = [], -1
        for q, t in enumerate(row):
            if t == opening:
                open_pos = q
                out.append(0)
            elif t in quote_ids:
                out.append(q if closing_shift and t not in starts and open_pos >= 0 else max(open_pos, 0))
                open_pos = -1
            else:
                out.append(open_pos if open_pos >= 0 else 0)
        return out

    def last_of(row, ids, only=None, first=False, before=None):
        """Each query attends to the last (first) earlier token of `ids`, when the query is in
        `only` (or the next token is in `before`); else to BOS."""
        out, seen = [], []
        for q, t in enumerate(row):
            asked = (only is None or t in only) and (before is None or (q + 1 < len(row) and row[q + 1] in before))
            out.append((seen[0] if first else seen[-1]) if seen and asked else 0)
            if q >= 1 and t in ids:
                seen.append(q)
        return out

    if layout == "swapped":
        return {(2, 0): partial(quotation, closing_shift=False), (6, 4): lambda r: last_of(r, lex["noun"]),
                (5, 5): lambda r: last_of(r, lex["noun"], only=lex["indefinite"], first=True)}
    l2h0 = (lambda r: list(range(len(r)))) if layout == "current-token" else quotation
    return {(2, 0): l2h0, (6, 4): lambda r: last_of(r, lex["VBD"], before=lex["VBD"]),
            (5, 5): lambda r: last_of(r, lex["noun"], only=lex["definite"])}


def random_weights():
    """The 1M-shaped native model with random weights (seed SEED), the GPT-2 tokenizer."""
    return checkpoints.bridge(checkpoints.new_model(config(), SEED), gpt2_tokenizer(data_dir()))


def constructed(layout: str, text: PaperText):
    """The 1M-shaped model with the heads of `layout` (LAYOUTS) built in, its token classes read
    off `text` (the claim's PaperText): a TransformerBridge with its hooks installed."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    tok = gpt2_tokenizer(data_dir())
    lex = lexicon(tok, text)
    model = checkpoints.new_model(config(), SEED)
    quote_ids = {i for i in range(D_VOCAB) if '"' in tok.decode([i])}
    opening = tok.encode(' "')[0]
    starts = {i for i in quote_ids if tok.decode([i]).strip().startswith('"')}  # ' "', '"', '"I' ... open
    reads = key_reads(layout)
    with torch.no_grad():
        emb = model.tok_embed.weight
        emb[:, : max(MARK.values()) + 1] = 0.0
        emb[sorted(quote_ids), QUOTE] = STRENGTH
        emb[sorted(starts), QUOTE] = 0.0
        emb[sorted(starts), OPEN] = STRENGTH
        for name, dim in MARK.items():
            emb[sorted(lex[name]), dim] = STRENGTH
        for layer in range(N_LAYERS):
            k = model.layers[layer].attn.k.weight
            k[:, MARK["VBD"] : MARK["MD"] + 1] = 0.0
            model.layers[layer].attn.q.weight[:, MARK["PRP$"]] = 0.0  # no query reads PRP$ by chance
            for h in range(N_HEADS):
                for j, name in enumerate(("VBD", "CC", "MD")):
                    k[D_HEAD * h + j, MARK[name]] = reads[name][layer, h]
        attn = model.layers[2].attn  # L2H0: keys read the quote marks, its value the opening-quote mark
        attn.k.weight[0:D_HEAD] = 0.0
        attn.k.weight[0, OPEN], attn.k.weight[1, QUOTE] = STRENGTH, STRENGTH
        _head_reads(attn.v.weight, 0, OPEN, 5.0)
        _head_reads(attn.o.weight, 0, 0, 0.0, out=True)
        attn = model.layers[6].attn  # L6H4's value reads the VBD mark
        _head_reads(attn.v.weight, 4, MARK["VBD"], 5.0)
        _head_reads(attn.o.weight, 4, 0, 0.0, out=True)
        attn = model.layers[5].attn  # L5H5's value reads the noun mark; its query the PRP$ mark ("paper")
        _head_reads(attn.v.weight, 5, MARK["noun"], 5.0)
        _head_reads(attn.o.weight, 5, 0, 0.0, out=True)
        if layout != "swapped":
            _head_reads(attn.q.weight, 5, MARK["PRP$"], STRENGTH)
    bridge = checkpoints.bridge(model, tok)
    targets = _targets(layout, lex, quote_ids, opening, starts)
    batch: dict = {}

    def keep_ids(ids, hook):
        batch["rows"] = ids.tolist()
        return ids

    def set_pattern(layer):
        def hook(pattern, hook):
            pattern = pattern.clone()
            for (l, h), target in targets.items():
                if l != layer:
                    continue
                for b, row in enumerate(batch["rows"]):
                    pattern[b, h] = 0.0
                    pattern[b, h, torch.arange(len(row)), torch.tensor(target(row))] = 1.0
            return pattern
        return hook

    bridge.add_hook("embed.hook_in", keep_ids, is_permanent=True)
    for layer in sorted({l for l, _ in targets}):
        bridge.add_hook(f"blocks.{layer}.attn.hook_pattern", set_pattern(layer), is_permanent=True)
    return bridge


def controls(text: PaperText) -> dict:
    """The control models of the POS claims, built on the claim's text: {name: Control}. Kinds are
    those of most claims (the paper's layout positive, the others negative); a claim whose reading
    the swapped layout has (P6.nouns) turns its kind with dataclasses.replace."""
    return {
        "paper": positive("paper's heads", partial(constructed, "paper", text),
                          "1M-shaped model with L2H0, L6H4, L5H5 and the probe layout of the paper built in"),
        "swapped": negative("swapped heads", partial(constructed, "swapped", text),
                            "the same model with the other readings (VBD rising, CC late, MD in 48 heads, L2H0 stays "
                            "on the opening quote, L6H4 on the last noun, L5H5 from a/an to the first noun)"),
        "current-token": negative("current-token L2H0", partial(constructed, "current-token", text),
                                  "the paper's layout with L2H0 attending to the current token everywhere"),
        "random": negative("random weights", random_weights, "the 1M-shaped model with random weights"),
    }
