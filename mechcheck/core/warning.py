"""MechcheckWarning: what a run should tell its user although nothing failed.

Why a pytest warning: pytest collects warnings into its summary, where a user reads them, and a
project can turn them into errors (`-W error::mechcheck.core.warning.MechcheckWarning`). Used where
mechcheck would otherwise stay silent: a checkpoint retrained because none is shipped or cached, a
scheduler file that cannot be read, thread sharing that changes the last digits.
"""

from __future__ import annotations

import warnings

import pytest


class MechcheckWarning(pytest.PytestWarning):
    """Something the user should know about a run that still gives correct results."""


def warn(message: str) -> None:
    warnings.warn(MechcheckWarning(message), stacklevel=3)
