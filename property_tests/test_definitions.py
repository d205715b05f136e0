"""Defining activations and losses: what is accepted, what is refused, and what errors say.

A user hands the network their own ``Activation`` and ``Loss``; a malformed one must be refused
at once, with a message that names the field and shows the value, not fail later inside a
backward pass. Names are looked up with messages that list every valid name.
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import ACTIVATIONS, LOSSES, Activation, Loss, get_activation, get_loss
from reference.activations import resolve_activations

from .profiles import budget

names = st.text(min_size=1, max_size=12)
not_names = st.one_of(st.just(""), st.integers(), st.none(), st.lists(st.integers(), max_size=2))
not_callables = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))


def _identity(v):
    return v


def _one(v):
    return np.ones_like(v)


@settings(max_examples=budget(0.5))
@given(name=names)
def test_any_non_empty_name_with_callables_defines_an_activation_and_a_loss(name):
    act = Activation(name, _identity, _one)
    assert act.name == name and repr(act) == f"Activation({name!r})"
    assert get_activation(act) is act
    loss = Loss(name, lambda y, t: 0.0, lambda y, t: y)
    assert get_loss(loss) is loss and repr(loss) == f"Loss({name!r})"


@settings(max_examples=budget(0.5))
@given(name=not_names)
def test_an_activation_or_loss_without_a_proper_name_is_refused_with_the_name_shown(name):
    for make in (lambda: Activation(name, _identity, _one),
                 lambda: Loss(name, lambda y, t: 0.0, lambda y, t: y)):
        with pytest.raises(TypeError, match=r"name must be a non-empty str, got " +
                           re.escape(repr(name))):
            make()


@settings(max_examples=budget(0.5))
@given(bad=not_callables)
def test_a_non_callable_function_is_refused_naming_the_field(bad):
    with pytest.raises(TypeError, match=r"Activation 'a': f must be callable, got "):
        Activation("a", bad, _one)
    with pytest.raises(TypeError, match=r"Activation 'a': df must be callable, got "):
        Activation("a", _identity, bad)
    Activation("a", _identity, None)  # df=None is allowed (softmax-like; refused when used)
    with pytest.raises(TypeError, match=r"Loss 'l': value must be callable"):
        Loss("l", bad, lambda y, t: y)
    with pytest.raises(TypeError, match=r"Loss 'l': grad must be callable"):
        Loss("l", lambda y, t: 0.0, bad)


def test_an_elementwise_activation_without_a_derivative_is_refused_when_used():
    with pytest.raises(TypeError, match=r"Activation 'a' has no derivative df"):
        get_activation(Activation("a", _identity, None))
    assert repr(ACTIVATIONS["softmax"]) == "Softmax()" and not ACTIVATIONS["softmax"].elementwise


@settings(max_examples=budget(0.5))
@given(name=names.filter(lambda n: n not in ACTIVATIONS and n not in LOSSES))
def test_an_unknown_name_is_refused_with_every_valid_name_listed(name):
    with pytest.raises(ValueError) as info:
        get_activation(name)
    assert str(info.value) == (f"unknown activation {name!r}; expected one of: "
                               + ", ".join(ACTIVATIONS))
    with pytest.raises(ValueError) as info:
        get_loss(name)
    assert str(info.value) == f"unknown loss {name!r}; expected one of: " + ", ".join(LOSSES)


@pytest.mark.parametrize("spec", [3, None, 1.5, [("tanh",)]])
def test_a_spec_that_is_neither_a_name_nor_an_object_is_refused_with_its_type(spec):
    kind = type(spec).__name__
    with pytest.raises(TypeError) as info:
        get_activation(spec)
    assert str(info.value) == ("an activation must be a name (str) or an Activation, got "
                               f"{kind}: {spec!r}")
    with pytest.raises(TypeError) as info:
        get_loss(spec)
    assert str(info.value) == f"a loss must be a name (str) or a Loss, got {kind}: {spec!r}"


@settings(max_examples=budget(0.5))
@given(count=st.integers(1, 4), given_count=st.integers(0, 5))
def test_one_activation_per_layer_is_required(count, given_count):
    specs = ["tanh"] * given_count
    if given_count == count:
        assert resolve_activations(specs, count) == [ACTIVATIONS["tanh"]] * count
        return
    with pytest.raises(ValueError) as info:
        resolve_activations(specs, count)
    assert str(info.value) == (f"expected {count} activations (one per layer), got "
                               f"{given_count}: {specs!r}")


@pytest.mark.parametrize("single", ["tanh", ACTIVATIONS["relu"]])
def test_a_single_activation_instead_of_a_list_is_refused(single):
    with pytest.raises(TypeError) as info:
        resolve_activations(single, 2)
    assert str(info.value) == ("activations must be a list of 2 names or Activation objects, "
                               f"one per layer, got a single {type(single).__name__}: {single!r}")
