"""A progress bar for long work (training, exhaustive checks) that is easy to turn off.

``tqdm`` draws it when it is installed (the optional ``progress`` extra); otherwise a plain
one-line counter is drawn. Either way the bar goes to stderr, so stdout stays clean for the
results, and it is off when ``quiet`` is set or stderr is not a terminal (a pipe, a CI log).

    with progress_bar(2000, "training", quiet=args.quiet) as bar:
        for epoch in range(2000):
            ...
            bar.update()
            if epoch % 200 == 0:
                bar.write(f"epoch {epoch}: loss {loss:.3g}")   # a line that does not tear the bar
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress", "progress_bar"]


class Progress:
    """A bar of ``total`` steps. ``update(n)`` advances it, ``write(line)`` prints to stdout.

    A disabled bar draws nothing; ``write`` still prints.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool, stream: TextIO) -> None:
        self.total, self.desc, self.enabled, self.stream = total, desc, enabled, stream
        self.done = 0
        self._shown = -1  # the last percentage drawn by the plain fallback
        self._tqdm = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # the plain fallback below
                pass
            else:
                self._tqdm = tqdm(total=total, desc=desc, file=stream, leave=False,
                                  dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        """Advance the bar by ``n`` steps."""
        self.done += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self.enabled:
            percent = 100 * self.done // max(self.total, 1)
            if percent != self._shown:
                self._shown = percent
                self.stream.write(f"\r{self.desc}: {percent:3d}% ({self.done}/{self.total})")
                self.stream.flush()

    def set_done(self, done: int) -> None:
        """Move the bar to ``done`` steps (for callers that report totals, not increments)."""
        if done > self.done:
            self.update(done - self.done)

    def write(self, line: str) -> None:
        """Print ``line`` to stdout without tearing the bar."""
        if self._tqdm is not None:
            self._tqdm.write(line, file=sys.stdout)
            return
        if self.enabled and self._shown >= 0:
            self.stream.write("\r\033[K")  # clear the plain bar's line, it is redrawn next update
            self.stream.flush()
            self._shown = -1
        print(line, flush=True)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self.enabled and self._shown >= 0:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int, desc: str, *, quiet: bool = False, stream: TextIO | None = None
) -> Progress:
    """A ``Progress`` of ``total`` steps, drawn on ``stream`` (stderr) only if it is a terminal
    and ``quiet`` is False."""
    stream = sys.stderr if stream is None else stream
    enabled = not quiet and bool(getattr(stream, "isatty", lambda: False)())
    return Progress(total, desc, enabled=enabled, stream=stream)
