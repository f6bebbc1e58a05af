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

from mechcheck.core.claim import ClaimError

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
