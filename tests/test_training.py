"""Training: hand-computed SGD epochs, seeded reproducibility, divergence, the seed's demo, and
the buffers a step reuses."""

import copy
import pickle

import numpy as np
import pytest

from reference import DivergenceError, Network, training
from reference.datasets import patterns_3x3
from reference.workspace import Workspace, WorkspaceCache


def identity_unit(w, b):
    """y = w x + b, trained with mse: every number below can be worked out on paper."""
    net = Network([1, 1], ["identity"], "mse", seed=0)
    net.weights = [np.array([[w], [b]])]
    return net


def test_one_full_batch_epoch_is_one_step_and_reports_the_loss_before_it():
    net = identity_unit(2.0, 1.0)
    history = net.fit(np.array([[3.0]]), np.array([[4.0]]), epochs=1, lr=0.1, shuffle=False)
    # y = 7, E = 9/2; dW = [3 * 3, 3]; W = [2 - 0.9, 1 - 0.3]
    assert history == [4.5]
    np.testing.assert_allclose(net.weights[0], [[1.1], [0.7]], rtol=1e-15)  # 0.1 * 9: 1 ulp


def test_a_second_epoch_reports_the_loss_after_the_first_step():
    net = identity_unit(2.0, 1.0)
    history = net.fit(np.array([[3.0]]), np.array([[4.0]]), epochs=2, lr=0.1, shuffle=False)
    assert history[0] == 4.5
    # After the step y = 1.1 * 3 + 0.7 = 4 exactly in reals; in float64 off by ~1 ulp of 4,
    # so E = (1e-15)^2 / 2 ~ 1e-30.
    assert history[1] < 1e-25


def test_an_epoch_loss_is_the_batch_size_weighted_mean_of_the_losses_before_each_step():
    net = identity_unit(0.0, 0.0)
    x, t = np.array([[1.0], [2.0], [3.0]]), np.ones((3, 1))
    history = net.fit(x, t, epochs=1, lr=0.5, batch_size=2, shuffle=False)
    # batch [1, 2]: y = [0, 0], E = 1/2, dE/dY = [-1/2, -1/2], dW = [-3/2, -1] -> W = [3/4, 1/2]
    # batch [3]:    y = 11/4, E = (7/4)^2 / 2 = 49/32, dW = [21/4, 7/4] -> W = [-15/8, -3/8]
    # epoch loss: (2 * 1/2 + 1 * 49/32) / 3 = 27/32. All dyadic: exact in float64.
    assert history == [27 / 32]
    np.testing.assert_array_equal(net.weights[0], [[-15 / 8], [-3 / 8]])


def test_batch_size_none_means_the_whole_data_set_in_one_step():
    a, b = identity_unit(0.5, 0.0), identity_unit(0.5, 0.0)
    x, t = np.array([[1.0], [2.0], [3.0]]), np.ones((3, 1))
    assert a.fit(x, t, epochs=3, lr=0.1, batch_size=None, seed=0) == \
        b.fit(x, t, epochs=3, lr=0.1, batch_size=3, seed=0)
    assert a.weights[0].tobytes() == b.weights[0].tobytes()


def test_the_callback_receives_each_epoch_index_and_its_loss():
    net = identity_unit(0.5, 0.0)
    seen = []
    history = net.fit(np.array([[1.0], [2.0]]), np.ones((2, 1)), epochs=4, lr=0.1,
                      callback=lambda epoch, loss: seen.append((epoch, loss)))
    assert len(history) == 4 and all(type(h) is float for h in history)
    assert seen == list(enumerate(history))


# --- reproducibility ---------------------------------------------------------------------------


def classification_problem():
    rng = np.random.default_rng(11)
    return rng.normal(size=(24, 4)), rng.integers(0, 3, size=24)


def train(seed, shuffle=True, net_seed=1):
    x, labels = classification_problem()
    net = Network([4, 6, 3], ["tanh", "softmax"], "cross_entropy", seed=net_seed)
    history = net.fit(x, labels, epochs=5, lr=0.3, batch_size=4, seed=seed, shuffle=shuffle)
    return history, net.weights


def test_the_same_fit_seed_gives_the_same_history_and_bit_identical_weights():
    h1, w1 = train(seed=0)
    h2, w2 = train(seed=0)
    assert h1 == h2
    assert [w.tobytes() for w in w1] == [w.tobytes() for w in w2]


def test_different_fit_seeds_shuffle_differently_and_end_with_different_weights():
    h1, w1 = train(seed=0)
    h2, w2 = train(seed=1)
    assert h1 != h2
    assert not np.array_equal(w1[0], w2[0])


def test_without_shuffling_the_fit_seed_does_not_matter():
    h1, w1 = train(seed=0, shuffle=False)
    h2, w2 = train(seed=1, shuffle=False)
    assert h1 == h2
    assert [w.tobytes() for w in w1] == [w.tobytes() for w in w2]


def test_different_network_seeds_train_to_different_weights():
    _, w1 = train(seed=0, net_seed=1)
    _, w2 = train(seed=0, net_seed=2)
    assert not np.array_equal(w1[0], w2[0])


# --- divergence --------------------------------------------------------------------------------


def diverging_problem():
    # A relu net pushed towards targets of 1000 with lr = 1e6: the weights grow by orders of
    # magnitude every step until the squared error overflows (epoch 5 of 100 here).
    net = Network([1, 8, 1], ["relu", "identity"], "mse", seed=0)
    return net, np.linspace(1.0, 2.0, 10)[:, None], np.full((10, 1), 1000.0)


def test_diverging_training_raises_a_divergence_error_naming_epoch_step_and_lr():
    net, x, t = diverging_problem()
    with pytest.raises(DivergenceError,
                       match=r"training diverged at epoch \d+/100, step \d+/5 with lr=1000000\.0"):
        net.fit(x, t, epochs=100, lr=1e6, batch_size=2, seed=0)
    assert all(np.all(np.isfinite(w)) for w in net.weights)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_the_divergence_message_says_the_weights_are_the_last_finite_ones():
    net, x, t = diverging_problem()
    with pytest.raises(DivergenceError, match=r"the network keeps its last finite weights"):
        net.fit(x, t, epochs=100, lr=1e6, batch_size=2, seed=0)


def test_divergence_is_a_divergence_error_even_when_warnings_are_errors():
    net, x, t = diverging_problem()
    with pytest.raises(DivergenceError, match=r"training diverged at epoch"):
        net.fit(x, t, epochs=100, lr=1e6, batch_size=2, seed=0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_step_whose_loss_overflows_raises_and_leaves_the_weights_unchanged(unchanged):
    net = identity_unit(1.0, 0.0)
    with unchanged(net), pytest.raises(DivergenceError, match=r"the loss is inf; weights left "
                                                             r"unchanged"):
        net.step(np.array([[1e200]]), np.array([[0.0]]), 0.1)  # (1e200)^2 overflows


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_step_whose_update_overflows_raises_and_leaves_the_weights_unchanged(unchanged):
    net = Network([1, 2, 1], ["identity", "identity"], "mse", seed=0)
    net.weights = [np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[1.0], [1.0], [0.0]])]
    # x = 1e150: y = 2e150, E = (2e150)^2 / 2 = 2e300 is finite, dW entries are 2e300, and
    # lr * dW = 2e310 overflows. No layer's update may be committed.
    with unchanged(net), pytest.raises(
        DivergenceError,
        match=r"the update of weights\[0\] is not finite \(lr=10000000000\.0\); weights left "
              r"unchanged",
    ):
        net.step(np.array([[1e150]]), np.array([[0.0]]), 1e10)


# --- the seed's demo ---------------------------------------------------------------------------


def test_the_9_9_9_tanh_autoencoder_learns_every_3x3_pattern():
    patterns = patterns_3x3()
    assert patterns.shape == (18, 3, 3)
    assert set(np.unique(patterns)) == {0.0, 1.0}
    targets = patterns.reshape(18, 9)
    net = Network([9, 9, 9], ["tanh", "tanh"], "mse", seed=0)
    history = net.fit(patterns, targets, epochs=2000, lr=0.1, batch_size=1, seed=0)
    out = net.forward(patterns)
    # The run reaches a max abs error of ~0.02; 0.1 leaves room for harmless floating-point
    # differences between platforms while still failing a network that has not learned.
    assert np.max(np.abs(out - targets)) < 0.1
    np.testing.assert_array_equal(out > 0.5, targets > 0.5)
    assert history[-1] < history[0] / 100


# --- defaults, shuffling, where a divergence is reported ---------------------------------------


def test_fit_defaults_to_one_shuffled_epoch_at_lr_0_1():
    x, t = np.array([[1.0], [2.0], [3.0]]), np.ones((3, 1))
    by_default = identity_unit(0.5, 0.0)
    explicit = identity_unit(0.5, 0.0)
    history = by_default.fit(x, t, batch_size=1, seed=3)
    assert history == explicit.fit(x, t, epochs=1, lr=0.1, batch_size=1, seed=3, shuffle=True)
    assert by_default.weights[0].tobytes() == explicit.weights[0].tobytes()
    in_order = identity_unit(0.5, 0.0)
    in_order.fit(x, t, epochs=1, lr=0.1, batch_size=1, shuffle=False)
    # seed 3 reverses the order, so the unshuffled run differs
    assert in_order.weights[0].tobytes() != by_default.weights[0].tobytes()


def test_a_shuffled_full_batch_epoch_is_one_step_on_the_samples_in_shuffled_order():
    # The bias gradient sums y - t over the batch; with 1e16 and -1e16 among the samples that
    # sum depends on the order, so only the shuffled order reproduces fit bit for bit.
    x, t = np.array([[1e16], [1.0], [-1e16], [3.0], [1.0]]), np.zeros((5, 1))
    order = np.random.default_rng(0).permutation(5)
    fitted, stepped, unshuffled = (identity_unit(1.0, 0.0) for _ in range(3))
    fitted.fit(x, t, epochs=1, lr=1e-40, seed=0)
    stepped.step(x[order], t[order], 1e-40)
    unshuffled.step(x, t, 1e-40)
    assert fitted.weights[0].tobytes() == stepped.weights[0].tobytes()
    assert fitted.weights[0].tobytes() != unshuffled.weights[0].tobytes()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_divergence_names_the_epoch_and_step_counted_from_one():
    net = identity_unit(1.0, 0.0)
    x, t = np.array([[1.0], [1e200]]), np.zeros((2, 1))
    # step 1 (x = 1) is harmless; step 2 squares 0.9e200 and overflows.
    with pytest.raises(DivergenceError, match=r"^training diverged at epoch 1/3, step 2/2 "
                                              r"with lr=0\.1: "):
        net.fit(x, t, epochs=3, lr=0.1, batch_size=1, shuffle=False)


# --- the step's buffers (workspace.py) ---------------------------------------------------------


def test_the_workspace_cache_reuses_the_buffers_of_a_batch_size():
    cache = WorkspaceCache()
    work = cache.get([3, 4, 2], 5)
    assert work.batch == 5
    assert [v.shape for v in work.vs] == [(5, 4), (5, 2)]
    assert work.dxs[0] is None and [d.shape for d in work.dxs[1:]] == [(5, 4)]
    assert [d.shape for d in work.dws] == [(4, 4), (5, 2)]
    assert cache.get([3, 4, 2], 5) is work


def test_the_workspace_cache_keeps_the_two_most_recently_used_batch_sizes():
    cache = WorkspaceCache()
    full, last = cache.get([3, 2], 8), cache.get([3, 2], 3)  # fit with a short last batch
    for _ in range(3):
        assert cache.get([3, 2], 8) is full
        assert cache.get([3, 2], 3) is last
    other = cache.get([3, 2], 1)  # a third size evicts the least recently used one (8)
    assert cache.get([3, 2], 3) is last and cache.get([3, 2], 1) is other
    assert cache.get([3, 2], 8) is not full


def test_the_workspace_cache_makes_new_buffers_when_the_layer_sizes_change():
    cache = WorkspaceCache()
    cache.get([3, 2], 4)
    work = cache.get([5, 6, 1], 4)
    assert work.sizes == (5, 6, 1) and [v.shape for v in work.vs] == [(4, 6), (4, 1)]


def test_a_workspace_larger_than_max_bytes_serves_one_call_and_is_not_kept():
    size = Workspace([3, 2], 4).nbytes
    at_limit, above = WorkspaceCache(max_bytes=size), WorkspaceCache(max_bytes=size - 1)
    assert at_limit.get([3, 2], 4) is at_limit.get([3, 2], 4)
    assert above.get([3, 2], 4) is not above.get([3, 2], 4)
    assert above.nbytes == 0 and at_limit.nbytes == size


@pytest.mark.parametrize("copy_", [copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))])
def test_a_copied_workspace_cache_starts_empty_with_the_same_limits(copy_):
    cache = WorkspaceCache(keep=3, max_bytes=12345)
    cache.get([3, 2], 4)
    clone = copy_(cache)
    assert (clone.keep, clone.max_bytes, clone.nbytes) == (3, 12345, 0)
    assert clone.get([3, 2], 4) is clone.get([3, 2], 4)


@pytest.mark.parametrize("copy_", [copy.deepcopy, lambda n: pickle.loads(pickle.dumps(n))])
def test_a_copied_network_trains_on_exactly_like_the_original(copy_):
    x, labels = np.linspace(-1.0, 1.0, 12).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2])
    net = Network([2, 4, 3], ["tanh", "softmax"], "cross_entropy", seed=0)
    net.fit(x, labels, epochs=2, lr=0.5, batch_size=4, seed=0)  # fills the buffers
    clone = copy_(net)
    assert net.fit(x, labels, epochs=2, lr=0.5, batch_size=4, seed=1) == \
        clone.fit(x, labels, epochs=2, lr=0.5, batch_size=4, seed=1)
    assert [w.tobytes() for w in net.weights] == [w.tobytes() for w in clone.weights]


def test_training_fit_defaults_to_one_shuffled_epoch_at_lr_0_1():
    x, t = np.array([[1.0], [2.0], [3.0]]), np.ones((3, 1))
    by_default, explicit, in_order = (identity_unit(0.5, 0.0) for _ in range(3))
    history = training.fit(by_default, x, t, batch_size=1, seed=3)
    assert history == training.fit(explicit, x, t, epochs=1, lr=0.1, batch_size=1, seed=3,
                                   shuffle=True)
    assert by_default.weights[0].tobytes() == explicit.weights[0].tobytes()
    training.fit(in_order, x, t, epochs=1, lr=0.1, batch_size=1, seed=3, shuffle=False)
    assert in_order.weights[0].tobytes() != by_default.weights[0].tobytes()
