"""Verify what a checkpoint holds against the model's expected state dict, before any claim
measures it.

Why: a loader that fills missing tensors at random (transformers does, and only prints a table
that pytest hides) turns an incomplete checkpoint into a verdict on random weights under the
file's sha256. So every loader (HF folders: mechcheck.models.load_hf; the toy and organism files:
mechcheck.models.checkpoints.load_native) hands its missing / unexpected / wrongly shaped tensor
names here: a missing or misshapen tensor is the one line the loader raises as its CheckpointError
(this module imports no loader, so either can import it), an extra, unused tensor a
MechcheckWarning (it usually means another architecture or a renamed checkpoint).
"""

from __future__ import annotations

from mechcheck.core.warning import warn

SHOWN = 4  # tensor names a line names before "and N more"


def names(keys, shown: int = SHOWN) -> str:
    """`a, b, c, d and 5 more`: tensor names for one line."""
    keys = sorted(keys)
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def problem(where: str, what: str, n_expected: int, missing=(), unexpected=(), mismatched=()) -> str | None:
    """Why a checkpoint with missing or misshapen tensors cannot be measured (one line naming
    them; the loader raises it as CheckpointError), else None; warns about unused tensors.
    `mismatched`: (name, got shape, expected shape) triples."""
    missing, unexpected, mismatched = sorted(missing), sorted(unexpected), list(mismatched)
    if missing:
        extra = f"; it holds {len(unexpected)} tensors {what} does not use ({names(unexpected, 2)})" if unexpected else ""
        return (f"{where}: not a {what} checkpoint (missing {len(missing)} of {n_expected} tensors: "
                f"{names(missing)}{extra})")
    if mismatched:
        k, got, want = mismatched[0]
        return (f"{where}: not a {what} checkpoint ({len(mismatched)} tensors of the wrong shape, "
                f"e.g. {k} is {list(got)}, expected {list(want)})")
    if unexpected:
        warn(f"{where}: {len(unexpected)} tensors that {what} does not use were ignored ({names(unexpected)}); "
             "is it a checkpoint of another architecture or with renamed weights?")
    return None


def compare(where: str, what: str, expected: dict, got: dict) -> str | None:
    """`problem` of two {name: shape} maps (the model's state dict and the file's tensors)."""
    mismatched = [(k, got[k], expected[k]) for k in expected if k in got and tuple(got[k]) != tuple(expected[k])]
    return problem(where, what, len(expected), set(expected) - set(got), set(got) - set(expected), mismatched)
