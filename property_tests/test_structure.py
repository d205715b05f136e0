"""Structural properties of backpropagation that hold whatever the network.

The bias gradient is a batch sum; a batch gradient is the mean of per-sample gradients; the
order of the samples and the shape of each sample do not matter; the SGD step is eq 10 exactly,
and a small enough step lowers the loss of a smooth network.
"""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from oracle.strategies import Case, cases, network_specs

from . import properties as P
from . import regressions as R
from .profiles import budget


@settings(max_examples=budget(1))
@given(case=cases())
def test_bias_gradient_is_the_batch_sum_of_dE_dV(case):
    P.bias_gradient_is_the_batch_sum_of_dE_dV(case)


@settings(max_examples=budget(1))
@given(case=cases(min_batch=2))
@example(case=R.NEARLY_UNIFORM_SOFTMAX)
def test_batch_gradient_is_the_mean_of_the_per_sample_gradients(case):
    P.batch_gradient_is_the_mean_of_sample_gradients(case)


@settings(max_examples=budget(1))
@given(case=cases(min_batch=2), data=st.data())
def test_permuting_the_batch_changes_nothing(case, data):
    P.permuting_the_batch_changes_nothing(case, data=data)


@settings(max_examples=budget(1))
@given(case=cases())
def test_reshaping_the_input_does_not_change_the_gradients(case):
    P.reshaping_the_input_changes_nothing(case)


@settings(max_examples=budget(1))
@given(case=cases(), data=st.data())
def test_a_step_moves_every_weight_by_minus_lr_times_its_gradient(case, data):
    P.step_moves_weights_by_minus_lr_times_gradient(case, data=data)


@settings(max_examples=budget(1))
@given(case=cases(network_specs(smooth=True)))
@example(case=R.TINY_GRADIENT_STEP)
def test_a_small_enough_step_lowers_the_loss_of_a_smooth_network(case):
    P.small_step_lowers_the_loss(case)


@settings(max_examples=budget(0.5))
@given(case=cases())
def test_repeated_calls_return_identical_gradients(case):
    P.repeated_calls_give_identical_results(case)


@settings(max_examples=budget(0.5))
@given(case=cases())
def test_a_trace_without_the_input_gradient_skips_it_and_changes_nothing_else(case):
    P.trace_without_input_gradient_changes_nothing_else(case)


@settings(max_examples=budget(0.5))
@given(case=cases())
@example(case=Case.of([2, 3, 2], ["softmax", "sigmoid"], "mse", X=[[1.0, -1.0]], T=[[0.5, 0.0]]))
def test_the_one_layer_backward_gives_each_layer_of_the_trace(case):
    P.layer_backward_matches_the_trace(case)
