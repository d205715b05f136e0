"""The reference's own exception."""

from __future__ import annotations

__all__ = ["DivergenceError"]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss, gradient or weight; the weights were left unchanged."""
