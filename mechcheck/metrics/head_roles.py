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
import torch

from mechcheck.metrics.activations import cached

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
    str_tokens: list[str] = field(default_factory=list)

    @property
    def in_speech(self) -> list[int]:
        closing = set(self.closing)
        return [q for q in sorted(self.opening_of) if q not in closing]


def classify(str_tokens: list[str], has_bos: bool) -> TokenClasses:
    tc = TokenClasses(n=len(str_tokens), has_bos=has_bos, str_tokens=list(str_tokens))
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
    """pattern [head, q, k]; mean over `queries` of the attention mass on keys_of(q) -> [head]
    (a query without keys counts as 0). One weighted sum over a [query, key] count matrix, not a
    numpy call per query: the blog claims' controls score 28 models x 128 texts x 30 roles, and the
    per-query calls were 16 s of their 80 (issue #24)."""
    if not len(queries):
        return np.full(pattern.shape[0], np.nan)
    rows, cols = [], []
    for i, q in enumerate(queries):
        keys = [k for k in keys_of(q) if 0 <= k <= q]
        rows += [i] * len(keys)
        cols += keys
    weight = np.zeros((len(queries), pattern.shape[2]), dtype=pattern.dtype)
    np.add.at(weight, (rows, cols), 1)  # a key named twice counts twice, as in a sum over the list
    return np.einsum("hik,ik->h", pattern[:, queries], weight) / len(queries)


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


def prior_proper_nouns(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 14 ("attends to prior proper nouns on speech marks"): from speech marks, attention on
    earlier proper nouns only (BOS and commas excluded: a BOS-sink or pivot head hits those)."""
    marks = [q for q in sorted(tc.opening + tc.closing) if any(k < q for k in tc.proper_nouns)]
    return _mean_mass(pattern, marks, lambda q: [k for k in tc.proper_nouns if k < q])


def closing_opening_over_previous(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 6 at a closing speech mark: attention on its opening mark minus attention on the
    previous token ("aside from the closing speech mark, attends to the starting speech mark
    instead"), averaged over the closing marks whose previous token is not the opening mark."""
    qs = [q for q in tc.closing if tc.opening_of[q] != q - 1]
    if not qs:
        return np.full(pattern.shape[0], np.nan)
    return np.mean([pattern[:, q, tc.opening_of[q]] - pattern[:, q, q - 1] for q in qs], axis=0)


def proper_nouns_to_proper_nouns(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 9 ("current and previous proper nouns"): from a proper noun that has an earlier
    proper noun, attention on itself and the earlier proper nouns."""
    names = tc.proper_nouns
    qs = [q for q in names if any(k < q for k in names)]
    return _mean_mass(pattern, qs, lambda q: [k for k in names if k <= q])


def speech_delimiters(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 0 ("speech delimiters"): from every token after the first speech mark, attention on
    the earlier speech marks (the query itself excluded, so a current-token head scores 0)."""
    marks = sorted(tc.opening + tc.closing)
    qs = [q for q in range(tc.n) if marks and q > marks[0]]
    return _mean_mass(pattern, qs, lambda q: [k for k in marks if k < q])


def _positions(tc: TokenClasses, word: str) -> list[int]:
    return [i for i, t in enumerate(tc.str_tokens) if t.strip() == word]


def self_at(word: str):
    """Heads 1 and 2 ("for the word 'but', only attends to itself"): attention of `word`'s
    tokens on themselves."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        return _mean_mass(pattern, _positions(tc, word), lambda q: [q])
    return score


def attended_within_clause(*words: str, skip_next: bool = False):
    """Heads 1/2 ("strongly attends to the token 'But'" / "the word 'a'"), head 5 (the start of a
    co-ordinating junction): attention on a `words` token from the tokens after it, up to (not
    including) the next pivot. `skip_next`: leave out the token right after it, whose previous
    token it is (there a previous-token head would pass: short TinyStories junctions, 'and played.')."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        pivots, qs, key_of = set(tc.pivots), [], {}
        for k in sorted(k for w in words for k in _positions(tc, w)):
            for q in range(k + 1 + int(skip_next), tc.n):
                if q in pivots:
                    break
                qs.append(q)
                key_of.setdefault(q, []).append(k)
        return _mean_mass(pattern, qs, lambda q: key_of[q])
    return score


# Co-ordinating conjunctions that open a junction ("for" left out: the prompt's "looking for" is
# the preposition).
CONJUNCTIONS = ("and", "but", "or", "nor", "so", "yet")


def clause_openers(tc: TokenClasses) -> list[int]:
    """Where a clause starts (head 5's "start of a clause and the start of a co-ordinating
    junction"): BOS, speech marks, co-ordinating conjunctions, and the token after one ending a
    sentence (. ! ?), or that token itself when it carries a speech mark (the prompt's '".', which
    the post says all following tokens attend to). Commas do not open a clause: the post's own
    example has every token of "One day, Lucy asks Tom" up to ':' attending to BOS."""
    out = {0} if tc.has_bos else set()
    out.update(tc.opening + tc.closing)
    for i, tok in enumerate(tc.str_tokens):
        text = tok.strip()
        if (i or not tc.has_bos) and text in CONJUNCTIONS:
            out.add(i)
        if (i or not tc.has_bos) and text and text[-1] in ".!?" and '"' not in text and i + 1 < tc.n:
            out.add(i + 1)
    return sorted(out)


def clause_start(tc: TokenClasses, q: int, openers: list[int] | None = None) -> int | None:
    """The latest clause opener before `q` (None when there is none)."""
    before = [k for k in (openers if openers is not None else clause_openers(tc)) if k < q]
    return before[-1] if before else None


def clause_span(tc: TokenClasses, q: int, openers: list[int] | None = None) -> list[int]:
    """The other tokens of `q`'s clause: from its opener (BOS excluded) to q - 1."""
    start = clause_start(tc, q, openers)
    if start is None:
        return []
    return list(range(max(start, 1 if tc.has_bos else 0), q))


def clause_start_role(pattern, tc: TokenClasses) -> np.ndarray:
    """Heads 5, 11, 15 ("attends to the start of a clause"): attention on the query's latest clause
    opener."""
    openers = clause_openers(tc)
    qs = [q for q in range(1, tc.n) if clause_start(tc, q, openers) is not None]
    return _mean_mass(pattern, qs, lambda q: [clause_start(tc, q, openers)])


def _clause_queries(tc: TokenClasses):
    openers = clause_openers(tc)
    spans = {q: clause_span(tc, q, openers) for q in range(1, tc.n)}
    return {q: s for q, s in spans.items() if len(s) >= 2}


def within_clause_mass(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 10 ("attends to all of the other tokens within same clause/sentence"): attention on the
    other tokens of the query's clause (queries whose clause has >= 2 other tokens)."""
    spans = _clause_queries(tc)
    return _mean_mass(pattern, list(spans), lambda q: spans[q])


def within_clause_coverage(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 10's "all of the other tokens": the share of the clause's other tokens that get at
    least half of a uniform share (0.5 / their number), averaged over the queries."""
    spans = _clause_queries(tc)
    if not spans:
        return np.full(pattern.shape[0], np.nan)
    return np.mean([(pattern[:, q, s] >= 0.5 / len(s)).mean(-1) for q, s in spans.items()], axis=0)


def previous_one_or_two(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 12 ("previous token unigram / bigram"): attention on the previous one or two tokens
    (queries from position 2; BOS is not a token of the text)."""
    first = 1 if tc.has_bos else 0
    return _mean_mass(pattern, list(range(2, tc.n)), lambda q: [k for k in (q - 1, q - 2) if k >= first])


def previous_is_top_share(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 12 ("sometimes attends to the previous token"): the share of queries (from position 2)
    whose strongest key, BOS excluded, is the previous token."""
    first = 1 if tc.has_bos else 0
    rows = [(pattern[:, q, first: q + 1].argmax(-1) + first == q - 1).astype(float) for q in range(max(2, first + 1), tc.n)]
    return np.mean(rows, axis=0) if rows else np.full(pattern.shape[0], np.nan)


def _named_queries(tc: TokenClasses) -> list[int]:
    return [q for q in tc.proper_nouns if any(k < q for k in tc.proper_nouns)]


def self_at_proper_nouns(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 9's "current ... proper nouns": from a proper noun with an earlier one, attention on itself."""
    return _mean_mass(pattern, _named_queries(tc), lambda q: [q])


def previous_proper_nouns(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 9's "previous proper nouns": from a proper noun with an earlier one, attention on the
    earlier proper nouns (itself excluded, so a current-token head scores 0)."""
    return _mean_mass(pattern, _named_queries(tc), lambda q: [k for k in tc.proper_nouns if k < q])


def pivot_at(word: str):
    """Heads 1 and 2 at 'but' ("not preceding structural pivot like others"): attention of `word`'s
    tokens on their latest preceding pivot."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        def latest(q):
            before = [p for p in tc.pivots if p < q]
            return before[-1:]
        return _mean_mass(pattern, _positions(tc, word), latest)
    return score


def strongest_from_later(key_word: str):
    """Head 14 ("the word 'asks'"; the post names the key, not the query): the strongest attention
    any later token gives the first `key_word` token; at the token right after it, the head's
    previous-token score is subtracted (so a previous-token head does not pass)."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        keys = _positions(tc, key_word)
        if not keys or keys[0] >= tc.n - 1:
            return np.full(pattern.shape[0], np.nan)
        k = keys[0]
        rows = pattern[:, k + 1:, k].copy()  # [head, later queries]
        rows[:, 0] -= previous_token(pattern, tc)
        return rows.max(-1)
    return score


def closing_mark_share_following(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 5: the share of the tokens after the first closing speech mark that give it >= 0.3."""
    if not tc.closing or tc.closing[0] >= tc.n - 1:
        return np.full(pattern.shape[0], np.nan)
    c = tc.closing[0]
    return (pattern[:, c + 1:, c] >= 0.3).mean(-1)


def from_to(query_word: str, key_words: tuple[str, ...], nth: int | None = None):
    """One token pair of the post (head 12: "banana" -> "looking", "for"; head 14: "find" ->
    "banana", "Tom" -> "asks"): attention of `query_word` (every occurrence, or only the `nth`)
    on the earlier `key_words` tokens."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        keys = [k for w in key_words for k in _positions(tc, w)]
        queries = _positions(tc, query_word)
        queries = queries if nth is None else queries[nth : nth + 1]
        return _mean_mass(pattern, queries, lambda q: [k for k in keys if k < q])
    return score


def beyond_previous_token(role):
    """`role`'s score less the head's previous-token score on the same text: for a pair whose key
    is the token right before the query (head 14: ' Tom' -> ' asks'), so that a previous-token
    head (head 6) does not pass it."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        return role(pattern, tc) - previous_token(pattern, tc)
    return score


def keys_lead_at(query_word: str, key_words: tuple[str, ...]):
    """Head 12 ("banana" attends to "looking" and "for"): at `query_word`, the weakest of the
    `key_words` tokens' attention less the strongest other key's (BOS excluded: a sink); > 0
    when the named keys are the head's top keys."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        rows = []
        for q in _positions(tc, query_word):
            keys = [k for w in key_words for k in _positions(tc, w) if k < q][: len(key_words)]
            if len(keys) < len(key_words):
                continue
            others = [k for k in range(1 if tc.has_bos else 0, q + 1) if k not in keys]
            rows.append(pattern[:, q, keys].min(-1) - pattern[:, q, others].max(-1))
        return np.mean(rows, axis=0) if rows else np.full(pattern.shape[0], np.nan)
    return score


def bos_top_before(word: str, nth: int = 0):
    """Head 5 ("all of the tokens up to the ':' token are attending to <|endoftext|>"): the share
    of the queries before the `nth` `word` token at which BOS gets strictly more attention than
    any other key (a tie, as in uniform attention, does not count)."""
    def score(pattern, tc: TokenClasses) -> np.ndarray:
        stops = _positions(tc, word)
        if not tc.has_bos or len(stops) <= nth:
            return np.full(pattern.shape[0], np.nan)
        rows = []
        for q in range(1, stops[nth]):
            others = pattern[:, q, 1: q + 1].max(-1)
            rows.append((pattern[:, q, 0] > others).astype(float))
        return np.mean(rows, axis=0) if rows else np.full(pattern.shape[0], np.nan)
    return score


def closing_mark_attended_by_following(pattern, tc: TokenClasses) -> np.ndarray:
    """Head 5 ("the closing speech mark is being attended to by all of the following tokens"):
    the least attention any later token gives the first closing speech mark."""
    if not tc.closing or tc.closing[0] >= tc.n - 1:
        return np.full(pattern.shape[0], np.nan)
    c = tc.closing[0]
    return pattern[:, c + 1:, c].min(-1)


ROLES = {
    "current_token": current_token,
    "previous_token": previous_token,
    "closing_to_opening": closing_to_opening,
    "closing_opening_over_previous": closing_opening_over_previous,
    "preceding_pivot": preceding_pivot,
    "opening_speech_mark": opening_speech_mark,
    "prior_proper_nouns": prior_proper_nouns,
    "proper_nouns_to_proper_nouns": proper_nouns_to_proper_nouns,
    "speech_delimiters": speech_delimiters,
    "self_proper_nouns": self_at_proper_nouns,
    "previous_proper_nouns": previous_proper_nouns,
    "self_at_but": self_at("but"),
    "pivot_at_but": pivot_at("but"),
    "attended_But": attended_within_clause("But"),
    "attended_but": attended_within_clause("but"),
    "junction_start": attended_within_clause(*CONJUNCTIONS, skip_next=True),
    "clause_start": clause_start_role,
    "within_clause_mass": within_clause_mass,
    "within_clause_coverage": within_clause_coverage,
    "previous_one_or_two": previous_one_or_two,
    "previous_is_top_share": previous_is_top_share,
    "attended_a": attended_within_clause("a"),
    "banana_to_looking_for": from_to("banana", ("looking", "for")),
    "looking_for_lead_at_banana": keys_lead_at("banana", ("looking", "for")),
    "find_to_banana": from_to("find", ("banana",)),
    "tom_to_asks": from_to("Tom", ("asks",), nth=0),
    "tom_to_asks_beyond_previous": beyond_previous_token(from_to("Tom", ("asks",), nth=0)),
    "asks_attended": strongest_from_later("asks"),
    "I_to_but": from_to("I", ("but",), nth=1),
    "I_to_but_beyond_previous": beyond_previous_token(from_to("I", ("but",), nth=1)),
    "but_to_I": from_to("but", ("I",)),
    "bos_top_before_colon": bos_top_before(":"),
    "bos_top_before_second_colon": bos_top_before(":", 1),
    "closing_mark_attended_by_following": closing_mark_attended_by_following,
    "closing_mark_share_following": closing_mark_share_following,
}


def patterns(bridge, text: str, layer: int = 0, max_tokens: int | None = None):
    """(pattern [head, q, k] as numpy, string tokens, token ids) of one text, BOS prepended
    (TransformerLens's default, which the post used)."""
    tokens = bridge.to_tokens(text)  # prepends BOS
    if max_tokens:
        tokens = tokens[:, :max_tokens]
    name = f"blocks.{layer}.attn.hook_pattern"
    cache = cached(bridge, tokens, [name])
    str_tokens = [bridge.tokenizer.decode([t]) for t in tokens[0].tolist()]
    return cache[name][0].float().cpu().numpy(), str_tokens, tokens[0].tolist()


@dataclass
class HeadText:
    """One text's attention pattern [head, q, k] (numpy), string tokens and token classes: the
    input of every role score. `role_scores` does the forward passes; `HeadText.from_activations`
    takes a pattern computed elsewhere (the controls in tests/ build theirs) and classifies the
    same way."""

    pattern: np.ndarray
    str_tokens: list[str]
    classes: TokenClasses

    @classmethod
    def from_activations(cls, str_tokens: list[str], pattern, has_bos: bool = True) -> "HeadText":
        pattern = np.asarray(pattern, dtype=np.float32)
        if pattern.ndim != 3 or pattern.shape[1:] != (len(str_tokens), len(str_tokens)):
            raise ValueError(f"pattern must be [head, {len(str_tokens)}, {len(str_tokens)}], got {pattern.shape}")
        return cls(pattern, list(str_tokens), classify(str_tokens, has_bos))

    def scores(self) -> dict[str, np.ndarray]:
        return {role: fn(self.pattern, self.classes) for role, fn in ROLES.items()}


def role_scores_of(runs: list[HeadText]) -> dict[str, np.ndarray]:
    """Every role's per-head score on every text: {role: [n_texts, n_heads]} (NaN where a text
    has no query of that role, e.g. no closing speech mark)."""
    per_text = [r.scores() for r in runs]
    return {role: np.stack([s[role] for s in per_text]) for role in ROLES}


BATCH = 16  # texts per forward pass in role_scores


def role_scores(bridge, texts: list[str], max_tokens: int | None = None, layer: int = 0,
                batch: int = BATCH) -> dict[str, np.ndarray]:
    """role_scores_of over the texts (BOS prepended), `batch` texts of similar length per forward
    pass, right-padded. Why batched: on the one-layer model a pass costs ~7 ms whatever its length,
    so one pass per text was most of a blog control's time. Padding changes nothing a text reads:
    attention is causal, so no real token's pattern row reads a later (pad) position, and positions
    start at 0 in every row; each text's [head, q, k] is cut back to its own length. (A batched
    matmul may round differently from a single one in the last float bits.)"""
    tokens = [bridge.to_tokens(t)[0] for t in texts]  # prepends BOS
    tokens = [t[:max_tokens] if max_tokens else t for t in tokens]
    pad = bridge.tokenizer.eos_token_id or 0
    name = f"blocks.{layer}.attn.hook_pattern"
    runs: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
    for start in range(0, len(order), batch):
        group = order[start : start + batch]
        width = max(len(tokens[i]) for i in group)
        ids = torch.full((len(group), width), pad, dtype=tokens[group[0]].dtype)
        for row, i in enumerate(group):
            ids[row, : len(tokens[i])] = tokens[i]
        pattern = cached(bridge, ids, [name], chunk=len(group))[name].float().cpu().numpy()
        for row, i in enumerate(group):
            n = len(tokens[i])
            runs[i] = HeadText.from_activations([bridge.tokenizer.decode([t]) for t in tokens[i].tolist()],
                                                pattern[row, :, :n, :n])
    return role_scores_of(runs)
