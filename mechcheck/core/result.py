"""What a measurement returns: the value a claim is decided on, its CI, the number of items it
averages over, and named details (per-head maps, the runner-up, the convention used).

Why a type and not a dict: the plugin, the controls and the report read `value`, `ci` and `n` by
name whatever the study; study-specific numbers live in `details`, never beside them. A Result
unpacks like the keyword arguments of `measure.record(...)` (`measure.record(**result)`), and reads
and writes like a mapping (`result["value"]`, `result["x"] = ...` sets a detail), so the study
modules can build one in steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

FIELDS = ("value", "ci", "n")


@dataclass
class Result:
    value: Any
    ci: Any = None  # (low, high) or None: a 95% CI where the measurement samples items
    n: int | None = None  # items the value is computed over (prompts, sequences, tokens)
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, *parts: Mapping, **fields) -> "Result":
        """A Result from record-style keyword arguments (value=, ci=, n=, detail=...), after the
        mappings `parts` (e.g. stats.mean_record's)."""
        merged: dict = {}
        for part in parts:
            merged.update({k: part[k] for k in part.keys()})
        merged.update(fields)
        if "value" not in merged:
            raise TypeError("a Result needs a value")
        value, ci, n = merged.pop("value"), merged.pop("ci", None), merged.pop("n", None)
        return cls(value, ci, n, merged)

    def keys(self) -> list[str]:
        return [*(k for k in FIELDS if k == "value" or getattr(self, k) is not None), *self.details]

    def __getitem__(self, key: str):
        return getattr(self, key) if key in FIELDS else self.details[key]

    def __setitem__(self, key: str, value) -> None:
        if key in FIELDS:
            setattr(self, key, value)
        else:
            self.details[key] = value

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def update(self, other: Mapping = (), **more) -> None:
        for key, value in {**dict(other), **more}.items():
            self[key] = value

    def pop(self, key: str, *default):
        if key in FIELDS:
            value = getattr(self, key)
            setattr(self, key, None)
            return value
        return self.details.pop(key, *default)

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())
