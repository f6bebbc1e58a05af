"""Attention-head roles as scores: how much of a head's attention goes where a role says.

Why: the one-layer TinyStories post describes heads in prose ("attends to the current token",
"to the preceding structural pivot", "to the opening speech mark inside speech"). Each phrase
becomes a score in [0, 1] per head: the mean, over the queries the phrase is about, of the
attention mass on the keys it names. A claim then says which heads lead that score.

Token classes come from the model's string tokens (GPT-2 BPE), position 0 being BOS when the
model prepends it:
- pivot: BOS, or a token containing "," or "." (the post: "start of text token, comma, and full
  stop");
- speech marks: tokens containing '"'; they alternate opening / closing in reading order;
- in speech: tokens after an opening mark, before its closing mark;
- proper noun: a capitalised alphabetic word, other than "I", seen at least once in the text
  where it does not start a sentence (the post's examples are the names Lucy and Tom; a name
  that also starts a sentence, "... it". Tom says", still counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SENTENCE_ENDS = (".", "!", "?", ":", '"')


@dataclass
class TokenClasses:
    """Index sets over one sequence of string tokens."""

    n: int
    has_bos: bool
    pivots: list[int] = field(default_factory=list)
    opening: list[int] = field(default_factory=list)
    closing: list[int] = field(default_factory=list)
    opening_of: dict[int, int] = field(default_factory=dict)  # in-speech or closing pos -> its opening mark
    proper_nouns: list[int] = field(default_factory=list)
    commas: list[int] = field(default_factory=list)

    @property
    def in_speech(self) -> list[int]:
        closing = set(self.closing)
        return [q for q in sorted(self.opening_of) if q not in closing]


def classify(str_tokens: list[str], has_bos: bool) -> TokenClasses:
    tc = TokenClasses(n=len(str_tokens), has_bos=has_bos)
    open_pos = None
    prev_text = ""
    names: set[str] = set()
    for i, tok in enumerate(str_tokens):
        text = tok.strip()
        if i == 0 and has_bos:
            tc.pivots.append(0)
            prev_text = "."
            continue
        if "," in text or "." in text:
            tc.pivots.append(i)
        if "," in text:
            tc.commas.append(i)
        if '"' in text:
            for _ in range(text.count('"')):
                if open_pos is None:
                    open_pos = i
                    tc.opening.append(i)
                else:
                    tc.closing.append(i)
                    tc.opening_of[i] = open_pos
                    open_pos = None
        elif open_pos is not None:
            tc.opening_of[i] = open_pos
        starts_sentence = not prev_text or prev_text[-1] in SENTENCE_ENDS
        if _capitalised(text) and not starts_sentence and tok.startswith(" "):
            names.add(text)
        if text:
            prev_text = text
    start = 1 if has_bos else 0
    tc.proper_nouns = [i for i in range(start, len(str_tokens)) if str_tokens[i].strip() in names]
    return tc


def _capitalised(text: str) -> bool:
    return text.isalpha() and text[0].isupper() and text != "I"


def _mean_mass(pattern: np.ndarray, queries: list[int], keys_of) -> np.ndarray:
    """pattern [head, q, k]; mean over `queries` of the attention mass on keys_of(q) -> [head]."""
    rows = []
    for q in queries:
        keys = [k for k in keys_of(q) if 0 <= k <= q]
        rows.append(pattern[:, q, keys].sum(-1) if keys else np.zeros(pattern.shape[0]))
    if not rows:
        return np.full(pattern.shape[0], np.nan)
    return np.mean(rows, axis=0)


def _first_query(tc: TokenClasses) -> int:
    return 1 if tc.has_bos else 0


def current_token(pattern, tc: TokenClasses) -> np.ndarray:
    """Heads 4 and 8: attention on the query token itself (BOS row excluded: it has no choice)."""
    return _mean_mass(pattern, list(range(max(_first_query(tc), 1), tc.n)), lambda q: [q])


def previous_token(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 6: attention on the token before, at every query except closing speech marks."""
    closing = set(tc.closing)
    qs = [q for q in range(1, tc.n) if q not in closing]
    return _mean_mass(pattern, qs, lambda q: [q - 1])


def closing_to_opening(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 6's exception: from a closing speech mark to its opening one."""
    return _mean_mass(pattern, tc.closing, lambda q: [tc.opening_of[q]])


def preceding_pivot(pattern, tc: TokenClasses) -> np.ndarray:
    """Heads 1 and 2: attention on the latest pivot (BOS, comma, full stop) before the query."""
    pivots = np.array(tc.pivots)

    def latest(q):
        before = pivots[pivots < q]
        return [int(before[-1])] if len(before) else []

    qs = [q for q in range(1, tc.n) if latest(q)]
    return _mean_mass(pattern, qs, latest)


def opening_speech_mark(pattern, tc: TokenClasses) -> np.ndarray:
    """Heads 5 and 11: from tokens inside speech, attention on the opening speech mark."""
    return _mean_mass(pattern, tc.in_speech, lambda q: [tc.opening_of[q]])


def narrative_anchors(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 14: from speech marks, attention on BOS, commas and earlier proper nouns."""
    anchors = sorted(set(([0] if tc.has_bos else []) + tc.commas + tc.proper_nouns))
    marks = sorted(tc.opening + tc.closing)
    return _mean_mass(pattern, marks, lambda q: [k for k in anchors if k < q])


ROLES = {
    "current_token": current_token,
    "previous_token": previous_token,
    "closing_to_opening": closing_to_opening,
    "preceding_pivot": preceding_pivot,
    "opening_speech_mark": opening_speech_mark,
    "narrative_anchors": narrative_anchors,
}


def patterns(bridge, text: str, layer: int = 0, max_tokens: int | None = None):
    """(pattern [head, q, k] as numpy, string tokens, token ids) of one text, BOS prepended
    (TransformerLens's default, which the post used)."""
    import torch

    tokens = bridge.to_tokens(text)  # prepends BOS
    if max_tokens:
        tokens = tokens[:, :max_tokens]
    name = f"blocks.{layer}.attn.hook_pattern"
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n == name)
    str_tokens = [bridge.tokenizer.decode([t]) for t in tokens[0].tolist()]
    return cache[name][0].float().cpu().numpy(), str_tokens, tokens[0].tolist()


def role_scores(bridge, texts: list[str], max_tokens: int | None = None) -> dict[str, np.ndarray]:
    """Every role's per-head score on every text: {role: [n_texts, n_heads]} (NaN where a text
    has no query of that role, e.g. no closing speech mark)."""
    out: dict[str, list] = {role: [] for role in ROLES}
    for text in texts:
        pattern, str_tokens, _ = patterns(bridge, text, max_tokens=max_tokens)
        tc = classify(str_tokens, has_bos=True)
        for role, fn in ROLES.items():
            out[role].append(fn(pattern, tc))
    return {role: np.stack(rows) for role, rows in out.items()}
