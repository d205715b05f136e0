"""Attack suite, part 3: every public call with bad arguments (issue 13).

The promise asserted for each attempt: a ``TypeError`` or ``ValueError`` (never AttributeError,
numpy's own errors or a MemoryError), a message that names the argument (and, for arrays, the
entry in the array's own shape), and **nothing changed**: the network's weights are the same
bytes, the caller's arrays too, and a refused ``fit`` has not trained. Weights edited in place
into another type, dtype or shape are refused by every entry point.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from reference import Network
from reference.errors import TooLargeError

B = 5


def fresh() -> Network:
    return Network([4, 3, 2], ["tanh", "identity"], "mse", seed=0)


def good_x() -> np.ndarray:
    return np.linspace(-1.0, 1.0, B * 4).reshape(B, 4)


def good_t() -> np.ndarray:
    return np.linspace(0.0, 1.0, B * 2).reshape(B, 2)


def snapshot(net: Network) -> list[tuple]:
    return [(type(w).__name__, getattr(w, "dtype", None), np.asarray(w).tobytes())
            for w in net.weights]


def refused(call, error, *fragments):
    """Run ``call``; assert it raises ``error`` whose message holds every fragment."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert len(message) < 500, message
    return message


# --- Network(...) --------------------------------------------------------------------------------

CONSTRUCTOR = [
    ({"layer_sizes": None}, TypeError, "layer_sizes must be a list of ints"),
    ({"layer_sizes": "4,3"}, TypeError, "layer_sizes must be a list of ints"),
    ({"layer_sizes": 4}, TypeError, "layer_sizes must be a list of ints"),
    ({"layer_sizes": []}, ValueError, "layer_sizes needs at least 2 entries"),
    ({"layer_sizes": [4]}, ValueError, "layer_sizes needs at least 2 entries"),
    ({"layer_sizes": [4, 0]}, ValueError, "layer_sizes[1] must be a positive int, got 0"),
    ({"layer_sizes": [-4, 2]}, ValueError, "layer_sizes[0] must be a positive int, got -4"),
    ({"layer_sizes": [4, 2.0]}, TypeError, "layer_sizes[1] must be an int, got float: 2.0"),
    ({"layer_sizes": [4, True]}, TypeError, "layer_sizes[1] must be an int, got bool"),
    ({"layer_sizes": [4, "2"]}, TypeError, "layer_sizes[1] must be an int, got str: '2'"),
    ({"layer_sizes": [4, None]}, TypeError, "layer_sizes[1] must be an int, got NoneType"),
    ({"layer_sizes": [[4], 2]}, TypeError, "layer_sizes[0] must be an int, got list"),
    ({"layer_sizes": [2**63, 2]}, TooLargeError, "layer_sizes [9223372036854775808, 2] needs"),
    ({"layer_sizes": [2, 2**62]}, TooLargeError, "more than this machine can address"),
    ({"layer_sizes": [10**30, 10**30]}, TooLargeError, "more than this machine can address"),
    ({"layer_sizes": [4, "x" * 10_000]}, TypeError, "layer_sizes[1] must be an int, got str"),
    ({"activations": None}, TypeError, "activations must be a list of 1 names or Activation "
                                       "objects, one per layer, got NoneType: None"),
    ({"activations": 3}, TypeError, "activations must be a list of 1 names"),
    ({"activations": "tanh"}, TypeError, "activations must be a list of 1 names"),
    ({"activations": []}, ValueError, "expected 1 activations (one per layer), got 0"),
    ({"activations": ["tanh", "tanh"]}, ValueError, "expected 1 activations (one per layer)"),
    ({"activations": ["swish"]}, ValueError, "unknown activation 'swish'"),
    ({"activations": [3]}, TypeError, "an activation must be a name (str) or an Activation"),
    ({"activations": [None]}, TypeError, "an activation must be a name (str) or an Activation"),
    ({"loss": None}, TypeError, "loss"),
    ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
    ({"loss": 3}, TypeError, "loss"),
    ({"loss": "cross_entropy"}, ValueError, "loss 'cross_entropy' needs the last activation "
                                            "to be 'softmax', got 'identity'"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int or None, got -1"),
    ({"seed": 1.5}, ValueError, "seed must be a non-negative int or None, got 1.5"),
    ({"seed": "0"}, ValueError, "seed must be a non-negative int or None, got '0'"),
    ({"seed": True}, ValueError, "seed must be a non-negative int or None, got True"),
    ({"seed": [1]}, ValueError, "seed must be a non-negative int or None, got [1]"),
    ({"init": "xavier"}, ValueError, "unknown init 'xavier'"),
    ({"init": None}, ValueError, "unknown init None"),
]


@pytest.mark.parametrize(("changes", "error", "message"), CONSTRUCTOR,
                         ids=[f"{next(iter(c))}={next(iter(c.values()))!r:.20}"
                              for c, _, _ in CONSTRUCTOR])
def test_the_constructor_names_the_argument(changes, error, message):
    args = {"layer_sizes": [4, 2], "activations": ["identity"], "loss": "mse", "seed": 0,
            "init": "glorot", **changes}
    refused(lambda: Network(args.pop("layer_sizes"), args.pop("activations"), **args),
            error, message)


# --- X, T, lr and fit's options, at every entry point: named, and nothing changed -----------------

NAN_X = np.zeros((B, 2, 2))
NAN_X[2, 1, 0] = np.nan

# An extended-precision float beyond float64 (x86's 80-bit long double): finite as given,
# inf once converted. Where long double is float64 itself, the attempts are left out.
EXTENDED = np.finfo(np.longdouble).max > np.finfo(np.float64).max


def overflowing(shape: tuple[int, ...], at: tuple[int, ...], sign: int = 1) -> np.ndarray:
    """A longdouble array of zeros with +-1e4000 at ``at``."""
    a = np.zeros(shape, dtype=np.longdouble)
    a[at] = sign * np.longdouble("1e4000")
    return a


BAD_X = [
    ("None", None, TypeError, "X must hold real numbers"),
    ("a string", "abc", TypeError, "X must hold real numbers (float or int), got dtype <U3"),
    ("ragged lists", [[1.0, 2.0], [3.0]], TypeError, "X must be a numeric array, could not "
                                                     "convert it"),
    ("complex", np.ones((B, 4), complex), TypeError, "X must hold real numbers (float or int), "
                                                     "got dtype complex128"),
    ("objects", np.full((B, 4), None), TypeError, "X must hold real numbers"),
    ("1-D", np.ones(4), ValueError, "X must have a batch axis first"),
    ("0-D", np.float64(1.0), ValueError, "X must have a batch axis first"),
    ("an empty batch", np.ones((0, 4)), ValueError, "X is an empty batch"),
    ("the wrong width", np.ones((B, 5)), ValueError, "X has 5 values per sample"),
    ("NaN at X[2, 1, 0]", NAN_X, ValueError, "X must be finite, found 1 NaN/Inf entries (first "
                                             "at index (2, 1, 0): nan)"),
    ("Inf at X[4, 3]", np.where(np.arange(B * 4).reshape(B, 4) == 19, np.inf, 0.0),
     ValueError, "(first at index (4, 3): inf)"),
] + ([("1e4000 at X[1, 1, 0]", overflowing((B, 2, 2), (1, 1, 0)), ValueError,
       "X holds 1e+4000 at index (1, 1, 0), which overflows float64 (the largest float64 is "
       "1.798e+308)")] if EXTENDED else [])

BAD_T = [
    ("None", None, TypeError, "T must hold real numbers"),
    ("the wrong shape", np.zeros((B, 3)), ValueError, "T must have shape (5, 2) for loss 'mse'"),
    ("too few rows", np.zeros((B - 1, 2)), ValueError, "T must have shape (5, 2)"),
    ("NaN at T[3, 1]", np.where(np.arange(B * 2).reshape(B, 2) == 7, np.nan, 0.0), ValueError,
     "T must be finite, found 1 NaN/Inf entries (first at index (3, 1): nan)"),
    ("strings", np.full((B, 2), "a"), TypeError, "T must hold real numbers"),
] + ([("-1e4000 at T[3, 1]", overflowing((B, 2), (3, 1), -1), ValueError,
       "T holds -1e+4000 at index (3, 1), which overflows float64")] if EXTENDED else [])

CALLS = {
    "forward": lambda net, x, t: net.forward(x),
    "loss": lambda net, x, t: net.loss(x, t),
    "trace": lambda net, x, t: net.trace(x, t),
    "gradients": lambda net, x, t: net.gradients(x, t),
    "step": lambda net, x, t: net.step(x, t, 0.1),
    "fit": lambda net, x, t: net.fit(x, t, epochs=2, lr=0.1, batch_size=2),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize(("label", "x", "error", "message"), BAD_X,
                         ids=[b[0] for b in BAD_X])
def test_a_bad_x_is_named_and_changes_nothing(call, label, x, error, message):
    net = fresh()
    before = snapshot(net)
    kept = None if not isinstance(x, np.ndarray) else x.copy()
    refused(lambda: CALLS[call](net, x, good_t()), error, message)
    assert snapshot(net) == before
    if kept is not None:
        np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("call", [c for c in CALLS if c != "forward"])
@pytest.mark.parametrize(("label", "t", "error", "message"), BAD_T,
                         ids=[b[0] for b in BAD_T])
def test_a_bad_t_is_named_and_changes_nothing(call, label, t, error, message):
    net = fresh()
    before = snapshot(net)
    refused(lambda: CALLS[call](net, good_x(), t), error, message)
    assert snapshot(net) == before


BAD_LR = [(0, ValueError, "lr must be a finite positive number, got 0.0"),
          (-0.1, ValueError, "lr must be a finite positive number, got -0.1"),
          (np.nan, ValueError, "lr must be a finite positive number, got nan"),
          (np.inf, ValueError, "lr must be a finite positive number, got inf"),
          ("0.1", TypeError, "lr must be a number, got str: '0.1'"),
          (True, TypeError, "lr must be a number, got bool: True"),
          (None, TypeError, "lr must be a number, got NoneType: None"),
          (1j, TypeError, "lr must be a number, got complex"),
          (np.array([0.1]), TypeError, "lr must be a number, got ndarray")]


@pytest.mark.parametrize("where", ["step", "fit"])
@pytest.mark.parametrize(("lr", "error", "message"), BAD_LR, ids=[repr(b[0]) for b in BAD_LR])
def test_a_bad_learning_rate_is_named_and_changes_nothing(where, lr, error, message):
    net = fresh()
    before = snapshot(net)
    if where == "step":
        refused(lambda: net.step(good_x(), good_t(), lr), error, message)
    else:
        refused(lambda: net.fit(good_x(), good_t(), lr=lr), error, message)
    assert snapshot(net) == before


BAD_FIT = [
    ({"epochs": 0}, ValueError, "epochs must be a positive int, got 0"),
    ({"epochs": -1}, ValueError, "epochs must be a positive int, got -1"),
    ({"epochs": 1.5}, ValueError, "epochs must be a positive int, got 1.5"),
    ({"epochs": "3"}, ValueError, "epochs must be a positive int, got '3'"),
    ({"epochs": True}, ValueError, "epochs must be a positive int, got True"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
    ({"batch_size": -2}, ValueError, "batch_size must be a positive int, got -2"),
    ({"batch_size": 2.0}, ValueError, "batch_size must be a positive int, got 2.0"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int or None, got -1"),
    ({"seed": 1.5}, ValueError, "seed must be a non-negative int or None, got 1.5"),
    ({"seed": "x"}, ValueError, "seed must be a non-negative int or None, got 'x'"),
    ({"seed": [1, 2]}, ValueError, "seed must be a non-negative int or None, got [1, 2]"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got str: 'yes'"),
    ({"shuffle": None}, TypeError, "shuffle must be True or False, got NoneType"),
    ({"shuffle": 1}, TypeError, "shuffle must be True or False, got int: 1"),
    ({"callback": "x"}, TypeError, "callback must be callable as callback(epoch, mean_loss), "
                                   "or None; got str: 'x'"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"callback": [print]}, TypeError, "callback must be callable"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_FIT,
                         ids=[f"{next(iter(o))}={next(iter(o.values()))!r}" for o, _, _ in BAD_FIT])
def test_fit_refuses_a_bad_option_before_training(options, error, message):
    net = fresh()
    before = snapshot(net)
    refused(lambda: net.fit(good_x(), good_t(), epochs=options.pop("epochs", 3), lr=0.1,
                            **options), error, message)
    assert snapshot(net) == before  # not one step was taken


def test_a_callback_that_raises_stops_training_with_its_own_error():
    net = fresh()
    seen = []

    def callback(epoch, loss):
        seen.append(epoch)
        raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        net.fit(good_x(), good_t(), epochs=5, lr=0.1, callback=callback)
    assert seen == [0]  # called after the first epoch, and training stopped there


class NoArguments:
    def __call__(self):
        pass


class Opaque:
    """A callable whose signature cannot be read (inspect refuses its ``__signature__``)."""

    __signature__ = "not a signature"

    def __init__(self, error=None):
        self.calls = 0
        self.error = error

    def __call__(self, *args):
        self.calls += 1
        if self.error is not None:
            raise self.error
        if args:
            raise TypeError("Opaque() takes no arguments")


def _three(a, b, c):
    pass


BAD_CALLBACKS = [
    ("no parameters", lambda: None, "its signature is () (too many positional arguments)"),
    ("one parameter", lambda epoch: None, "its signature is (epoch) (too many positional"),
    ("three required", lambda epoch, loss, extra: None,
     "its signature is (epoch, loss, extra) (missing a required argument: 'extra')"),
    ("keyword-only", lambda *, epoch, loss: None, "its signature is (*, epoch, loss)"),
    ("an instance without arguments", NoArguments(), "its signature is ()"),
    ("a partial that binds two", functools.partial(_three, 1, 2), "its signature is (c)"),
    ("a class that takes nothing", object, "callback must accept two arguments"),
]


@pytest.mark.parametrize(("label", "callback", "message"), BAD_CALLBACKS,
                         ids=[b[0] for b in BAD_CALLBACKS])
def test_a_callback_that_cannot_take_epoch_and_loss_is_refused_before_training(label, callback,
                                                                              message):
    net = fresh()
    before = snapshot(net)
    refused(lambda: net.fit(good_x(), good_t(), epochs=3, lr=0.1, callback=callback), TypeError,
            "callback must accept two arguments, callback(epoch, mean_loss), but", message,
            "nothing was trained")
    assert snapshot(net) == before


GOOD_CALLBACKS = {
    "*args": lambda *args: None,
    "defaults": lambda epoch, loss, extra=1: None,
    "a partial that binds one": functools.partial(_three, 1),
    "a builtin method": {}.get,  # get(key, default=None, /)
}


@pytest.mark.parametrize("label", list(GOOD_CALLBACKS))
def test_a_callback_that_can_take_epoch_and_loss_is_accepted(label):
    net = fresh()
    history = net.fit(good_x(), good_t(), epochs=2, lr=0.1, callback=GOOD_CALLBACKS[label])
    assert len(history) == 2


def test_a_callback_whose_signature_cannot_be_read_is_named_when_it_fails():
    net = fresh()
    callback = Opaque()
    with pytest.raises(TypeError) as info:
        net.fit(good_x(), good_t(), epochs=3, lr=0.1, callback=callback)
    assert str(info.value) == ("callback(epoch, mean_loss) raised TypeError (Opaque() takes no "
                               "arguments); training stopped after epoch 1/3")
    assert isinstance(info.value.__cause__, TypeError) and callback.calls == 1


def test_an_unreadable_callback_that_raises_its_own_error_passes_it_on():
    callback = Opaque(KeyError("stop"))
    with pytest.raises(KeyError, match="stop"):
        fresh().fit(good_x(), good_t(), epochs=3, lr=0.1, callback=callback)
    assert callback.calls == 1


def test_a_checked_callback_that_raises_type_error_inside_passes_it_on_unchanged():
    def callback(epoch, loss):
        raise TypeError("inside the callback")

    with pytest.raises(TypeError, match="^inside the callback$"):
        fresh().fit(good_x(), good_t(), epochs=3, lr=0.1, callback=callback)


# --- weights edited in place, at every entry point ----------------------------------------------

IN_PLACE = {
    "float32": (lambda ws: ws.__setitem__(0, ws[0].astype(np.float32)), TypeError,
                "weights[0] was replaced in place by a float32 array, but the network computes "
                "in float64 numpy arrays; assign net.weights = [...] instead, which converts"),
    "float16": (lambda ws: ws.__setitem__(1, ws[1].astype(np.float16)), TypeError,
                "weights[1] was replaced in place by a float16 array"),
    "longdouble": (lambda ws: ws.__setitem__(0, ws[0].astype(np.longdouble)), TypeError,
                   "weights[0] was replaced in place by a float128 array"),
    "int": (lambda ws: ws.__setitem__(0, np.zeros((5, 3), int)), TypeError,
            "weights[0] was replaced in place by a int64 array"),
    "nested list": (lambda ws: ws.__setitem__(0, ws[0].tolist()), TypeError,
                    "weights[0] was replaced in place by a list"),
    "tuple": (lambda ws: ws.__setitem__(1, tuple(map(tuple, ws[1]))), TypeError,
              "weights[1] was replaced in place by a tuple"),
    "None": (lambda ws: ws.__setitem__(1, None), TypeError,
             "weights[1] was replaced in place by a NoneType"),
    "masked array": (lambda ws: ws.__setitem__(0, np.ma.masked_array(ws[0])), TypeError,
                     "weights[0] was replaced in place by a MaskedArray"),
    "matrix": (lambda ws: ws.__setitem__(0, np.asmatrix(ws[0])), TypeError,
               "weights[0] was replaced in place by a matrix"),
    "wrong shape": (lambda ws: ws.__setitem__(0, np.zeros((4, 3))), ValueError,
                    "weights[0] must have shape (5, 3) (n_in + 1 bias row, n_out), got (4, 3)"),
    "transposed": (lambda ws: ws.__setitem__(0, np.zeros((3, 5))), ValueError,
                   "weights[0] must have shape (5, 3)"),
    "NaN": (lambda ws: ws[1].__setitem__((3, 1), np.nan), ValueError,
            "weights[1] must be finite, found 1 NaN/Inf entries (first at index (3, 1): nan)"),
    "-Inf": (lambda ws: ws[0].__setitem__((4, 2), -np.inf), ValueError,
             "weights[0] must be finite, found 1 NaN/Inf entries (first at index (4, 2): -inf)"),
    "appended": (lambda ws: ws.append(np.zeros((2, 2))), ValueError,
                 "expected 2 weight arrays, got 3"),
    "removed": (lambda ws: ws.pop(), ValueError, "expected 2 weight arrays, got 1"),
    "cleared": (lambda ws: ws.clear(), ValueError, "expected 2 weight arrays, got 0"),
}
ENTRY_POINTS = {**CALLS, "save": None}


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("call", list(ENTRY_POINTS))
@pytest.mark.parametrize("edit", list(IN_PLACE))
def test_a_weight_edited_in_place_is_refused_by_every_entry_point(call, edit, tmp_path):
    make, error, message = IN_PLACE[edit]
    net = fresh()
    make(net.weights)
    before = snapshot(net)
    if call == "save":
        message = "cannot save: " + message
        refused(lambda: net.save(tmp_path / "net.npz"), error, message)
        assert os.listdir(tmp_path) == []
    else:
        refused(lambda: CALLS[call](net, good_x(), good_t()), error, message)
    assert snapshot(net) == before


@pytest.mark.parametrize("call", ["step", "fit"])
def test_a_read_only_weight_is_refused_by_what_updates_in_place(call):
    net = fresh()
    frozen = net.weights[1].copy()
    frozen.setflags(write=False)
    net.weights[1] = frozen
    before = snapshot(net)
    refused(lambda: CALLS[call](net, good_x(), good_t()), ValueError,
            "weights[1] is read-only, but a step updates the weights in place")
    assert snapshot(net) == before
    net.gradients(good_x(), good_t())  # reading it is fine


REBUILD = "build a new Network(...) to change the activations"
CONFIG_EDITS = {
    "activations[0] = 'relu'": (lambda net: net.activations.__setitem__(0, "relu"), TypeError,
                                "net.activations[0] was replaced in place by a str ('relu'), but "
                                "the network calls Activation objects; " + REBUILD),
    "activations[1] = None": (lambda net: net.activations.__setitem__(1, None), TypeError,
                              "net.activations[1] was replaced in place by a NoneType (None)"),
    "activations = 'tanh'": (lambda net: setattr(net, "activations", "tanh"), TypeError,
                             "net.activations must be a list of 2 Activation objects, got str: "
                             "'tanh'; " + REBUILD),
    "activations = ['tanh', 'identity']": (
        lambda net: setattr(net, "activations", ["tanh", "identity"]), TypeError,
        "net.activations[0] was replaced in place by a str ('tanh')"),
    "activations.pop()": (lambda net: net.activations.pop(), ValueError,
                          "net.activations holds 1 activations, but the network has 2 layers"),
    "loss_function = 'mse'": (lambda net: setattr(net, "loss_function", "mse"), TypeError,
                              "net.loss_function was replaced by a str ('mse'), but the network "
                              "calls a Loss object; build a new Network(..., loss=...) to change "
                              "the loss"),
    "loss_function = None": (lambda net: setattr(net, "loss_function", None), TypeError,
                             "net.loss_function was replaced by a NoneType (None)"),
    "layer_sizes[0] = 5": (lambda net: net.layer_sizes.__setitem__(0, 5), ValueError,
                           "net.layer_sizes was edited in place to [5, 3, 2], but the network "
                           "was built with [4, 3, 2]; build a new Network(...) to change the "
                           "sizes"),
    "layer_sizes[1] = -3": (lambda net: net.layer_sizes.__setitem__(1, -3), ValueError,
                            "net.layer_sizes was edited in place: layer_sizes[1] must be a "
                            "positive int, got -3"),
    "layer_sizes = '4,3,2'": (lambda net: setattr(net, "layer_sizes", "4,3,2"), TypeError,
                              "net.layer_sizes was edited in place: layer_sizes must be a list of "
                              "ints"),
    "layer_sizes.append(2)": (lambda net: net.layer_sizes.append(2), ValueError,
                              "net.layer_sizes was edited in place to [4, 3, 2, 2], but the "
                              "network was built with [4, 3, 2]"),
}


@pytest.mark.parametrize("call", list(ENTRY_POINTS))
@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_sizes_activations_and_loss_edited_in_place_are_refused_by_every_entry_point(
        call, edit, tmp_path):
    make, error, message = CONFIG_EDITS[edit]
    net = fresh()
    make(net)
    before = snapshot(net)
    if call == "save":
        refused(lambda: net.save(tmp_path / "net.npz"), error, "cannot save: " + message)
        assert os.listdir(tmp_path) == []
    else:
        refused(lambda: CALLS[call](net, good_x(), good_t()), error, message)
    assert snapshot(net) == before


def test_an_activation_object_swapped_in_place_is_still_used():
    """The oracle's own tests swap in a deliberately wrong derivative this way."""
    from reference import Activation

    net = fresh()
    wrong = Activation("tanh_wrong", net.activations[0].f, lambda v: 1 - v**2)  # not 1 - y^2
    net.activations[0] = wrong
    _, right, _ = fresh().gradients(good_x(), good_t())
    _, swapped, _ = net.gradients(good_x(), good_t())  # accepted: an Activation object
    assert not np.allclose(right[0], swapped[0])


def test_float32_weights_never_give_float32_gradients_or_an_unloadable_file(tmp_path):
    net = fresh()
    net.weights[0] = net.weights[0].astype(np.float32)
    with pytest.raises(TypeError):
        net.gradients(good_x(), good_t())
    net.weights = net.weights  # the setter converts
    _, dws, dx = net.gradients(good_x(), good_t())
    assert all(d.dtype == np.float64 for d in [*dws, dx])
    net.save(tmp_path / "net.npz")
    Network.load(tmp_path / "net.npz")


SETTER = [
    (None, TypeError, "net.weights must be assigned a list of 2 float arrays (one per layer), "
                      "got NoneType: None"),
    (3, TypeError, "net.weights must be assigned a list of 2 float arrays"),
    ("ab", TypeError, "net.weights must be assigned a list of 2 float arrays (one per layer), "
                      "got str: 'ab'"),
    ({"W0": 1}, TypeError, "net.weights must be assigned a list of 2 float arrays"),
    (np.zeros((2, 2)), TypeError, "net.weights must be assigned a list"),
    ([None, None], TypeError, "weights[0] must be a float array, got dtype object"),
    ([[[1.0], [2.0, 3.0]], None], TypeError, "weights[0] must be a float array, could not "
                                             "convert it"),
    (["abc", "def"], TypeError, "weights[0] must be a float array, got dtype <U3"),
    ([np.zeros((5, 3), complex), np.zeros((4, 2))], TypeError, "weights[0] must be a float "
                                                               "array, got dtype complex128"),
    ([np.zeros((5, 3))], ValueError, "expected 2 weight arrays, got 1"),
    ([np.zeros((5, 3)), np.zeros((3, 2))], ValueError, "weights[1] must have shape (4, 2)"),
    ([np.zeros((5, 3)), np.full((4, 2), np.nan)], ValueError, "weights[1] must be finite"),
] + ([
    ([np.zeros((5, 3)), overflowing((4, 2), (2, 1))], ValueError,
     "weights[1] holds 1e+4000 at index (2, 1), which overflows float64 (the largest float64 "
     "is 1.798e+308)"),
    ([overflowing((5, 3), (0, 0), -1), np.zeros((4, 2))], ValueError,
     "weights[0] holds -1e+4000 at index (0, 0), which overflows float64"),
    ([np.full((5, 3), np.longdouble("inf")), np.zeros((4, 2))], ValueError,
     "weights[0] must be finite, found 15 NaN/Inf entries"),
] if EXTENDED else [])


@pytest.mark.parametrize(("value", "error", "message"), SETTER,
                         ids=[f"{v!r:.25}" for v, _, _ in SETTER])
def test_the_weights_setter_names_what_is_wrong_and_changes_nothing(value, error, message):
    net = fresh()
    before = snapshot(net)
    refused(lambda: setattr(net, "weights", value), error, message)
    assert snapshot(net) == before


SPIRALS = [
    ({"n_per_class": 0}, ValueError, "n_per_class must be a positive int, got 0"),
    ({"n_per_class": 2.5}, ValueError, "n_per_class must be a positive int, got 2.5"),
    ({"turns": np.nan}, ValueError, "turns must be a finite number >= 0.0, got nan"),
    ({"turns": "1"}, TypeError, "turns must be a number, got str"),
    ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0.0, got -0.1"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), SPIRALS,
                         ids=[f"{next(iter(k))}" + str(i) for i, (k, _, _) in enumerate(SPIRALS)])
def test_the_spirals_name_a_bad_argument(kwargs, error, message):
    from reference.datasets import two_spirals

    refused(lambda: two_spirals(**kwargs), error, message)


# --- the oracle's public checks -----------------------------------------------------------------

oracle = pytest.importorskip("oracle")


def f_sum(x):
    return float(np.sum(x ** 2))


def g_sum(x):
    return 2 * x


GRADIENT = [
    ({"f": None}, TypeError, "f must be a callable, got NoneType"),
    ({"f": "x**2"}, TypeError, "f must be a callable, got str"),
    ({"grad": 3}, TypeError, "grad must be a callable, got int"),
    ({"x": None}, TypeError, "x must be a real numeric array, got dtype object"),
    ({"x": "abc"}, TypeError, "x must be a real numeric array, got dtype <U3"),
    ({"x": [[1.0], [1.0, 2.0]]}, TypeError, "x must be a real numeric array, could not convert"),
    ({"x": np.ones(3, complex)}, TypeError, "x must be a real numeric array, got dtype "
                                            "complex128"),
    ({"x": np.ones(0)}, ValueError, "x must not be empty, got shape (0,)"),
    ({"x": NAN_X}, ValueError, "x must be finite, found 1 NaN/Inf entries (first at index "
                               "(2, 1, 0): nan)"),
    ({"f": lambda x: complex(np.sum(x))}, TypeError, "f(x) must be a real scalar, got a complex "
                                                     "value"),
    ({"f": lambda x: x}, ValueError, "f(x) must return a scalar, got shape (3,)"),
    ({"f": lambda x: "1.0"}, ValueError, "f(x) must return a scalar"),
    ({"f": lambda x: None}, ValueError, "f(x) must return a scalar"),
    ({"f": lambda x: float("nan")}, ValueError, "f(x) is not finite: nan"),
    ({"f": lambda x: [[1.0], [1.0, 2.0]]}, TypeError, "f(x) must be a real scalar"),
    ({"f": lambda x: 1 / 0}, ValueError, "f raised ZeroDivisionError at x: division by zero"),
    ({"grad": lambda x: x[:2]}, ValueError, "grad(x) must have x's shape (3,), got (2,)"),
    ({"grad": lambda x: np.array(["a"] * 3)}, TypeError, "grad(x) must return a float array, "
                                                         "got dtype <U1"),
    ({"grad": lambda x: np.array([1.0, np.nan, 1.0])}, ValueError,
     "grad(x) returned 1 NaN/Inf entries (first at index (1,): nan)"),
    ({"grad": lambda x: [[1.0], [1.0, 2.0]]}, TypeError, "grad(x) must return a float array "
                                                         "shaped like x, could not convert it"),
    ({"strict": "no"}, TypeError, "strict must be True or False, got str: 'no'"),
    ({"strict": None}, TypeError, "strict must be True or False"),
    ({"fd": "central"}, ValueError, "fd must be 'auto', 'exhaustive' or 'directional', got "
                                    "'central'"),
    ({"directions": 0}, ValueError, "directions must be a positive int, got 0"),
    ({"directions": -3}, ValueError, "directions must be a positive int, got -3"),
    ({"directions": 2.5}, TypeError, "directions must be a positive int, got float: 2.5"),
    ({"directions": True}, TypeError, "directions must be a positive int, got bool"),
    ({"max_exhaustive": 0}, ValueError, "max_exhaustive must be a positive int, got 0"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"seed": "0"}, TypeError, "seed must be a non-negative int, got str: '0'"),
    ({"jax": "yes"}, ValueError, "jax must be True, False or 'direct', got 'yes'"),
    ({"jax": 1}, ValueError, "jax must be True, False or 'direct', got 1"),
]


@pytest.mark.parametrize(("changes", "error", "message"), GRADIENT,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(GRADIENT)])
def test_check_gradient_names_the_bad_argument(changes, error, message):
    args = {"f": f_sum, "grad": g_sum, "x": np.array([1.0, 2.0, 3.0]), **changes}
    x = args.pop("x")
    kept = x.copy() if isinstance(x, np.ndarray) else None
    refused(lambda: oracle.check_gradient(args.pop("f"), args.pop("grad"), x, **args), error,
            message)
    if kept is not None:
        np.testing.assert_array_equal(x, kept)


ACTIVATION = [
    ({"act": None}, TypeError, "an activation must be a name (str) or an Activation"),
    ({"act": "swish"}, ValueError, "unknown activation 'swish'"),
    ({"act": 3}, TypeError, "an activation must be a name"),
    ({"points": [np.nan, 1.0]}, ValueError, "points must be finite, found 1 NaN/Inf entries "
                                            "(first at index (0,): nan)"),
    ({"points": []}, ValueError, "points must not be empty"),
    ({"points": ["a"]}, TypeError, "points must be a real numeric array, got dtype <U1"),
    ({"points": [1j]}, TypeError, "points must be a real numeric array, got dtype complex128"),
    ({"points": [True]}, TypeError, "points must be a real numeric array, got dtype bool"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"strict": "x"}, TypeError, "strict must be True or False"),
]


@pytest.mark.parametrize(("changes", "error", "message"), ACTIVATION,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(ACTIVATION)])
def test_check_activation_names_the_bad_argument(changes, error, message):
    args = {"act": "tanh", **changes}
    refused(lambda: oracle.check_activation(args.pop("act"), **args), error, message)


LOSS = [
    ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
    ({"batch": 0}, ValueError, "batch must be a positive int, got 0"),
    ({"batch": 2.0}, TypeError, "batch must be a positive int, got float"),
    ({"n_out": 0}, ValueError, "n_out must be a positive int, got 0"),
    ({"n_out": "3"}, TypeError, "n_out must be a positive int, got str"),
    ({"seed": -2}, ValueError, "seed must be a non-negative int, got -2"),
    ({"strict": 1}, TypeError, "strict must be True or False, got int: 1"),
]


@pytest.mark.parametrize(("changes", "error", "message"), LOSS,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(LOSS)])
def test_check_loss_names_the_bad_argument(changes, error, message):
    args = {"loss": "mse", **changes}
    refused(lambda: oracle.check_loss(args.pop("loss"), **args), error, message)


NETWORK = [
    ({"net": None}, TypeError, "net must be a reference.Network, got NoneType"),
    ({"net": "net.npz"}, TypeError, "net must be a reference.Network, got str"),
    ({"X": NAN_X}, ValueError, "X must be finite, found 1 NaN/Inf entries (first at index "
                               "(2, 1, 0): nan)"),
    ({"X": np.ones((B, 5))}, ValueError, "X has 5 values per sample"),
    ({"T": np.ones((B, 3))}, ValueError, "T must have shape (5, 2)"),
    ({"fd": "central"}, ValueError, "fd must be 'auto', 'exhaustive', 'directional' or 'none'"),
    ({"directions": 0}, ValueError, "directions must be a positive int, got 0"),
    ({"max_exhaustive": -1}, ValueError, "max_exhaustive must be a positive int, got -1"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"strict": "yes"}, TypeError, "strict must be True or False"),
    ({"check_step": None}, TypeError, "check_step must be True or False"),
    ({"local": 0}, TypeError, "local must be True or False, got int: 0"),
    ({"progress": "bar"}, TypeError, "progress must be a callable or None, got str"),
]


@pytest.mark.parametrize(("changes", "error", "message"), NETWORK,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(NETWORK)])
def test_check_network_names_the_bad_argument_and_changes_nothing(changes, error, message):
    net = fresh()
    before = snapshot(net)
    args = {"net": net, "X": good_x(), "T": good_t(), **changes}
    x = args["X"]
    kept = x.copy()
    refused(lambda: oracle.check_network(args.pop("net"), args.pop("X"), args.pop("T"),
                                         **args), error, message)
    assert snapshot(net) == before
    np.testing.assert_array_equal(x, kept)


def affine(x, w):
    return x @ w


def affine_back(g, x, w):
    return g @ w.T, x.T @ g


VJP_X, VJP_W = np.ones((2, 3)), np.ones((3, 2))
VJP = [
    ({"inputs": None}, TypeError, "inputs must be a tuple of arrays or a dict of named arrays, "
                                  "got NoneType"),
    ({"inputs": VJP_X}, TypeError, "pass (x,) for a single input"),
    ({"inputs": "xw"}, TypeError, "inputs must be a tuple of arrays"),
    ({"inputs": (np.where(np.eye(2, 3) > 0, np.nan, 1.0), VJP_W)}, ValueError,
     "input 'x' must be finite, found nan at (0, 0)"),
    ({"inputs": ([1.0, 2.0], [3.0])}, ValueError, "inputs has no differentiable input"),
    ({"inputs": (VJP_X.astype(complex), VJP_W)}, TypeError, "input 'x' is complex (complex128)"),
    ({"forward": None}, TypeError, "forward and backward must be callables"),
    ({"backward": "x"}, TypeError, "forward and backward must be callables"),
    ({"forward": lambda x, w: {"y": x}}, TypeError, "forward must return an array, a number or "
                                                    "a tuple of arrays, got dict"),
    ({"forward": lambda x, w: None}, TypeError, "got NoneType"),
    ({"forward": lambda x, w: (x, (x, w))}, TypeError, "forward's output [1] is a tuple: "
                                                       "forward must return an array, a number "
                                                       "or a flat tuple of arrays"),
    ({"forward": lambda x, w: np.array(["a"])}, TypeError, "forward's output must be a numeric "
                                                           "array, got dtype <U1"),
    ({"forward": lambda x, w: x @ w * np.nan}, ValueError, "forward's output is not finite"),
    ({"cotangent": np.full((2, 2), np.inf)}, ValueError, "cotangent must be finite, found 4 "
                                                         "NaN/Inf entries (first at index "
                                                         "(0, 0): inf)"),
    ({"cotangent": np.ones(3)}, ValueError, "cotangent must have the output's shape (2, 2), got "
                                            "(3,)"),
    ({"cotangent": "a"}, TypeError, "cotangent must be a float array shaped like forward's "
                                    "output (2, 2), could not convert it"),
    ({"cotangent": np.ones((2, 2), complex)}, TypeError, "cotangent must be a real float array"),
    ({"wrt": "q"}, ValueError, "wrt names 'q', which is not an input; inputs are ['x', 'w']"),
    ({"wrt": 5}, ValueError, "wrt position 5 is out of range for 2 inputs"),
    ({"wrt": []}, ValueError, "wrt must name at least one input"),
    ({"wrt": [1.5]}, TypeError, "wrt must hold input names or positions, got 1.5"),
    ({"fd": "central"}, ValueError, "fd must be one of"),
    ({"jax": "yes"}, ValueError, "jax must be True, False or 'direct', got 'yes'"),
    ({"directions": 0}, ValueError, "directions must be a positive integer, got 0"),
    ({"max_exhaustive": -1}, ValueError, "max_exhaustive must be a positive integer, got -1"),
]


@pytest.mark.parametrize(("changes", "error", "message"), VJP,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(VJP)])
def test_check_vjp_names_the_bad_argument(changes, error, message):
    args = {"forward": affine, "backward": affine_back, "inputs": (VJP_X, VJP_W), **changes}
    refused(lambda: oracle.check_vjp(args.pop("forward"), args.pop("backward"),
                                     args.pop("inputs"), **args), error, message)


@pytest.mark.parametrize(("backward", "why"), [
    (lambda g, x, w: (g, g, g), "backward returned 3 gradients; expected one per "
                                "differentiable input (2: ['x', 'w']) or one per input (2)"),
    (lambda g, x, w: g @ w.T, "backward returned a single ndarray; expected a tuple of 2 "
                              "gradients (['x', 'w'])"),
    (lambda g, x, w: {"q": g}, "backward returned gradients for ['q'], which are not inputs"),
    (lambda g, x, w: (g @ w.T, None), "backward returned None for input 'w'"),
    (lambda g, x, w: (g @ w.T, np.ones((2, 2))), "wrong shape: backward gave (2, 2) for input "
                                                 "'w', which has shape (3, 2)"),
    (lambda g, x, w: (g @ w.T, "w"), "backward's gradient of 'w' has dtype <U1"),
    (lambda g, x, w: 1 / 0, "backward raised ZeroDivisionError: division by zero"),
])
def test_a_backward_of_the_wrong_form_is_a_fail_row_naming_what(backward, why):
    report = oracle.check_vjp(affine, backward, (VJP_X, VJP_W), fd="none")
    assert not report.ok
    assert any(why in (r.note or "") or why in str(r) for r in report.rows), str(report)


LAYERS = [
    ({"layers": None}, TypeError, "layers must be a list of layer objects, got NoneType"),
    ({"layers": "dense"}, TypeError, "layers must be a list of layer objects, got str"),
    ({"layers": []}, ValueError, "layers must hold at least one layer"),
    ({"layers": [object()]}, TypeError, "layers[0] (object) has no method 'forward'"),
    ({"loss": None}, TypeError, "loss must be a callable, got NoneType"),
    ({"forward": 3}, TypeError, "forward must be a method name (str), got int"),
    ({"backward": "nope"}, TypeError, "has no method 'nope' (the backward method name)"),
    ({"x": np.ones((2, 3), complex)}, TypeError, "x must be a float array (or an integer "
                                                 "array of ids), got dtype complex128"),
    ({"x": np.full((2, 3), np.nan)}, ValueError, "x must be finite, found 6 NaN/Inf entries"),
    ({"fd": "x"}, ValueError, "fd must be one of 'auto', 'exhaustive', 'directional', 'none'"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
    ({"jax": None}, ValueError, "jax must be True, False or 'direct', got None"),
    ({"strict": "x"}, TypeError, "strict must be True or False"),
]


class Dense:
    def __init__(self):
        self.w = np.ones((3, 2))

    def forward(self, x):
        self.x = x
        return x @ self.w

    def backward(self, g):
        self.dw = self.x.T @ g
        return g @ self.w.T


def mse(y, t):
    return float(np.mean((y - t) ** 2)), 2 * (y - t) / y.size


@pytest.mark.parametrize(("changes", "error", "message"), LAYERS,
                         ids=[f"{next(iter(c))}-{k}" for k, (c, _, _) in enumerate(LAYERS)])
def test_check_layers_names_the_bad_argument(changes, error, message):
    args = {"layers": [Dense()], "loss": mse, "x": np.ones((2, 3)), "t": np.zeros((2, 2)),
            **changes}
    refused(lambda: oracle.check_layers(args.pop("layers"), args.pop("loss"), args.pop("x"),
                                        args.pop("t"), **args), error, message)


def attempt_counts() -> dict[str, int]:
    """The attempts of the three parts (files, command lines, calls); counted, not guessed."""
    import test_cli_failures as cli
    import test_hostile_files as files

    calls = (len(CONSTRUCTOR) + len(BAD_X) * len(CALLS) + len(BAD_T) * (len(CALLS) - 1)
             + len(BAD_LR) * 2 + len(BAD_FIT) + len(IN_PLACE) * len(ENTRY_POINTS)
             + len(SETTER) + len(GRADIENT) + len(ACTIVATION) + len(LOSS) + len(NETWORK)
             + len(VJP) + 7 + len(LAYERS) + len(SPIRALS) + len(BAD_CALLBACKS)
             + len(GOOD_CALLBACKS) + 3 + len(CONFIG_EDITS) * len(ENTRY_POINTS) + 1)
    command_lines = (2 * len(cli.FAILURES) + len(cli.BAD_TRAIN_FLAGS) + len(cli.CSV)
                     + 2 * len(cli.NPZ) + 2 * len(cli.CONFIGS) + len(cli.STEPS)
                     + 2 * len(cli.BAD_OUTS) + 1 + 2 + len(cli.LABELS) + len(cli.INPUTS)
                     + len(cli.BUDGET))
    crafted = (len(files.ATTACKS) + 3 + len(files.in_place_edits()) + 1 + 5 + 3 + 1
               + len(files.SAVE_PATHS) + 1 + 1 + 1 + 8 + 1)
    return {"files": crafted, "command lines": command_lines, "calls": calls}


def test_the_attack_suite_makes_at_least_300_attempts():
    counts = attempt_counts()
    assert counts["files"] >= 150 and counts["command lines"] >= 100 and counts["calls"] >= 300
