"""The oracle's report: one row per checked term, a headline naming the first wrong term.

``report.ok`` is False exactly when some row FAILs (or, with ``strict=True``, is in doubt).
Kinks and doubts are counted and shown beside it, never hidden and never counted as a pass.
``str(report)`` is a table a person can act on; ``report.to_dict()`` / ``to_json()`` serve CI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import numpy as np

from .verdict import DOUBT, FAIL, KINK, PASS, EntryVerdicts

__all__ = ["Report", "Row", "annotate_symptoms"]

WRONG_ENTRIES_LISTED = 1000
"""``to_dict`` lists at most this many wrong entries per row (``Row.wrong`` counts them all)."""


@dataclass
class Row:
    """One checked term.

    Attributes:
        layer: 0-based layer index (None for a whole-function check).
        term: "loss", "activation", "dW", "dX" (and "step", "gradient", "derivative").
        scope: "local" (this link of the chain alone, given the hand-derived upstream value)
            or "total" (the full gradient, end to end).
        sources: which sources of truth were compared ("jax", "fd").
        status: "pass", "FAIL", "kink" or "doubt".
        max_abs_err, max_rel_err: worst |got - expected| and that over the term's scale.
        tolerance: the largest tolerance applied (absolute).
        index: the worst entry's index; expected, got: its values.
        kinks, doubts: how many entries were kinks / doubts; size: entries checked.
        name: the activation's or loss's name, when the term is one.
        at: the input where the worst entry was evaluated (e.g. v for an activation).
        err_jax, err_fd, err_jax_fd: max disagreement per pair of sources.
        note: anything else the reader needs (e.g. "follows from layer 2 activation").
        input: the checked input's name (``check_vjp``: its dict key, forward's parameter
            name, or ``inputs[i]``); its entries are indexed in that input's own shape.
        wrong: how many entries FAIL.
        mask: boolean array shaped like the term, True at every FAILing entry (None when the
            entries could not be told apart: a directional check without JAX).
        direction: set when the worst value is a projection along random direction number
            ``direction`` rather than an entry (``index`` is then empty).
        directions: when the entries could not be told apart (finite differences along random
            directions, no JAX), how many directions judged the row; ``wrong``, ``kinks`` and
            ``doubts`` then count *directions*, not entries (0: they count entries).
    """

    layer: int | None
    term: str
    scope: str
    sources: tuple[str, ...]
    status: str
    max_abs_err: float
    max_rel_err: float
    tolerance: float
    index: tuple[int, ...]
    expected: float
    got: float
    kinks: int = 0
    doubts: int = 0
    size: int = 0
    name: str | None = None
    at: float | None = None
    err_jax: float | None = None
    err_fd: float | None = None
    err_jax_fd: float | None = None
    note: str = ""
    input: str | None = None
    wrong: int = 0
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    direction: int | None = None
    directions: int = 0

    @classmethod
    def from_verdicts(
        cls, layer: int | None, term: str, scope: str, v: EntryVerdicts, **extra
    ) -> Row:
        idx = v.worst_index()
        expected = float(v.expected[idx]) if idx or v.expected.ndim == 0 else float("nan")
        got = float(v.got[idx]) if idx or v.got.ndim == 0 else float("nan")
        abs_err = float(np.max(v.error, initial=0.0))
        rel = abs_err / v.scale if v.scale > 0 else (0.0 if abs_err == 0 else float("inf"))
        if not v.sources:  # nothing to compare with: no expected value, no error
            expected = abs_err = rel = float("nan")
        note = extra.pop("note", "")
        if v.notes:
            note = "; ".join([note, *v.notes] if note else v.notes)
        return cls(
            layer=layer, term=term, scope=scope, sources=v.sources, status=v.overall,
            max_abs_err=abs_err, max_rel_err=rel,
            tolerance=float(v.tolerance[idx]) if idx else float(np.max(v.tolerance, initial=0)),
            index=idx, expected=expected, got=got, kinks=v.count(KINK), doubts=v.count(DOUBT),
            size=int(v.status.size), err_jax=v.err_ad, err_fd=v.err_fd,
            err_jax_fd=v.err_ad_fd, note=note, wrong=v.count(FAIL), mask=v.status == FAIL,
            **extra,
        )

    @classmethod
    def broken(cls, layer: int | None, term: str, scope: str, why: str, **extra) -> Row:
        """A term that could not be compared at all (a wrong shape, an exception): FAIL."""
        return cls(layer, term, scope, (), FAIL, float("inf"), float("inf"), 0.0, (),
                   float("nan"), float("nan"), note=why, **extra)

    def along_directions(self, count: int) -> Row:
        """This row judged ``count`` random directions' projections, not entries: its worst
        value is a direction's, its counts count directions (in place; returns the row)."""
        self.direction = self.index[0] if self.index else None
        self.index, self.mask, self.directions = (), None, count
        return self

    def wrong_entries(self) -> list[tuple[int, ...]]:
        """Indices of the FAILing entries, in the term's own shape (empty if not located)."""
        if self.mask is None:
            return []
        return [tuple(int(i) for i in idx) for idx in np.argwhere(self.mask)]

    @property
    def where(self) -> str:
        if self.input is not None and self.layer is not None:  # a user's own layer
            return f"layer {self.layer} ({self.name}) {self.term}"
        layer = "" if self.layer is None else f"layer {self.layer} "
        name = f" {self.name!r}" if self.name else ""
        return f"{layer}{self.term}{name}"

    def digits(self) -> int:
        """Significant digits that show got and expected apart (6 at least, 17 at most) where
        the row did not pass (a passing row's last digits are rounding, not news)."""
        gap = abs(self.got - self.expected) / max(abs(self.expected), 1e-300)
        if self.status != PASS and 0 < gap < 1e-5:
            return min(17, int(np.ceil(-np.log10(gap))) + 2)
        return 6

    def describe(self) -> str:
        """One sentence: what is wrong (or in doubt) here, with the worst entry."""
        if not self.index and not np.isfinite(self.max_abs_err):
            return f"{self.where} ({self.scope}): {self.note}"  # a wrong shape, an exception
        if not self.sources:
            return (f"{self.where} ({self.scope}): not judged, no source of truth could "
                    f"give a value (got {self.got:.6g} at [{', '.join(map(str, self.index))}])")
        at = f" at v={self.at:.6g}" if self.at is not None else ""
        index = f" [{', '.join(map(str, self.index))}]" if self.index else ""
        if self.direction is not None:
            index = f" along random direction {self.direction} (entries not located"
            bad = {FAIL: self.wrong, DOUBT: self.doubts, KINK: self.kinks}.get(self.status)
            if self.directions and bad:
                verb = {FAIL: "wrong", DOUBT: "in doubt", KINK: "at a kink"}[self.status]
                index += f"; {bad} of {self.directions} directions {verb}"
            index += ")"
        if self.input is not None and self.status == FAIL and self.mask is not None:
            index += f" ({self.wrong} of {self.size} entries wrong)"
        what = "derivative" if self.term in ("activation", "loss", "derivative") else self.term
        verb = {FAIL: "wrong", DOUBT: "in doubt", KINK: "at a kink", PASS: "right"}[self.status]
        if self.at is not None:  # got/expected are act'(v) itself: say how far off it is
            rel = abs(self.got - self.expected) / max(abs(self.expected), np.finfo(float).tiny)
            size = f"its own rel err {rel:.2e}"
        else:  # the worst entry's own error and tolerance
            size = f"abs err {abs(self.got - self.expected):.2e}, tolerance {self.tolerance:.2e}"
        digits = self.digits()
        return (
            f"{self.where} ({self.scope}): {what} {verb}{at}{index} "
            f"(got {self.got:.{digits}g}, expected {self.expected:.{digits}g}; {size})"
        )


def _plain(value):
    """A JSON-safe value: tuples as lists, NaN and Inf as None."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class Report:
    """The result of a check. ``ok`` is False exactly when a row FAILs (or doubts, if strict)."""

    rows: list[Row]
    strict: bool = False
    title: str = "gradient check"
    notes: list[str] = field(default_factory=list)
    judged_by: str = ""
    """Which sources of truth judged (set by the general checks); shown in the headline."""

    @property
    def ok(self) -> bool:
        bad = {FAIL, DOUBT} if self.strict else {FAIL}
        return not any(r.status in bad for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        """The headline only, so ``assert report`` in pytest shows the verdict, not the rows."""
        return f"<Report: {self.headline}>"

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status == FAIL]

    @property
    def first_failure(self) -> Row | None:
        """The earliest wrong term in backward order: local terms first, as rows are ordered."""
        fails = self.failures
        local = [r for r in fails if r.scope == "local"]
        return (local or fails or [None])[0]

    def row(self, name: str) -> Row:
        """The row of the input called ``name`` (``check_vjp`` reports one row per input)."""
        for r in self.rows:
            if r.input == name:
                return r
        raise KeyError(f"no row for input {name!r}; inputs checked: "
                       f"{[r.input for r in self.rows if r.input is not None]}")

    def wrong_entries(self, name: str) -> list[tuple[int, ...]]:
        """The FAILing entries of input ``name``, as indices in its own shape."""
        return self.row(name).wrong_entries()

    @property
    def headline(self) -> str:
        text = self._headline()
        return f"{text} [{self.judged_by}]" if self.judged_by else text

    def _headline(self) -> str:
        first = self.first_failure
        kinks = sum(r.kinks for r in self.rows if not r.directions)
        doubts = sum(r.doubts for r in self.rows if not r.directions)
        extra = f"; {kinks} kink entries, {doubts} doubtful entries" if kinks or doubts else ""
        if first is not None:
            return f"FAIL: {first.describe()}"
        if self.strict and self.count(DOUBT):
            row = next(r for r in self.rows if r.status == DOUBT)
            return f"FAIL (strict): {row.describe()}"
        if self.count(DOUBT):
            row = next(r for r in self.rows if r.status == DOUBT)
            return f"OK, but the check itself is in doubt: {row.describe()}{extra}"
        if len(self.rows) == 1 and self.rows[0].input is not None:
            return f"OK: {self.rows[0].where} agrees{extra}"
        what = "inputs" if all(r.input is not None and r.layer is None for r in self.rows) \
            else "terms"
        return f"OK: all {len(self.rows)} {what} agree{extra}"

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "ok": self.ok,
            "strict": self.strict,
            "headline": self.headline,
            "counts": {s: self.count(s) for s in (PASS, FAIL, KINK, DOUBT)},
            "notes": self.notes,
            "judged_by": self.judged_by,
            "rows": [self._row_dict(r) for r in self.rows],
        }

    @staticmethod
    def _row_dict(r: Row) -> dict:
        out = {k: _plain(getattr(r, k)) for k in (f.name for f in fields(r)) if k != "mask"}
        out["wrong_entries"] = [list(i) for i in r.wrong_entries()[:WRONG_ENTRIES_LISTED]]
        return out

    def to_json(self, **kwargs) -> str:
        """Strict JSON (non-finite numbers become null)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def __str__(self) -> str:
        lines = [self.headline, f"{self.title}:"]
        header = ("layer", "term", "scope", "sources", "status", "max abs err", "max rel err",
                  "tolerance", "kinks", "worst entry")
        table = [header]
        for r in self.rows:
            where = (f"direction {r.direction}" if r.direction is not None
                     else f"[{','.join(map(str, r.index))}]")
            d = r.digits()
            worst = f"{where} got {r.got:.{d}g} exp {r.expected:.{d}g}"
            if r.at is not None:
                worst += f" at v={r.at:.4g}"
            table.append((
                "-" if r.layer is None else str(r.layer),
                r.term + (f" {r.name}" if r.name else ""),
                r.scope,
                "+".join(r.sources),
                r.status,
                f"{r.max_abs_err:.1e}",
                f"{r.max_rel_err:.1e}",
                f"{r.tolerance:.1e}",
                str(r.kinks),
                worst,
            ))
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for i, row in enumerate(table):
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        for r in self.rows:
            if r.note:
                lines.append(f"  note: {r.where} ({r.scope}): {r.note}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


_SOURCE_NAMES = {("jax", "fd"): "JAX and finite differences", ("fd",): "finite differences alone",
                 ("jax",): "JAX alone", (): "no source of truth"}


def sources_statement(rows: list[Row]) -> str:
    """Which sources of truth judged, for the headline: those of most rows (``"judged by JAX
    and finite differences"``), and the rows judged otherwise that did not pass, named
    (``"...; finite differences alone for layer 1 dX"``): a verdict of FAIL, doubt or kink
    always says what it rests on; the table's ``sources`` column has every row's. Rows that
    could not be compared at all (a wrong shape, an exception) judged nothing: left out."""
    judged = [r for r in rows if r.sources or np.isfinite(r.max_abs_err)]
    if not judged:
        return ""
    kinds = [tuple(s for s in ("jax", "fd") if s in r.sources) for r in judged]
    best = max(sorted(set(kinds)), key=lambda k: (kinds.count(k), len(k)))  # ties: fixed
    text = f"judged by {_SOURCE_NAMES[best]}"
    others: dict[tuple[str, ...], list[str]] = {}
    for r, k in zip(judged, kinds):
        if k != best and r.status != PASS:
            others.setdefault(k, []).append(r.where)
    for k, where in others.items():
        named = ", ".join(where) if len(where) <= 3 else f"{len(where)} terms"
        text += f"; {_SOURCE_NAMES[k]} for {named}"
    return text


def annotate_symptoms(rows: list[Row]) -> None:
    """Mark failing totals that follow from an earlier failing local term."""
    first = next((r for r in rows if r.status == FAIL and r.scope == "local"), None)
    if first is None:
        return
    for r in rows:
        if r.status == FAIL and r is not first and r.scope == "total":
            r.note = "; ".join(filter(None, [r.note, f"follows from {first.where}"]))
