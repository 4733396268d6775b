"""Exceptions that `ferd` raises for bad input.

One error type per kind of failure, so callers (the CLI, papermill parameter cells, tests) can catch
exactly what they expect and users read one clear sentence naming the bad value and what is allowed.
"""
from __future__ import annotations

from typing import Any, Iterable


class FerdError(Exception):
    """Base class of every error `ferd` raises on purpose."""


class ConfigError(FerdError, ValueError):
    """A configuration field (or function argument) holds a value that is not allowed."""

    def __init__(self, field: str, value: Any, allowed: str | Iterable[Any]):
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(repr(a) for a in allowed)
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed; expected {allowed}")


class DataError(FerdError, FileNotFoundError):
    """A dataset is missing or incomplete; the message says how to get it."""


class CheckpointError(FerdError, RuntimeError):
    """A checkpoint or artifact is corrupt, truncated or does not fit the model."""


class TrainingError(FerdError, RuntimeError):
    """Training diverged (NaN or infinite loss); the message names epoch, step and loss term."""
