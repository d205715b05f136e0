"""A failing property is a reproducer: its message holds a standalone script and the oracle's
localised report, and its ``Case.of(...)`` line rebuilds the case exactly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from oracle.strategies import Case, cases

from . import properties as P
from .profiles import budget
from .reproduce import PropertyFailure
from .zoo import MUTANTS

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=budget(0.5))
@given(case=cases())
def test_a_case_rebuilds_itself_from_its_repr(case):
    again = eval(repr(case), {"Case": Case})
    assert again.spec.sizes == case.spec.sizes
    assert again.spec.activation_names == case.spec.activation_names
    assert again.spec.loss == case.spec.loss and again.spec.seed == case.spec.seed
    assert np.array_equal(again.X, case.X) and again.X.shape == case.X.shape
    assert np.array_equal(again.T, case.T) and again.T.dtype.kind == case.T.dtype.kind
    for a, b in zip(again.network().weights, case.network().weights):
        assert np.array_equal(a, b)  # repr of a float round-trips: bit for bit


@pytest.fixture(scope="module")
def failure():
    mutant = MUTANTS["sigmoid_prime_is_s"]
    with pytest.raises(PropertyFailure) as info:
        P.backward_matches_autodiff(mutant.pinned, mutant.builder())
    return info.value


def test_a_failure_message_names_the_problem_and_gives_a_script_a_pin_and_the_report(failure):
    text = str(failure)
    assert text.startswith("hand-derived gradients differ from JAX's")
    assert "Reproduce without Hypothesis:" in text
    assert "net = MUTANTS['sigmoid_prime_is_s'].mutate(net)" in text
    assert "Pin it: @example(case=Case.of(" in text
    assert "FAIL: layer 1 activation 'sigmoid' (local)" in text  # the oracle's localisation


def test_the_script_in_a_failure_message_reproduces_it_without_hypothesis(failure):
    result = subprocess.run([sys.executable, "-c", failure.script()], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.startswith("FAIL: layer 1 activation 'sigmoid' (local)"), result.stdout


def test_the_report_is_computed_only_when_the_message_is_rendered(failure, monkeypatch):
    calls = []
    fresh = PropertyFailure("problem", failure.case, failure.build)
    monkeypatch.setattr(PropertyFailure, "oracle_report", lambda self: calls.append(1) or "")
    assert calls == []
    str(fresh)
    str(fresh)
    assert calls == [1]
