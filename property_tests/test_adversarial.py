"""The oracle on the adversarial catalogue (``adversarial.py``, issue #12): no wrong verdict.

A right gradient must end in pass (or kink), doubt or a refusal; a wrong one in FAIL, doubt or a
refusal. Truth comes from construction or mpmath, never from the oracle.

By default only the fast subset runs (the cases marked ``fast``: every class, right and wrong,
in well under 40 s); ``ADVERSARIAL=all`` runs the whole catalogue:

    ADVERSARIAL=all .venv/bin/python -m pytest property_tests/test_adversarial.py -q

Cases the oracle currently gets wrong are ``xfail(strict=True)`` with the blind spot as the
reason (``KNOWN_WRONG``): a fix that makes one right turns it into XPASS, which fails, so the
list is kept current. ``python -m property_tests.adversarial_docs --known-wrong`` prints the
entries of ``KNOWN_WRONG`` for the cases that are wrong now (the blind spots' texts and the rules
that assign them live in ``adversarial_docs.py``).
"""

from __future__ import annotations

import os

import pytest

from .adversarial import CASES, KLASSES, RIGHT, WRONG, correct, outcome
from .adversarial_docs import BLIND_SPOTS as _BLIND

ALL = os.environ.get("ADVERSARIAL", "").lower() == "all"

KNOWN_WRONG: dict[str, str] = {}
"""Cases the oracle currently gets wrong, with the blind spot behind each."""


def _params():
    for name, case in CASES.items():
        if not (ALL or case.fast):
            continue
        marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[name])]
                 if name in KNOWN_WRONG else [])
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_the_oracle_gives_no_wrong_verdict(name):
    case = CASES[name]
    result = outcome(case)
    assert correct(case.truth, result.verdict), (
        f"{name}: a {case.truth} gradient ({case.what}) got {result.verdict}:\n"
        f"{result.headline}")


def test_the_catalogue_covers_every_class_with_right_and_wrong_cases():
    assert len(CASES) >= 150
    for klass in KLASSES:
        truths = {c.truth for c in CASES.values() if c.klass == klass}
        assert truths == {RIGHT, WRONG}, klass
        assert any(c.fast for c in CASES.values() if c.klass == klass), klass


def test_known_wrong_cases_exist():
    assert set(KNOWN_WRONG) <= set(CASES), sorted(set(KNOWN_WRONG) - set(CASES))
    assert set(KNOWN_WRONG.values()) <= set(_BLIND.values()), "a reason must be a blind spot"
