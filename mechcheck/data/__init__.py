"""Where offline data comes from.

Why: the machines that run mechcheck in CI have no internet, so the GPT-2 tokenizer, the NLTK
tagger and TinyStories text come from a data directory named by `--mc-data` or the
`MECHCHECK_DATA` environment variable. Without one, the normal online sources are used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mechcheck.core.files import publish_dir

ENV_VAR = "MECHCHECK_DATA"


class DataError(Exception):
    """Offline data was asked for but is not where the data directory says."""


def data_dir(option: str | None = None) -> Path | None:
    """The data directory: the option if given, else $MECHCHECK_DATA, else None (online)."""
    value = option or os.environ.get(ENV_VAR)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise DataError(f"data directory {value!r} (from --mc-data or ${ENV_VAR}) does not exist")
    return path


def cache_root() -> Path:
    """Where mechcheck keeps what it builds (trained toys, organisms, the tokenizer folder)."""
    return Path(os.environ.get("MECHCHECK_CACHE", Path.home() / ".cache" / "mechcheck"))


def _offline_hint(what: str, exc: Exception) -> DataError:
    """One line for a hub download that failed: offline, or unreachable."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = "HF_HUB_OFFLINE=1 and it is not in the HF cache" if offline else f"the hub is not reachable ({type(exc).__name__})"
    return DataError(f"{what} is not available offline ({why}); give the data directory with --mc-data DIR "
                     f"or ${ENV_VAR} (see README, 'Offline data')")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def gpt2_tokenizer(data: Path | None, hub_name: str = "gpt2"):
    """The GPT-2 BPE tokenizer (shared by gpt2 and every roneneldan/TinyStories-* model).

    Offline it is built from <data>/tokenizer/gpt2/tokenizer.json and saved once as a tokenizer
    directory, because TransformerLens re-opens the tokenizer by its `name_or_path`; that
    directory is keyed by the sha256 of the source file, so an edited or corrupt source is never
    hidden by an older cached build."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if data is None:
        try:
            return AutoTokenizer.from_pretrained(hub_name)
        except OSError as exc:
            raise _offline_hint(f"the GPT-2 tokenizer ({hub_name})", exc) from None
    source = data / "tokenizer" / "gpt2" / "tokenizer.json"
    if not source.exists():
        raise DataError(f"{source} not found: the data directory has no GPT-2 tokenizer")
    target = cache_root() / f"tokenizer-gpt2-{sha256_file(source)[:16]}"
    if not (target / "tokenizer.json").exists():
        eot = "<|endoftext|>"
        try:
            tok = PreTrainedTokenizerFast(tokenizer_file=str(source), bos_token=eot, eos_token=eot, unk_token=eot)
        except Exception as exc:  # the tokenizers library raises a bare Exception on a bad file
            raise DataError(f"{source}: not a readable tokenizer.json ({str(exc).splitlines()[0][:120]})") from None
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tok.save_pretrained(str(tmp))
        publish_dir(tmp, target)  # another worker may have got there first: keep one
    tok = AutoTokenizer.from_pretrained(str(target))
    if tok("Once upon a time")["input_ids"] != [7454, 2402, 257, 640]:
        raise DataError(f"{source} does not encode like GPT-2's BPE; the tokenizer file is wrong")
    return tok


TINYSTORIES_VALIDATION = "tinystories/validation-head-794KB.txt"


def tinystories_validation(data: Path | None) -> str:
    """TinyStories validation text: the offline sample in the data directory, else the
    dataset's TinyStories-valid.txt from the hub."""
    if data is not None:
        path = data / TINYSTORIES_VALIDATION
        if not path.exists():
            raise DataError(f"{path} not found: the data directory has no TinyStories validation text")
        return path.read_text(encoding="utf-8")
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download("roneneldan/TinyStories", "TinyStories-valid.txt", repo_type="dataset")
    except OSError as exc:
        raise _offline_hint("the TinyStories validation text", exc) from None
    return Path(path).read_text(encoding="utf-8")


def paragraphs(text: str, must_contain: str = "", limit: int | None = None) -> list[str]:
    """Blank-line separated paragraphs (stories and paragraphs are both separated that way in
    the validation sample), optionally only those containing `must_contain`, in file order."""
    out = [p.strip() for p in text.split("\n\n") if p.strip() and must_contain in p]
    return out[:limit] if limit else out
