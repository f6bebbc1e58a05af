"""Part-of-speech tags for model tokens (TinyStories-1M paper, §4.1).

Why character spans: NLTK tags words, the model reads BPE tokens. We tag words with the paper's
tools (TreebankWordTokenizer + nltk.pos_tag with averaged_perceptron_tagger_eng; Treebank turns
'"' into the quote tags `` and '' that the quotation head is about), keep each word's character
span, and give every BPE token the tag of the word under its first non-space character. A word
split into several tokens gives each of them its tag. A token covering several words (GPT-2 merges
a closing quote with the punctuation before it: '."', '!"') takes the quote tag if one of its
words is a quote, else the tag of its first word.

Sentences are split with a small rule (after . ! ? and an optional closing quote, before
whitespace) because NLTK's punkt models are not available offline; Treebank only splits the
final period of its input, so without this "ball." would be one word.
"""

from __future__ import annotations

import re
from pathlib import Path

from mechcheck.data import DataError

_SENTENCE_END = re.compile(r'(?<=[.!?])\s+|(?<=[.!?]["\'])\s+')
TAGGER = "averaged_perceptron_tagger_eng"
QUOTE_TAGS = ("``", "''")


def use_data_dir(data: Path | None) -> None:
    """Point NLTK at <data>/nltk_data (offline); check the tagger is there either way."""
    import nltk  # nltk loads its data path on import: only when tagging is asked for

    if data is not None and str(data / "nltk_data") not in nltk.data.path:
        nltk.data.path.insert(0, str(data / "nltk_data"))
    try:
        nltk.data.find(f"taggers/{TAGGER}/")
    except LookupError:
        looked = (f"{data / 'nltk_data' / 'taggers' / TAGGER} and NLTK's default paths" if data is not None
                  else f"NLTK's paths {', '.join(nltk.data.path[:2])}, ...")
        raise DataError(f"NLTK tagger {TAGGER} not found (looked in {looked}); give --mc-data DIR holding "
                        f"nltk_data/taggers/{TAGGER}, or run nltk.download('{TAGGER}')") from None


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(a, b) for a, b in spans if b > a]


def tag_words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, tag) for every Treebank word of `text`."""
    from nltk import pos_tag
    from nltk.tokenize import TreebankWordTokenizer

    tb = TreebankWordTokenizer()
    out = []
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        words = tb.tokenize(sentence)
        spans = list(tb.span_tokenize(sentence))
        if len(words) != len(spans):
            raise ValueError(f"Treebank words and spans disagree on {sentence!r}")
        out += [(a + s, a + e, tag) for (s, e), (_, tag) in zip(spans, pos_tag(words))]
    return out


def tag_tokens(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    """The tag of each model token given its character offsets ("" where no word covers it,
    e.g. BOS)."""
    words = tag_words(text)
    starts = [w[0] for w in words]
    import bisect

    tags = []
    for a, b in offsets:
        piece = text[a:b]
        if not piece.strip():
            tags.append("")
            continue
        first = a + (len(piece) - len(piece.lstrip()))
        i = max(bisect.bisect_right(starts, first) - 1, 0)
        covered = []
        while i < len(words) and words[i][0] < b:
            if words[i][1] > first:
                covered.append(words[i][2])
            i += 1
        quotes = [t for t in covered if t in QUOTE_TAGS]
        tags.append(quotes[0] if quotes else (covered[0] if covered else ""))
    return tags


def tokenize_and_tag(tokenizer, text: str, max_tokens: int | None = None, bos: int | None = None):
    """(token ids with BOS first when `bos` is given, tags aligned to them)."""
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    tags = tag_tokens(text, offsets)
    if bos is not None:
        ids, tags = [bos] + ids, [""] + tags
    if max_tokens:
        ids, tags = ids[:max_tokens], tags[:max_tokens]
    return ids, tags
