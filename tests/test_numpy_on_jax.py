"""``oracle.numpy_on_jax.lift``: JAX differentiating plain numpy forwards as students write them.

Truth never comes from the code under test: each lifted forward is compared with numpy running
the same code (forward values) and with ``jax.vjp`` of the same function written by hand in
``jax.numpy``/``jax.lax``, or with a closed-form gradient (backward values).
"""

import threading

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from oracle.jax_support import UntraceableError, jnp  # noqa: E402
from oracle.numpy_on_jax import Lifted, lift  # noqa: E402

REAL_ZEROS = np.zeros
REAL_ARRAY = np.array
TOL = {"rtol": 1e-12, "atol": 1e-12}


def lifted_vjp(f_np, *arrays, cotangent_seed=0):
    """Forward value and gradients of ``lift(f_np)`` at ``arrays`` for a random cotangent."""
    out, vjp = jax.vjp(lift(f_np), *(jnp.asarray(a) for a in arrays))
    ct = np.random.default_rng(cotangent_seed).standard_normal(np.shape(out))
    return np.asarray(out), [np.asarray(g) for g in vjp(jnp.asarray(ct))], ct


def assert_matches(f_np, f_jnp, *arrays):
    """``lift(f_np)``: forward == numpy's own run, gradients == ``jax.vjp(f_jnp)``."""
    out, grads, ct = lifted_vjp(f_np, *arrays)
    np.testing.assert_allclose(out, f_np(*(np.array(a) for a in arrays)), **TOL)
    ref_out, ref_grads = reference_vjp(f_jnp, ct, *arrays)
    np.testing.assert_allclose(out, ref_out, **TOL)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, **TOL)


def assert_closed_form(f_np, gradients, *arrays):
    """``lift(f_np)``: forward == numpy's own run, gradients == ``gradients(ct, *arrays)``.

    For the simplest forwards the truth is a closed form in numpy: no JAX reference to compile.
    """
    out, grads, ct = lifted_vjp(f_np, *arrays)
    np.testing.assert_allclose(out, f_np(*(np.array(a) for a in arrays)), **TOL)
    for got, want in zip(grads, gradients(ct, *arrays), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def reference_vjp(f_jnp, ct, *arrays):
    """Value and cotangent-gradients of the hand-written JAX function (jitted: one compile)."""

    def value_and_grads(ct, *args):
        out, vjp = jax.vjp(f_jnp, *args)
        return out, vjp(ct)

    return jax.jit(value_and_grads)(jnp.asarray(ct), *(jnp.asarray(a) for a in arrays))


# --------------------------------------------------------------------------------------------
# Student-style forwards
# --------------------------------------------------------------------------------------------

def test_affine(rng):
    def affine(x, w, b):
        return x @ w + b

    def gradients(ct, x, w, b):
        return ct @ w.T, x.T @ ct, ct.sum(axis=0)

    assert_closed_form(affine, gradients, rng.standard_normal((3, 4)),
                       rng.standard_normal((4, 2)), rng.standard_normal(2))


def test_elementwise_ufuncs(rng):
    def f_np(x):
        h = np.maximum(0, x)
        return np.tanh(h) + np.exp(-x) * np.log(1 + x * x) - np.sqrt(np.abs(x) + 1) ** 1.5

    def gradients(ct, x):
        relu_part = (1 - np.tanh(np.maximum(0, x)) ** 2) * (x > 0)
        exp_log_part = np.exp(-x) * (2 * x / (1 + x * x) - np.log(1 + x * x))
        root_part = 0.75 * (np.abs(x) + 1) ** -0.25 * np.sign(x)  # sqrt(|x|+1)**1.5
        return [ct * (relu_part + exp_log_part - root_part)]

    assert_closed_form(f_np, gradients, rng.standard_normal((3, 4)))


def test_softmax_with_max_shift(rng):
    def softmax(x):
        shifted = x - np.max(x, axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=1, keepdims=True)

    def gradients(ct, x):
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        return [p * (ct - np.sum(ct * p, axis=1, keepdims=True))]

    assert_closed_form(softmax, gradients, rng.standard_normal((3, 4)))


def conv_naive(x, w, b, stride=1, pad=1):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    hs, ws = i * stride, j * stride
                    out[n, f, i, j] = np.sum(xpad[n, :, hs:hs + HH, ws:ws + WW] * w[f]) + b[f]
    return out


def test_naive_conv2d_with_four_loops(rng):
    def conv_lax(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                         precision=jax.lax.Precision.HIGHEST)
        return y + b[None, :, None, None]

    assert_matches(conv_naive, conv_lax, rng.standard_normal((1, 2, 3, 3)),
                   rng.standard_normal((2, 2, 3, 3)), rng.standard_normal(2))


def test_max_pool_with_loops(rng):
    def max_pool(x, size=2):
        N, C, H, W = x.shape
        out = np.zeros((N, C, H // size, W // size))
        for i in range(H // size):
            for j in range(W // size):
                window = x[:, :, i * size:(i + 1) * size, j * size:(j + 1) * size]
                out[:, :, i, j] = np.max(window, axis=(2, 3))
        return out

    def max_pool_jnp(x):
        N, C, H, W = x.shape
        return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))

    assert_matches(max_pool, max_pool_jnp, rng.standard_normal((1, 2, 4, 4)))


def test_embedding_with_repeated_integer_ids(rng):
    ids = np.array([[0, 2, 2], [3, 0, 2]])
    ids_before = ids.copy()
    W = rng.standard_normal((5, 3))

    def embed(W, ids):
        return W[ids]

    out, vjp = jax.vjp(lambda W: lift(embed)(W, ids), jnp.asarray(W))
    ct = rng.standard_normal(out.shape)
    np.testing.assert_allclose(out, W[ids], **TOL)
    expected = np.zeros_like(W)
    np.add.at(expected, ids, ct)  # closed form: rows of the cotangent summed per id
    np.testing.assert_allclose(vjp(jnp.asarray(ct))[0], expected, **TOL)
    np.testing.assert_array_equal(ids, ids_before)


def test_softmax_loss_with_integer_labels(rng):
    y = np.array([2, 0, 3])

    def softmax_loss(x, y):
        N = x.shape[0]
        shifted = x - np.max(x, axis=1, keepdims=True)
        p = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        return -np.sum(np.log(p[np.arange(N), y])) / N

    x = rng.standard_normal((3, 4))
    loss, vjp = jax.vjp(lambda x: lift(softmax_loss)(x, y), jnp.asarray(x))
    np.testing.assert_allclose(loss, softmax_loss(x, y), **TOL)
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    expected = (p - np.eye(4)[y]) / 3  # closed form
    np.testing.assert_allclose(vjp(jnp.asarray(1.0))[0], expected, **TOL)


def test_np_add_at_scatter(rng):
    ids = np.array([1, 0, 1])

    def bucket_sums(x, ids):
        out = np.zeros((2, x.shape[1]))
        np.add.at(out, ids, x)
        return out

    x = rng.standard_normal((3, 4))
    out, vjp = jax.vjp(lambda x: lift(bucket_sums)(x, ids), jnp.asarray(x))
    np.testing.assert_allclose(out, bucket_sums(x, ids), **TOL)
    ct = rng.standard_normal((2, 4))
    np.testing.assert_allclose(vjp(jnp.asarray(ct))[0], ct[ids], **TOL)  # closed form


def test_in_place_column_accumulation(rng):
    def columns(x, w):
        out = np.zeros((x.shape[0], w.shape[1]))
        for i in range(w.shape[1]):
            out[:, i] += x @ w[:, i]
            out[:, i] *= 2.0
        out -= 1
        return out

    def gradients(ct, x, w):  # the forward is 2 x @ w - 1
        return 2 * ct @ w.T, 2 * x.T @ ct

    assert_closed_form(columns, gradients, rng.standard_normal((3, 4)),
                       rng.standard_normal((4, 2)))


def test_rnn_steps_into_a_hidden_state_buffer(rng):
    def rnn(x, h0, Wx, Wh, b):
        N, T, _ = x.shape
        hs = np.empty((N, T, h0.shape[1]))
        h = h0
        for t in range(T):
            h = np.tanh(x[:, t, :] @ Wx + h.dot(Wh) + b)
            hs[:, t, :] = h
        return hs

    def rnn_jnp(x, h0, Wx, Wh, b):
        h, hs = h0, []
        for t in range(x.shape[1]):
            h = jnp.tanh(x[:, t, :] @ Wx + h @ Wh + b)
            hs.append(h)
        return jnp.stack(hs, axis=1)

    assert_matches(rnn, rnn_jnp, rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2)),
                   rng.standard_normal((4, 2)), rng.standard_normal((2, 2)),
                   rng.standard_normal(2))


def test_np_array_of_lifted_values_stacks(rng):
    def f(a, b):
        rows = np.array([a * 2, b])
        return np.asarray(rows) * np.stack([b, a])

    def gradients(ct, a, b):  # the forward is [2ab, ab]
        return 2 * b * ct[0] + b * ct[1], 2 * a * ct[0] + a * ct[1]

    assert_closed_form(f, gradients, rng.standard_normal(4), rng.standard_normal(4))


def test_reductions_and_methods(rng):
    def f(x):
        m = np.maximum.reduce(x, axis=1)
        s = np.add.reduce(x * x, axis=0)
        return x.mean() * m.sum() + s.max() + x.T.reshape(-1)[1] + np.linalg.norm(x)

    def f_jnp(x):
        return (x.mean() * x.max(axis=1).sum() + (x * x).sum(axis=0).max() + x.T.reshape(-1)[1]
                + jnp.linalg.norm(x))

    assert_matches(f, f_jnp, rng.standard_normal((3, 4)))


def test_masks_and_out(rng):
    def f(x):
        dx = x.copy()
        dx[x <= 0] = 0                          # boolean-mask write (a ReLU)
        np.multiply(dx, np.where(x > 0.3, x, 2.0), out=dx)
        return dx

    def gradients(ct, x):  # x**2 above 0.3, 2x in (0, 0.3], 0 below
        return [ct * np.where(x > 0.3, 2 * x, np.where(x > 0, 2.0, 0.0))]

    assert_closed_form(f, gradients, rng.standard_normal((3, 4)))


def test_writes_through_views_reach_the_buffer(rng):
    def f(x):
        out = np.zeros((2, 3, 4))
        out[0][1] = x[0]          # chained indexing writes into out
        row = out[1]
        row += x                  # a view updated in place
        out.T[0, 0, 0] = 5.0      # through .T
        flat = out.reshape(-1)
        flat[-1] = x[2, 3] ** 2   # through reshape
        return out

    x = rng.standard_normal((3, 4))

    def f_jnp(x):
        out = jnp.zeros((2, 3, 4)).at[0, 1].set(x[0]).at[1].add(x).at[0, 0, 0].set(5.0)
        return out.at[1, 2, 3].set(x[2, 3] ** 2)

    assert_matches(f, f_jnp, x)


def test_scalar_element_is_a_copy_as_in_numpy(rng):
    def f(x):
        out = np.zeros(3)
        v = out[0]
        v += x[0]         # numpy: v is a scalar copy, out is unchanged
        out[1] = v
        return out

    assert_closed_form(f, lambda ct, x: [np.array([ct[1], 0.0, 0.0])], rng.standard_normal(3))


def test_data_dependent_if_takes_the_numpy_branch_and_jit_refuses(rng):
    def f(x):
        if np.sum(x) > 0:
            return x * 2.0
        return x * 3.0

    for x, factor in [(np.ones(3), 2.0), (-np.ones(3), 3.0)]:
        _, grads, ct = lifted_vjp(f, x)
        np.testing.assert_allclose(grads[0], factor * ct, **TOL)
    with pytest.raises(UntraceableError, match=r"if np\.sum\(x\) > 0"):
        jax.jit(lift(f))(jnp.ones(3))


RANDOM_IN_FORWARD = """
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
from oracle.numpy_on_jax import lift
x = np.linspace(-1.0, 1.0, 12).reshape(4, 3)

def f(x):  # numpy.random's compiled code looks np.empty up while this line runs
    mask = np.random.default_rng(0).random((4, 3)) > 0.5
    np.random.seed(1)
    scale = np.random.rand(4, 3) + np.random.RandomState(2).rand(4, 3)
    out = np.zeros(
        (4, 3))           # a call spread over lines is still the user's np.zeros
    out[mask] = (x * scale)[mask]
    return out

out, pull = jax.vjp(lift(f), jax.numpy.asarray(x))
(g,) = pull(jax.numpy.ones((4, 3)))
mask = np.random.default_rng(0).random((4, 3)) > 0.5
np.random.seed(1)
scale = np.random.rand(4, 3) + np.random.RandomState(2).rand(4, 3)
assert np.allclose(out, f(x), rtol=1e-15, atol=0), "forward differs from numpy's"
assert np.allclose(g, mask * scale, rtol=1e-15, atol=0), "gradient is not mask * scale"
print("ok")
"""


def test_numpy_random_inside_a_forward_runs_as_numpys():
    """np.random's C code calls np.empty through the numpy module while the user's line runs:
    it must get a real ndarray (a lifted one crashed the process), and the user's own
    np.zeros on the next lines must still be lifted. In a subprocess: a crash is a failure."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", RANDOM_IN_FORWARD], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr)


def test_inputs_are_not_modified(rng):
    def f(x, w):
        x[0] = 0.0
        x *= 2.0
        w += 1.0
        return x @ w

    x, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    jx, jw = jnp.asarray(x), jnp.asarray(w)
    out, vjp = jax.vjp(lift(f), jx, jw)
    np.testing.assert_allclose(out, f(x.copy(), w.copy()), **TOL)
    np.testing.assert_array_equal(jx, x)
    np.testing.assert_array_equal(jw, w)


def test_containers_in_and_out(rng):
    def f(params, x):
        h = x @ params["w"]
        return {"h": h, "parts": (h.sum(), 1.5)}

    params = {"w": jnp.asarray(rng.standard_normal((3, 2)))}
    out = lift(f)(params, jnp.asarray(rng.standard_normal((4, 3))))
    assert isinstance(out["h"], jax.Array) and isinstance(out["parts"][1], jax.Array)
    assert not any(isinstance(leaf, Lifted) for leaf in jax.tree_util.tree_leaves(out))


# --------------------------------------------------------------------------------------------
# What cannot be lifted raises UntraceableError, naming the call
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("forward", "named"),
    [
        (lambda x: np.lib.stride_tricks.sliding_window_view(x, 2).sum(),
         r"np\.lib\.stride_tricks\.sliding_window_view"),
        (lambda x: np.vectorize(lambda t: t * 2)(x), r"np\.vectorize"),
        (lambda x: float(np.sum(x)), r"float\(\)"),
        (lambda x: x.flags, r"ndarray\.flags"),
        (lambda x: np.sum([x, x]), r"np\.sum\(\[x, x\]\)"),
    ],
    ids=["no jnp counterpart", "not dispatched", "float() drops the derivative",
         "missing attribute", "list of lifted arrays"],
)
def test_unliftable_calls_raise_untraceable_error(forward, named):
    with pytest.raises(UntraceableError, match=named) as info:
        jax.vjp(lift(forward), jnp.ones(3))
    assert "\n" not in str(info.value)
    assert np.zeros is REAL_ZEROS and np.array is REAL_ARRAY


def test_writing_a_traced_value_into_a_real_numpy_buffer_is_refused():
    from numpy import zeros  # bound before the redirect: a real numpy buffer

    def f(x):
        out = zeros(3)
        out += x
        return out

    with pytest.raises(UntraceableError, match=r"out \+= x"):
        jax.vjp(lift(f), jnp.ones(3))


# --------------------------------------------------------------------------------------------
# The temporary redirect of numpy's creation functions
# --------------------------------------------------------------------------------------------

def test_creation_functions_are_restored_after_a_call_and_after_a_failure():
    lift(lambda x: np.zeros(3) + x)(jnp.ones(3))
    assert np.zeros is REAL_ZEROS and np.array is REAL_ARRAY

    def fails(x):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        lift(fails)(jnp.ones(3))
    assert np.zeros is REAL_ZEROS and np.array is REAL_ARRAY
    assert type(np.zeros(2)) is np.ndarray


def test_only_the_lifted_thread_gets_lifted_buffers():
    seen = {}

    def other_thread():
        seen["other"] = np.zeros((2, 2))

    def f(x):
        seen["mine"] = np.zeros(3)
        seen["ints"] = np.zeros(3, dtype=int)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        return x + seen["mine"]

    lift(f)(jnp.ones(3))
    assert type(seen["other"]) is np.ndarray
    assert isinstance(seen["mine"], Lifted)
    assert type(seen["ints"]) is np.ndarray
    assert np.zeros is REAL_ZEROS


def test_nested_lifted_calls(rng):
    inner = lift(lambda x: np.tanh(x))

    def outer(x):
        y = inner(jnp.asarray(np.ones(2)))  # a concrete nested call
        out = np.zeros(2)
        out[:] = x * y
        return out

    assert_closed_form(outer, lambda ct, x: [ct * np.tanh(1.0)], rng.standard_normal(2))
    assert np.zeros is REAL_ZEROS
