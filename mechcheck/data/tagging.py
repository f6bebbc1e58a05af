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

Why a tagger object and a cache: `nltk.pos_tag` builds a new PerceptronTagger, reading its 5.5 MB
of JSON weights, on every call, i.e. once per sentence (most of the POS claims' setup time).
Here one tagger is loaded per data location and reused (`tagger.tag` is what pos_tag calls: same
tags). Tagging is deterministic, so each paragraph's word tags are also kept on disk under
`cache_root()/tags-<key>/`, named by the sha256 of the paragraph and keyed by the sha256 of the
tagger's data files (and NLTK's version, for the Treebank tokenizer); a changed text, tagger or
NLTK misses the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from mechcheck.core.files import atomic_write
from mechcheck.data import DataError, cache_root

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


_CACHE_FORMAT = 1  # bump when tag_words' output changes for the same text and tagger
_taggers: dict[str, tuple] = {}  # tagger directory -> (PerceptronTagger, cache key)


def _tagger():
    """The English perceptron tagger NLTK's paths resolve to (loaded once per location) and the
    cache key of its output: sha256 of its data files' names and contents, NLTK's version and
    _CACHE_FORMAT."""
    import nltk
    from nltk.tag.perceptron import PerceptronTagger

    loc = nltk.data.find(f"taggers/{TAGGER}/")
    where = str(loc.path if hasattr(loc, "path") else loc)
    if where not in _taggers:
        digest = hashlib.sha256(f"{nltk.__version__}\0{_CACHE_FORMAT}".encode())
        root = Path(where)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        _taggers[where] = (PerceptronTagger(loc=loc), digest.hexdigest()[:16])
    return _taggers[where]


def _tag_words_uncached(text: str, tagger) -> list[tuple[int, int, str]]:
    from nltk.tokenize import TreebankWordTokenizer

    tb = TreebankWordTokenizer()
    out = []
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        words = tb.tokenize(sentence)
        spans = list(tb.span_tokenize(sentence))
        if len(words) != len(spans):
            raise ValueError(f"Treebank words and spans disagree on {sentence!r}")
        out += [(a + s, a + e, tag) for (s, e), (_, tag) in zip(spans, tagger.tag(words))]
    return out


def cache_path(text: str) -> Path:
    """Where tag_words keeps `text`'s tags for the tagger NLTK's paths resolve to now."""
    name = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return cache_root() / f"tags-{_tagger()[1]}" / name[:2] / f"{name}.json"


def tag_words(text: str, cache: bool = True) -> list[tuple[int, int, str]]:
    """(start, end, tag) for every Treebank word of `text`. With `cache`, read from / written to
    cache_path(text) (mechcheck.core.files.atomic_write: parallel workers never read half a file)."""
    tagger, _ = _tagger()
    if not cache:
        return _tag_words_uncached(text, tagger)
    path = cache_path(text)
    try:
        return [tuple(w) for w in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError):  # missing, or unreadable: tag again (and overwrite)
        pass
    out = _tag_words_uncached(text, tagger)
    atomic_write(path, json.dumps(out))
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
