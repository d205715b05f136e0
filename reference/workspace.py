"""Work buffers for the training step and ``gradients``, reused from one call to the next.

A step on a batch of B samples needs, per layer k, V ``(B, n_{k+1})``, dE/dX ``(B, n_k)``
(k >= 1) and dE/dW, then the new weights, ``(n_k + 1, n_{k+1})``. Allocating them afresh on
every step costs more than computing them at the mnist size: a fresh large array is fresh pages
from the operating system, and every page faults the first time it is written. So
``Network.step`` keeps them here, one ``Workspace`` per batch size (the last two sizes used,
which covers ``fit`` with a short last batch; none above 64 MiB), and writes into them with
numpy's ``out=`` arguments. ``gradients`` uses the same buffers for V and the inner dE/dX.

Nothing in a workspace is ever handed to the user: ``gradients`` and ``trace`` return arrays
of their own throughout (all but the trace's ``xs[0]``, the caller's input itself, flattened:
a view when it already is float64), which the caller may keep.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["Workspace", "WorkspaceCache"]


class Workspace:
    """Buffers for one batch size ``batch`` and layer sizes ``[n0, ..., nL]``.

    Attributes:
        vs: ``vs[k]`` receives V of layer k, ``(batch, n_{k+1})``.
        dxs: ``dxs[k]`` receives dE/dX of layer k, ``(batch, n_k)``; ``dxs[0]`` is None (the
            input's gradient is returned to the user, so it is never a buffer).
        dws: ``dws[k]`` receives dE/dW of layer k, ``(n_k + 1, n_{k+1})``, and then its new
            weights ``W - lr dE/dW``: every layer's are computed before any is written back.
    """

    def __init__(self, sizes: Sequence[int], batch: int) -> None:
        self.batch = batch
        self.sizes = tuple(sizes)
        self.vs = [np.empty((batch, m)) for m in sizes[1:]]
        self.dxs: list[np.ndarray | None] = [None] + [np.empty((batch, n)) for n in sizes[1:-1]]
        self.dws = [np.empty((n + 1, m)) for n, m in zip(sizes[:-1], sizes[1:])]

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        arrays = [*self.vs, *(d for d in self.dxs if d is not None), *self.dws]
        return sum(a.nbytes for a in arrays)


class WorkspaceCache:
    """The workspaces of one network: per thread, the ``keep`` most recently used batch sizes.

    Per thread, so that two threads computing gradients of the same network at once (which
    only read the weights) never share a buffer.
    """

    def __init__(self, keep: int = 2, max_bytes: int = 64 * 2**20) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._local = threading.local()

    def get(self, sizes: Sequence[int], batch: int) -> Workspace:
        """This thread's workspace for ``batch`` samples, made on first use.

        A workspace larger than ``max_bytes`` (a huge batch) serves one call and is not kept:
        the memory is returned to the allocator rather than held between calls.
        """
        by_batch = self._by_batch()
        work = by_batch.pop(batch, None)
        if work is None or work.sizes != tuple(sizes):
            work = Workspace(sizes, batch)
            if work.nbytes > self.max_bytes:
                return work
        by_batch[batch] = work  # most recently used last
        while len(by_batch) > self.keep:
            del by_batch[next(iter(by_batch))]
        return work

    def _by_batch(self) -> dict[int, Workspace]:
        try:
            return self._local.by_batch
        except AttributeError:
            self._local.by_batch = {}
            return self._local.by_batch

    # A copied or pickled network starts with no buffers: it makes its own when it needs them.
    def __deepcopy__(self, memo: dict) -> WorkspaceCache:
        return WorkspaceCache(self.keep, self.max_bytes)

    def __getstate__(self) -> dict:
        return {"keep": self.keep, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["keep"], state["max_bytes"])

    @property
    def nbytes(self) -> int:
        """Bytes held by this thread's workspaces."""
        return sum(w.nbytes for w in self._by_batch().values())
