"""The reference's own exceptions."""

from __future__ import annotations

__all__ = ["DivergenceError", "TooLargeError"]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss, gradient or weight; the weights were left unchanged."""


class TooLargeError(ValueError):
    """An input exceeds a stated limit: a file's memory budget, its zip directory, JSON nesting
    or number length (``reference.safe_files``), or a size numpy cannot address. A
    ``ValueError``, so callers that catch refusals catch it; the command lines exit 3 for it."""
