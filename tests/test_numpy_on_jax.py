"""``oracle.numpy_on_jax.lift``: JAX differentiating plain numpy forwards as students write them.

Truth never comes from the code under test: each lifted forward is compared with numpy running
the same code (forward values) and with ``jax.vjp`` of the same function written by hand in
``jax.numpy``/``jax.lax``, or with a closed-form gradient (backward values).
"""

import math
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
from oracle.jax_support import UntraceableError
from oracle.numpy_on_jax import lift
x = np.linspace(-1.0, 1.0, 12).reshape(4, 3)

def f(x):  # numpy.random's compiled code looks np.empty up while these lines run
    mask = np.random.default_rng(0).random((4, 3)) > 0.5
    np.random.seed(1)
    scale = np.random.rand(4, 3) + np.random.RandomState(2).rand(4, 3)
    échelle = 1.0; out = np.empty(        # non-ASCII before the call, spread over lines
        (4, 3)) * échelle
    out[:] = 0.0
    out[mask] = (x * scale)[mask]
    return out

try:
    out, pull = jax.vjp(lift(f), jax.numpy.asarray(x))
except UntraceableError:  # no positions to tell the user's np.empty: a numpy buffer, refused
    print("refused")
    raise SystemExit(0)
(g,) = pull(jax.numpy.ones((4, 3)))
mask = np.random.default_rng(0).random((4, 3)) > 0.5
np.random.seed(1)
scale = np.random.rand(4, 3) + np.random.RandomState(2).rand(4, 3)
assert np.allclose(out, f(x), rtol=1e-15, atol=0), "forward differs from numpy's"
assert np.allclose(g, mask * scale, rtol=1e-15, atol=0), "gradient is not mask * scale"
print("ok")
"""


@pytest.mark.parametrize("how", ["file", "-c", "no positions"])
def test_numpy_random_inside_a_forward_runs_as_numpys(tmp_path, how):
    """np.random's C code calls np.empty through the numpy module while the user's line runs:
    it must get a real ndarray (a lifted one crashed the process), and the user's own np.empty
    beside it must still be lifted: from a file, from ``-c`` (no source to read) and, without
    position information (``PYTHONNODEBUGRANGES``), refused rather than guessed. In a
    subprocess: a crash is a failure."""
    import os
    import subprocess
    import sys

    script = tmp_path / "forward.py"
    script.write_text(RANDOM_IN_FORWARD, encoding="utf-8")
    argv = [sys.executable, "-c", RANDOM_IN_FORWARD] if how == "-c" else [sys.executable,
                                                                          str(script)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if how == "no positions":
        env["PYTHONNODEBUGRANGES"] = "1"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          env=env)
    expected = {"refused"} if how == "no positions" else {"ok"}
    assert done.returncode == 0 and done.stdout.strip() in expected, (done.returncode,
                                                                      done.stderr[-2000:])


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


def abstract_vjp(f_np, *arrays, cotangent_seed=0):
    """``lifted_vjp`` traced abstractly (``jax.jit``, as the oracle's ``jax.make_jaxpr``):
    no value is concrete, every mask computed from an input is a tracer."""
    ct = np.random.default_rng(cotangent_seed).standard_normal(
        np.shape(f_np(*(np.array(a) for a in arrays))))

    @jax.jit
    def value_and_grads(ct, *xs):
        out, vjp = jax.vjp(lift(f_np), *xs)
        return out, vjp(ct)

    out, grads = value_and_grads(jnp.asarray(ct), *(jnp.asarray(a) for a in arrays))
    return np.asarray(out), [np.asarray(g) for g in grads], ct


def test_boolean_mask_selects_and_constant_updates_trace_abstractly(rng):
    def relu(x):                    # the commonest student relu
        y = x.copy()
        y[y < 0] = 0
        return y

    def rows(x):                    # a mask over the leading axis, one row broadcast
        out = x * 1.0
        out[x[:, 0] > 0] = x[0] ** 2
        return out

    def leaky(x):                   # Python runs it as y[m] = y[m].__imul__(0.1)
        y = x.copy()
        y[y < 0] *= 0.1
        y[y[:, 0] > 0] -= np.array([1.0, 2.0, 3.0])   # rows: a constant row subtracted
        return y

    def copied(x):                  # the same mask object: a select too
        out = np.zeros_like(x)
        m = x > 0
        out[m] = x[m]
        return out

    x = rng.standard_normal((4, 3))
    x[0, 0] = abs(x[0, 0]) + 0.5    # row 0 is selected: its row is written from itself
    x[1, 0] = -abs(x[1, 0]) - 0.5
    for f_np, gradients in [
        (relu, lambda ct, x: ct * (x >= 0)),   # where(x < 0, 0, x): slope 1 at 0, as JAX's
        (rows, lambda ct, x: np.where((x[:, 0] > 0)[:, None], 0.0, ct)
         + np.eye(4)[0][:, None] * 2 * x[0] * ct[x[:, 0] > 0].sum(axis=0)),
        (leaky, lambda ct, x: ct * np.where(x < 0, 0.1, 1.0)),
        (copied, lambda ct, x: ct * (x > 0)),
    ]:
        for run in (lifted_vjp, abstract_vjp):
            out, grads, ct = run(f_np, x)
            np.testing.assert_allclose(out, f_np(x.copy()), **TOL)
            np.testing.assert_allclose(grads[0], gradients(ct, x), **TOL)


def test_boolean_mask_reads_and_per_entry_writes_run_eagerly_and_refuse_abstractly(rng):
    def exp_where_positive(x):
        out = np.zeros_like(x)
        m = x > 0
        out[m] = np.exp(x[m])
        return out

    def masked_sum(x):
        return np.sum(x[x > 0] ** 2)

    def squared_in_place(x):        # not linear: x ** 2 of the unselected entries could be
        y = x * 1.0                 # inf or nan, and 0 * inf in the derivative
        y[y > 0] **= 2
        return y

    def scaled_by_input(x):         # a traced factor: refused too
        y = x * 1.0
        y[y > 0] *= x[0, 0]
        return y

    x = rng.standard_normal((4, 3))
    x[0, 0] = 0.7
    assert_closed_form(exp_where_positive, lambda ct, x: [ct * (x > 0) * np.exp(x)], x)
    assert_closed_form(squared_in_place, lambda ct, x: [ct * np.where(x > 0, 2 * x, 1.0)], x)
    def scaled_gradients(ct, x):   # y = x * where(x > 0, x[0, 0], 1), x[0, 0] > 0
        dx = ct * np.where(x > 0, x[0, 0], 1.0)
        dx[0, 0] += np.sum(ct * x * (x > 0))
        return [dx]

    assert_closed_form(scaled_by_input, scaled_gradients, x)
    out, vjp = jax.vjp(lift(masked_sum), jnp.asarray(x))
    np.testing.assert_allclose(out, masked_sum(x), **TOL)
    np.testing.assert_allclose(vjp(jnp.asarray(1.0))[0], 2 * x * (x > 0), **TOL)
    # Abstractly the masks have no value: UntraceableError (the oracle's cue to run eagerly),
    # naming the user's line, never JAX's NonConcreteBooleanIndexError.
    for f_np, line in [(exp_where_positive, r"np\.exp\(x\[m\]\)"),
                       (masked_sum, r"x\[x > 0\]"), (squared_in_place, r"\*\*= 2"),
                       (scaled_by_input, r"\*= x\[0, 0\]")]:
        with pytest.raises(UntraceableError, match=line):
            abstract_vjp(f_np, x)


def test_boolean_mask_write_of_the_wrong_number_of_values_raises_as_numpy(rng):
    def f(x):
        out = x.copy()
        out[x > 0] = np.ones(100)
        return out

    with pytest.raises(ValueError, match="cannot assign 100 input values"):
        f(np.ones(3))
    with pytest.raises(ValueError, match="cannot assign 100 input values"):
        lift(f)(jnp.ones(3))


def test_scipy_special_ufuncs_are_jax_scipy_special(rng):
    special = pytest.importorskip("scipy.special")

    def f_np(x, y):
        p = special.expit(x)
        return (special.erf(x) * p + special.gammaln(np.abs(y) + 1)
                + special.xlogy(p, np.exp(y)) + special.log_ndtr(x))

    def f_jnp(x, y):
        s = jax.scipy.special
        p = s.expit(x)
        return s.erf(x) * p + s.gammaln(jnp.abs(y) + 1) + s.xlogy(p, jnp.exp(y)) + s.log_ndtr(x)

    assert_matches(f_np, f_jnp, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


def test_a_scipy_special_ufunc_without_a_jax_counterpart_is_named():
    special = pytest.importorskip("scipy.special")
    with pytest.raises(UntraceableError, match=r"scipy\.special\.jv .*jax\.scipy\.special"):
        jax.vjp(lift(lambda x: special.jv(1, x)), jnp.ones(3))


def test_np_interp_with_list_knots(rng):
    def f_np(x, fp):
        return np.interp(x, [-2.0, -0.5, 0.7, 2.0], fp, left=-1.0)

    def f_jnp(x, fp):
        return jnp.interp(x, jnp.array([-2.0, -0.5, 0.7, 2.0]), fp, left=-1.0)

    x = np.array([-3.0, -1.2, -0.1, 0.3, 1.5, 2.5])   # every segment, both ends, no knot
    assert_matches(f_np, f_jnp, x, rng.standard_normal(4))


def test_sliding_window_view_is_a_gather(rng):
    from numpy.lib.stride_tricks import sliding_window_view

    def f_np(x):
        a = sliding_window_view(x, 3, axis=-1)              # (2, 3, 3, 3)
        b = sliding_window_view(x, (2, 2), axis=(1, 2))     # (2, 2, 4, 2, 2)
        c = sliding_window_view(x, (1, 2, 5))               # (2, 2, 1, 1, 2, 5)
        return a.sum() * (a ** 2).sum(axis=(0, 3)).ravel()[:4] + (b * b[..., ::-1]).sum() + c.sum()

    def windows(x, axis, w):
        n = x.shape[axis] - w + 1
        return jnp.stack([jnp.take(x, jnp.arange(k, k + n), axis=axis) for k in range(w)], -1)

    def f_jnp(x):
        a = windows(x, 2, 3)
        b = windows(windows(x, 1, 2), 2, 2)
        c = windows(windows(windows(x, 0, 1), 1, 2), 2, 5)
        return a.sum() * (a ** 2).sum(axis=(0, 3)).ravel()[:4] + (b * b[..., ::-1]).sum() + c.sum()

    assert_matches(f_np, f_jnp, rng.standard_normal((2, 3, 5)))


def test_flat_reads_copies_and_writes_through(rng):
    def f(x):
        out = np.zeros_like(x)
        out.flat[::2] = x.flat[1::2] * 3      # writes reach out
        part = x.flat[:3]
        part *= 0                             # a copy, as numpy's: x unchanged
        total = sum(v for v in x.T.flat)      # iteration, in C order of the transpose
        out.flat[5] = x.flat[-1] ** 2
        return out + total

    x = rng.standard_normal((2, 3))

    def f_jnp(x):
        flat = jnp.zeros(6).at[::2].set(x.ravel()[1::2] * 3).at[5].set(x.ravel()[-1] ** 2)
        return flat.reshape(2, 3) + x.sum()

    assert_matches(f, f_jnp, x)


def test_np_ndenumerate_loop(rng):
    def f(x):
        out = np.zeros_like(x)
        for (i, j), v in np.ndenumerate(x):
            out[i, j] = v ** 2 * (i + 1) + j
        return out

    assert_closed_form(f, lambda ct, x: [ct * 2 * x * (np.arange(3) + 1)[:, None]],
                       rng.standard_normal((3, 4)))


def test_np_vectorize_runs_pyfunc_entry_by_entry(rng):
    def f(x, w):
        def piece(t, s):
            if t > 0:                     # Python control flow on the entry
                return t * s
            return np.exp(t) - 1.0
        return np.vectorize(piece)(x, w)  # w broadcast against x

    def gradients(ct, x, w):
        return [ct * np.where(x > 0, w, np.exp(x)), (ct * np.where(x > 0, x, 0.0)).sum(axis=0)]

    assert_closed_form(f, gradients, rng.standard_normal((3, 4)), rng.standard_normal(4))
    # Called with plain numpy arrays, it is numpy's own vectorize.
    plain = lift(lambda x: x * np.vectorize(lambda t: t + 1)(np.arange(3.0)))(jnp.ones(3))
    np.testing.assert_array_equal(plain, [1.0, 2.0, 3.0])


def test_np_add_reduceat(rng):
    def f(x):
        sums = np.add.reduceat(x, [0, 2, 1, 4], axis=1)   # 2 >= 1: x[:, 2] alone, as numpy
        return sums * np.maximum.reduceat(x, [0, 3], axis=1)[:, :1]

    def f_jnp(x):
        sums = jnp.stack([x[:, 0:2].sum(1), x[:, 2], x[:, 1:4].sum(1), x[:, 4:].sum(1)], axis=1)
        return sums * x[:, 0:3].max(axis=1, keepdims=True)

    assert_matches(f, f_jnp, rng.standard_normal((3, 6)))


# --------------------------------------------------------------------------------------------
# What cannot be lifted raises UntraceableError, naming the call
# --------------------------------------------------------------------------------------------

MODULE_VECTORIZE = np.vectorize(lambda t: t * 2)  # made outside the lifted call: numpy's


@pytest.mark.parametrize(
    ("forward", "named"),
    [
        (lambda x: np.fix(x), r"np\.fix"),
        (lambda x: MODULE_VECTORIZE(x), r"MODULE_VECTORIZE\(x\)"),
        (lambda x: float(np.sum(x)), r"float\(\)"),
        (lambda x: math.exp(x[0]), r"float\(\).*math\.exp\(x\[0\]\)"),
        (lambda x: x[0].item() * x, r"\.item\(\)"),
        (lambda x: np.array(x.tolist()), r"\.tolist\(\)"),
        (lambda x: x.flags, r"ndarray\.flags"),
        (lambda x: np.sum([x, x]), r"np\.sum\(\[x, x\]\)"),
    ],
    ids=["no jnp counterpart", "not dispatched", "float() drops the derivative",
         "math.exp drops the derivative", ".item() drops the derivative",
         ".tolist() drops the derivative", "missing attribute", "list of lifted arrays"],
)
def test_unliftable_calls_raise_untraceable_error(forward, named):
    """Each names the call; .item(), .tolist(), float() and math.* would drop the derivative."""
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


# --- concrete shadows: value-dependent code traced once, specialized to this point ------------


def shadowed_vjp(f_np, *arrays, cotangent_seed=0):
    """``lifted_vjp`` traced ONCE abstractly (``jax.make_jaxpr``, as the oracle does) with
    concrete shadows of the inputs, and the traced program run by numpy: no eager JAX. Returns
    the forward value, the gradients, the cotangent and whether a shadow was consulted."""
    from oracle.jaxpr_numpy import numpy_program
    from oracle.numpy_on_jax import ShadowRecord, shadowing

    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    ct = np.random.default_rng(cotangent_seed).standard_normal(
        np.shape(f_np(*(a.copy() for a in arrays))))
    record = ShadowRecord()

    def program(xs, ct):
        def pure(*diff):
            with shadowing(record, zip(diff, arrays)):
                return lift(f_np)(*diff)

        out, pull = jax.vjp(pure, *xs)
        return out, pull(ct)

    run = numpy_program(program, arrays, ct)   # raises if anything needed a concrete value
    consulted = record.consulted
    out, grads = run(arrays, ct)
    assert not record.values                  # the shadows are dropped after the call
    return np.asarray(out), [np.asarray(g) for g in grads], ct, consulted


def assert_shadowed(f_np, gradients, *arrays):
    """Traced once with shadows (a shadow consulted), forward == numpy's own run, gradients ==
    ``gradients(ct, *arrays)``."""
    out, grads, ct, consulted = shadowed_vjp(f_np, *arrays)
    assert consulted
    np.testing.assert_allclose(out, f_np(*(np.array(a) for a in arrays)), **TOL)
    for got, want in zip(grads, gradients(ct, *arrays), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_np_vectorize_with_an_if_traces_once_with_shadows(rng):
    def elu(x):
        return np.vectorize(lambda t: t if t > 0 else 0.3 * (np.exp(t) - 1))(x)

    def piece(x, w):                      # two arguments, broadcast, an `if` on a product
        def f(t, s):
            if t * s > 0:
                return t * s
            return np.exp(t) - 1.0
        return np.vectorize(f)(x, w)

    x = rng.standard_normal((3, 4))
    w = rng.standard_normal(4)
    assert_shadowed(elu, lambda ct, x: [ct * np.where(x > 0, 1.0, 0.3 * np.exp(x))], x)
    assert_shadowed(piece, lambda ct, x, w: [
        ct * np.where(x * w > 0, w, np.exp(x)),
        (ct * np.where(x * w > 0, x, 0.0)).sum(axis=0)], x, w)


def test_if_on_a_sum_takes_numpys_branch_on_both_sides(rng):
    def f(x):
        if np.sum(x) > 0:
            return x ** 2
        return np.sin(x) * 3.0

    x = np.abs(rng.standard_normal(6)) + 0.1
    for point, slope in [(x, lambda x: 2 * x), (-x, lambda x: 3 * np.cos(x))]:
        assert_shadowed(f, lambda ct, x, slope=slope: [ct * slope(x)], point)


def test_int_index_and_max_of_traced_values_use_the_shadow(rng):
    def f(x):
        k = int(np.argmax(x))             # an int of a traced value, used as an index
        top = x[k]
        scale = max(x[0], x[1])           # Python max: bool of a traced comparison
        return x * top + scale

    x = rng.standard_normal(5)

    def gradients(ct, x):
        k = int(np.argmax(x))
        dx = ct * x[k]
        dx[k] += np.sum(ct * x)
        dx[0 if x[0] >= x[1] else 1] += ct.sum()
        return [dx]

    assert_shadowed(f, gradients, x)


def test_boolean_mask_reads_trace_once_with_shadows(rng):
    def masked_sum(x):
        return np.atleast_1d(x[x > 0].sum())

    def masked_square_sum(x):
        return np.atleast_1d(np.sum(x[x > 0] ** 2))

    def exp_where_positive(x):            # one value per selected entry: a scatter
        out = np.zeros_like(x)
        m = x > 0
        out[m] = np.exp(x[m])
        return out

    def selection_used_twice(x):          # x[m] *= c (a select), then x[m] read (a gather)
        y = x * 1.0
        m = y > 0
        y[m] *= 2.0
        return y[m] * y[m].sum()

    x = rng.standard_normal((4, 3))
    assert_shadowed(masked_sum, lambda ct, x: [ct * (x > 0)], x)
    assert_shadowed(masked_square_sum, lambda ct, x: [ct * 2 * x * (x > 0)], x)
    assert_shadowed(exp_where_positive, lambda ct, x: [ct * (x > 0) * np.exp(x)], x)

    def used_twice_gradients(ct, x):
        m = x > 0
        s = 2 * x[m].sum()
        dx = np.zeros_like(x)
        dx[m] = 2 * (ct * s + np.sum(ct * 2 * x[m]))
        return [dx]

    assert_shadowed(selection_used_twice, used_twice_gradients, x)


def test_np_interp_then_a_mask_read_of_its_values(rng):
    knots = [-2.0, -0.5, 0.7, 2.0]

    def f_np(x, fp):
        y = np.interp(x, knots, fp, left=-1.0)
        return np.atleast_1d(y[y > 0].sum())

    def f_jnp(x, fp):
        y = jnp.interp(x, jnp.array(knots), fp, left=-1.0)
        return jnp.atleast_1d(jnp.sum(jnp.where(y > 0, y, 0.0)))

    x = np.array([-3.0, -1.2, -0.1, 0.3, 1.5, 2.5])
    fp = np.array([0.5, -0.4, 1.2, 0.8])
    out, grads, ct, consulted = shadowed_vjp(f_np, x, fp)
    assert consulted
    ref_out, ref_grads = reference_vjp(f_jnp, ct, x, fp)
    np.testing.assert_allclose(out, ref_out, **TOL)
    for got, want in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_code_without_value_dependence_consults_no_shadow(rng):
    def leaky(x):                          # x[mask] op= constant: a select, general
        y = x.copy()
        y[y < 0] *= 0.1
        z = np.zeros((4, 3))
        z[1:] = y[1:] ** 2
        return z + y.T.reshape(4, 3)

    x = rng.standard_normal((4, 3))
    out, _, _, consulted = shadowed_vjp(leaky, x)
    assert not consulted
    np.testing.assert_allclose(out, leaky(x.copy()), **TOL)


# --------------------------------------------------------------------------------------------
# A loop's repeated reads and element writes: fewer operations, the same numpy semantics
# --------------------------------------------------------------------------------------------

def traced_program(f_np, *arrays, shadows=True):
    """The jaxpr of ``lift(f_np)``'s forward, abstract and (``shadows``) with the inputs'
    concrete shadows, as the oracle traces it."""
    from oracle.numpy_on_jax import ShadowRecord, shadowing

    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]

    def pure(*xs):
        with shadowing(ShadowRecord() if shadows else None, zip(xs, arrays)):
            return lift(f_np)(*xs)

    return jax.make_jaxpr(pure)(*arrays)


def primitives(closed) -> list[str]:
    """Every primitive of a closed jaxpr, inner jaxprs (jit) included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            found.append(eqn.primitive.name)
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", None)
                if inner is not None:
                    walk(getattr(inner, "jaxpr", inner))

    walk(closed.jaxpr)
    return found


def test_a_loops_element_writes_join_the_program_as_one_write(rng):
    def conv1d(x, w):                       # 6 element writes, w[f] read at every step
        out = np.zeros((2, 3))
        for f in range(2):
            for i in range(3):
                out[f, i] = np.sum(x[i:i + 2] * w[f])
        return out

    x, w = rng.standard_normal(4), rng.standard_normal((2, 2))
    ops = primitives(traced_program(conv1d, x, w))
    assert "dynamic_update_slice" not in ops and "scatter" not in ops
    assert ops.count("dynamic_slice") == 3 + 2      # 3 windows of x, 2 rows of w: not 6 + 6
    # Without shadows (eager JAX, the oracle's fallback), writes are not kept pending: each new
    # count of pending writes would compile a stack of its own there.
    assert "dynamic_update_slice" in primitives(traced_program(conv1d, x, w, shadows=False))

    def gradients(ct, x, w):
        dx, dw = np.zeros(4), np.zeros((2, 2))
        for f in range(2):
            for i in range(3):
                dx[i:i + 2] += ct[f, i] * w[f]
                dw[f] += ct[f, i] * x[i:i + 2]
        return dx, dw

    assert_closed_form(conv1d, gradients, x, w)
    out, grads, ct, _ = shadowed_vjp(conv1d, x, w)
    np.testing.assert_allclose(out, conv1d(x, w), **TOL)
    for got, want in zip(grads, gradients(ct, x, w), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


def test_pending_element_writes_keep_numpys_order_and_indexing(rng):
    def f(x):
        out = np.ones((3, 4))               # partly written: the rest keeps its ones
        out[0, 0] = x[0]
        out[-1, -1] = x[1] * 2              # negative indices wrap
        out[0, 0] = x[2] ** 2               # the last write of an entry wins
        out[1, np.int64(2)] = 7             # an integer constant, a numpy integer index
        total = out[0, 0] + out.sum()       # a read between writes sees them
        out[2, 0] = total
        return out

    x = rng.standard_normal(3)

    def f_jnp(x):
        out = jnp.ones((3, 4)).at[0, 0].set(x[0]).at[-1, -1].set(x[1] * 2)
        out = out.at[0, 0].set(x[2] ** 2).at[1, 2].set(7.0)
        return out.at[2, 0].set(out[0, 0] + out.sum())

    assert_matches(f, f_jnp, x)
    out, grads, ct, consulted = shadowed_vjp(f, x)
    assert not consulted
    np.testing.assert_allclose(out, f(x.copy()), **TOL)
    ref_out, ref_grads = reference_vjp(f_jnp, ct, x)
    np.testing.assert_allclose(grads[0], ref_grads[0], **TOL)


def test_pending_writes_reach_views_casts_and_branches(rng):
    def f(x):
        out = np.zeros((2, 2))
        row = out[1]                        # a view taken before the writes
        out[1, 0] = x[0]
        out[1, 1] = x[1]
        counts = np.zeros(2, dtype=np.int64)
        counts[0] = 2.7                     # numpy truncates into an integer buffer
        s = row.sum() * counts[0]
        out[0, 0] = s if out[1, 0] > 0 else -s   # a branch on a written entry (its shadow)
        return out

    for x in (np.array([0.5, -1.5]), np.array([-0.5, 2.0])):
        out, grads, ct, consulted = shadowed_vjp(f, x)
        assert consulted
        np.testing.assert_allclose(out, f(x.copy()), **TOL)
        sign = 1.0 if x[0] > 0 else -1.0
        want = np.array([ct[1, 0] + 2 * sign * ct[0, 0], ct[1, 1] + 2 * sign * ct[0, 0]])
        np.testing.assert_allclose(grads[0], want, **TOL)


def test_an_element_write_out_of_bounds_raises_numpys_index_error():
    def f(x):
        out = np.zeros(3)
        out[3] = x[0]
        return out

    with pytest.raises(IndexError, match="out of bounds"):
        f(np.ones(2))
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        shadowed_vjp(f, np.ones(2))


def test_a_read_after_a_write_is_read_again(rng):
    def f(x):
        w = np.zeros((2, 3))
        first = w[0] * 1.0                  # a read of w[0] ...
        w[0] = x                            # ... then w[0] written: a new read must see it
        again = w[0] * 1.0
        w[0, 1] = 5.0
        third = w[0]                        # and after an element write too
        return np.concatenate([first, again, third])

    x = rng.standard_normal(3)

    def gradients(ct, x):
        return [ct[3:6] + ct[6:9] * np.array([1.0, 0.0, 1.0])]

    assert_closed_form(f, gradients, x)
    out, grads, ct, _ = shadowed_vjp(f, x)
    np.testing.assert_allclose(out, f(x.copy()), **TOL)
    np.testing.assert_allclose(grads[0], gradients(ct, x)[0], **TOL)


def test_slice_bounds_that_are_arrays_or_traced_integers_are_read_uncached(rng):
    def by_array(x):                        # a 0-d array as a bound: legal numpy
        half = np.array(2)
        y = x.copy()
        y[0] = 2.0
        return y[:half] * x[half:]

    def by_argmax(x):                       # a traced integer (its shadow decides) as a bound
        k = np.argmax(x)
        return x[:k + 1] * 2.0

    x = np.array([0.3, 0.1, 2.0, -1.0])
    out, grads, ct, _ = shadowed_vjp(by_array, x)
    np.testing.assert_allclose(out, by_array(x.copy()), **TOL)
    np.testing.assert_allclose(grads[0], [0.0, x[3] * ct[1], 2.0 * ct[0], x[1] * ct[1]], **TOL)
    out, grads, ct, consulted = shadowed_vjp(by_argmax, x)
    assert consulted
    np.testing.assert_allclose(out, by_argmax(x.copy()), **TOL)
    np.testing.assert_allclose(grads[0], [2 * ct[0], 2 * ct[1], 2 * ct[2], 0.0], **TOL)


def test_np_vectorize_with_nested_ifs_constants_and_a_try_under_shadows(rng):
    """Under the oracle's shadows, ``pyfunc`` runs entry by entry, each entry on its own path."""
    def elu(x):
        return np.vectorize(lambda t: t if t > 0 else 0.3 * (np.exp(t) - 1))(x)

    def three_way(x):                      # nested ifs split the groups again
        def f(t):
            if t > 0.5:
                return t * t
            if t > -0.5:
                return 2.0 * t
            return 0.0                         # a constant branch: broadcast over its group
        return np.vectorize(f)(x)

    def guarded(x):                        # a try around the branch
        def f(t):
            try:
                return t if t > 0 else -t
            except Exception:
                return 0.0 * t
        return np.vectorize(f)(x)

    x = rng.standard_normal((3, 5)) + 0.05
    assert_shadowed(elu, lambda ct, x: [ct * np.where(x > 0, 1.0, 0.3 * np.exp(x))], x)
    x3 = np.linspace(-1.3, 1.2, 12)
    assert_shadowed(three_way, lambda ct, x: [ct * np.where(
        x > 0.5, 2 * x, np.where(x > -0.5, 2.0, 0.0))], x3)
    assert_shadowed(guarded, lambda ct, x: [ct * np.sign(x)], x3)


def test_np_vectorize_of_a_function_that_is_not_elementwise_on_arrays(rng):
    """``np.array([t, 2 t]).sum()`` is 3 t entry by entry (what numpy does), not a sum over
    entries: the lifted run must call pyfunc on single entries."""
    def f(x):
        return np.vectorize(lambda t: np.array([t, 2 * t]).sum() if t > 0 else t)(x)

    x = rng.standard_normal(8)
    assert_shadowed(f, lambda ct, x: [ct * np.where(x > 0, 3.0, 1.0)], x)
