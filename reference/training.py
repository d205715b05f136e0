"""Mini-batch SGD training (eq 10 applied batch after batch), seeded and divergence-safe."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .errors import DivergenceError
from .validation import check_learning_rate, check_seed

if TYPE_CHECKING:
    from .network import Network

__all__ = ["fit", "minibatches"]


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Split ``range(n)`` into index batches of ``batch_size`` (the last may be smaller),
    shuffled by ``rng`` (or in order when ``rng`` is None)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def fit(
    net: Network,
    X: np.ndarray,
    T: np.ndarray,
    *,
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int | None = None,
    seed: int | None = None,
    shuffle: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``net`` in place with plain mini-batch SGD.

    Args:
        X: inputs ``(N, *in_shape)``; T: targets for the network's loss.
        epochs: passes over the data.
        lr: learning rate of eq 10.
        batch_size: samples per step; None means the whole data set (full-batch descent).
        seed: seeds the shuffling, so a run is reproducible bit for bit.
        shuffle: reshuffle the samples every epoch.
        callback: called as ``callback(epoch, mean_loss)`` after each epoch (epoch from 0);
            its signature is checked before training (a TypeError when it cannot take those
            two arguments). An exception it raises stops training and is passed on.

    Returns:
        The loss of each epoch: the mean over its steps of the loss *before* each step,
        weighted by batch size.

    Raises:
        DivergenceError: a step produced a non-finite loss or weight; the message names the
            epoch, the step and the learning rate, and the network keeps its last finite weights.
    """
    # Every argument is checked before the first step: a refused call changes nothing.
    epochs = _positive_int(epochs, "epochs")
    lr = check_learning_rate(lr)
    x = net._inputs(X)
    t = net._targets(T, x.shape[0])
    n = x.shape[0]
    batch_size = n if batch_size is None else _positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {type(shuffle).__name__}: "
                        f"{shuffle!r}")
    checked = _check_callback(callback)
    rng = np.random.default_rng(seed) if shuffle else None
    history: list[float] = []
    for epoch in range(epochs):
        batches = minibatches(n, batch_size, rng)
        total = 0.0
        for step, idx in enumerate(batches):
            xb, tb = (x, t) if len(idx) == n and rng is None else (x[idx], t[idx])
            try:
                total += net._step(xb, tb, lr) * len(idx)
            except DivergenceError as exc:
                raise DivergenceError(
                    f"training diverged at epoch {epoch + 1}/{epochs}, step {step + 1}/"
                    f"{len(batches)} with lr={lr}: {exc}; the network keeps its last finite "
                    "weights (try a smaller lr)"
                ) from None
        history.append(total / n)
        if callback is None:
            continue
        try:
            callback(epoch, history[-1])
        except TypeError as exc:
            if checked:  # its own error, raised inside it: passed on as it is
                raise
            raise TypeError(f"callback(epoch, mean_loss) raised TypeError ({exc}); training "
                            f"stopped after epoch {epoch + 1}/{epochs}") from exc
    return history


def _check_callback(callback: object) -> bool:
    """Refuse, before training, a callback that cannot be called as ``callback(epoch,
    mean_loss)``. Returns whether its signature was checked (a builtin's may not be known)."""
    import inspect

    if callback is None:
        return True
    if not callable(callback):
        raise TypeError(f"callback must be callable as callback(epoch, mean_loss), or None; "
                        f"got {type(callback).__name__}: {callback!r:.60}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # no signature to read: checked when called
        return False
    try:
        signature.bind(0, 0.0)
    except TypeError as exc:
        raise TypeError(f"callback must accept two arguments, callback(epoch, mean_loss), but "
                        f"its signature is {str(signature)[:80]} ({exc}); nothing was trained"
                        ) from None
    return True
