"""Save/load: a bit-for-bit round trip, and a clear ValueError for every malformed file."""

import gc
import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

from reference import Activation, Loss, Network

GOOD_CONFIG = {
    "format": "simple-net",
    "version": 1,
    "layer_sizes": [3, 4, 2],
    "activations": ["tanh", "sigmoid"],
    "loss": "binary_cross_entropy",
    "init": "glorot",
    "seed": 0,
}
GOOD_SHAPES = [(4, 4), (5, 2)]


def good_arrays():
    rng = np.random.default_rng(0)
    return {f"W{k}": rng.normal(size=s) for k, s in enumerate(GOOD_SHAPES)}


def write(path, config=GOOD_CONFIG, **arrays):
    """An .npz with ``config`` (dict -> JSON; str kept as is; None = no entry) and arrays."""
    entries = dict(arrays)
    if config is not None:
        entries["config"] = np.array(config if isinstance(config, str) else json.dumps(config))
    np.savez(path, **entries)
    return path


def with_config(**changes):
    return {**GOOD_CONFIG, **changes}


# --- round trip --------------------------------------------------------------------------------

NETWORKS = [
    pytest.param([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy", id="bce"),
    pytest.param([9, 5, 3], ["relu", "softmax"], "cross_entropy", id="ce"),
    pytest.param([2, 3, 3, 1], ["gelu", "leaky_relu", "identity"], "mse", id="mse"),
]


@pytest.mark.parametrize(("sizes", "acts", "loss"), NETWORKS)
def test_a_saved_and_loaded_network_is_bit_for_bit_the_same(sizes, acts, loss, tmp_path, rng):
    net = Network(sizes, acts, loss, seed=3, init="he")
    net.fit(rng.normal(size=(8, sizes[0])), targets(loss, 8, sizes[-1], rng), epochs=2, lr=0.1)
    path = tmp_path / "net.npz"
    net.save(path)
    back = Network.load(path)
    assert back.layer_sizes == net.layer_sizes
    assert [a.name for a in back.activations] == acts
    assert back.loss_function.name == loss
    for w, v in zip(net.weights, back.weights):
        assert w.dtype == v.dtype and w.tobytes() == v.tobytes()
    x = rng.normal(size=(5, sizes[0]))
    t = targets(loss, 5, sizes[-1], rng)
    assert back.forward(x).tobytes() == net.forward(x).tobytes()
    assert back.loss(x, t) == net.loss(x, t)
    e1, dw1, dx1 = net.gradients(x, t)
    e2, dw2, dx2 = back.gradients(x, t)
    assert e1 == e2 and dx1.tobytes() == dx2.tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(dw1, dw2))


def targets(loss, batch, n_out, rng):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=batch)
    if loss == "binary_cross_entropy":
        return rng.uniform(size=(batch, n_out))
    return rng.normal(size=(batch, n_out))


def test_saving_accepts_a_string_path_and_overwrites_an_existing_file(tmp_path):
    path = str(tmp_path / "net.npz")
    Network([2, 1], ["tanh"], seed=0).save(path)
    Network([2, 1], ["tanh"], seed=1).save(path)
    assert Network.load(path).weights[0].tobytes() == \
        Network([2, 1], ["tanh"], seed=1).weights[0].tobytes()
    assert os.listdir(tmp_path) == ["net.npz"]  # no temporary file left behind


def test_a_hand_written_valid_file_loads(tmp_path):
    arrays = good_arrays()
    net = Network.load(write(tmp_path / "ok.npz", **arrays))
    for k, w in enumerate(net.weights):
        np.testing.assert_array_equal(w, arrays[f"W{k}"])


def test_the_file_is_readable_without_pickle(tmp_path):
    path = tmp_path / "net.npz"
    Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy").save(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["W0", "W1", "config"]
        config = json.loads(str(z["config"][()]))
    assert config["format"] == "simple-net" and config["version"] == 1
    assert config["activations"] == ["tanh", "sigmoid"]


# --- refusals ----------------------------------------------------------------------------------


def refuses(path, match):
    with pytest.raises(ValueError, match=r"is not a valid simple-net file: " + match):
        Network.load(path)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no network file at"):
        Network.load(tmp_path / "nothing.npz")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello, I am not an archive\n")
    refuses(path, r"expected an \.npz \(zip\) archive")


def truncated_archive(tmp_path):
    good = tmp_path / "good.npz"
    Network([3, 4, 2], ["tanh", "sigmoid"]).save(good)
    path = tmp_path / "cut.npz"
    path.write_bytes(good.read_bytes()[:200])  # the zip signature, then nothing usable
    return path


# numpy's np.load leaks its file handle on an unreadable zip; that leak is the next test's
# subject, so here its ResourceWarning (and pytest's report of it) must not mask the verdict.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_truncated_archive_is_refused(tmp_path):
    refuses(truncated_archive(tmp_path), r"cannot read it as \.npz")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_refusing_a_truncated_archive_leaves_no_file_open(tmp_path):
    path = truncated_archive(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="cannot read it as"):
            Network.load(path)
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    refuses(path, r"expected an \.npz \(zip\) archive")


@pytest.mark.parametrize("name", ["single.npy", "single_named.npz"])
def test_a_single_npy_array_is_refused_with_a_value_error(tmp_path, name):
    path = tmp_path / name
    with open(path, "wb") as f:
        np.save(f, np.zeros((4, 4)))
    refuses(path, r"it holds a single \.npy array, expected an \.npz archive")


def test_a_file_without_config_is_refused(tmp_path):
    refuses(write(tmp_path / "f.npz", config=None, **good_arrays()),
            r"missing the 'config' entry \(a JSON string\)")


def test_a_config_that_is_not_a_string_is_refused(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, config=np.array([1.0, 2.0]), **good_arrays())
    refuses(path, r"missing the 'config' entry \(a JSON string\)")


def test_a_config_that_is_not_json_is_refused(tmp_path):
    refuses(write(tmp_path / "f.npz", config="{'format': simple-net", **good_arrays()),
            r"config is not valid JSON")


@pytest.mark.parametrize("config", ['["simple-net", 1]', '"simple-net"', "3"])
def test_a_config_that_is_json_but_not_an_object_is_refused(tmp_path, config):
    refuses(write(tmp_path / "f.npz", config=config, **good_arrays()),
            r"config has no format tag 'simple-net'")


@pytest.mark.parametrize("tag", ["simple_net", "", None])
def test_a_wrong_format_tag_is_refused(tmp_path, tag):
    refuses(write(tmp_path / "f.npz", config=with_config(format=tag), **good_arrays()),
            r"config has no format tag 'simple-net'")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_a_wrong_version_is_refused(tmp_path, version):
    refuses(write(tmp_path / "f.npz", config=with_config(version=version), **good_arrays()),
            rf"unsupported version {version!r}, expected 1")


def test_a_boolean_version_is_refused(tmp_path):
    refuses(write(tmp_path / "f.npz", config=with_config(version=True), **good_arrays()),
            r"unsupported version True, expected 1")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"activations": ["tanh", "swish"]},
         r"its configuration is refused: unknown activation 'swish'; expected one of: identity"),
        ({"loss": "hinge"}, r"its configuration is refused: unknown loss 'hinge'"),
        ({"init": "xavier"}, r"its configuration is refused: unknown init 'xavier'"),
        ({"layer_sizes": [3.0, 4, 2]},
         r"its configuration is refused: layer_sizes\[0\] must be an int, got float: 3\.0"),
        ({"layer_sizes": [3, 0, 2]},
         r"its configuration is refused: layer_sizes\[1\] must be a positive int, got 0"),
        ({"layer_sizes": [3, 4, 2], "activations": ["tanh"]},
         r"its configuration is refused: expected 2 activations \(one per layer\), got 1"),
        ({"activations": ["tanh", "tanh"]},
         r"its configuration is refused: loss 'binary_cross_entropy' needs the last activation "
         r"to be 'sigmoid', got 'tanh'"),
        ({"seed": "zero"},
         r"its configuration is refused: seed must be a non-negative int or None, got 'zero'"),
        ({"layer_sizes": "3,4,2"}, r"config\['layer_sizes'\] must be a list, got '3,4,2'"),
        ({"activations": "tanh"}, r"config\['activations'\] must be a list, got 'tanh'"),
        ({"activations": ["tanh", 3]}, r"config\['activations'\] must be a list of names"),
        ({"loss": None}, r"config\['loss'\] must be a str, got None"),
    ],
)
def test_a_config_with_a_bad_field_is_refused_with_the_reason(tmp_path, changes, match):
    refuses(write(tmp_path / "f.npz", config=with_config(**changes), **good_arrays()), match)


def test_a_weight_of_the_wrong_shape_is_refused(tmp_path):
    arrays = good_arrays()
    arrays["W1"] = arrays["W1"][:-1]
    refuses(write(tmp_path / "f.npz", **arrays),
            r"weights\[1\] must have shape \(5, 2\) \(n_in \+ 1 bias row, n_out\), got \(4, 2\)")


def test_a_float32_weight_is_refused(tmp_path):
    arrays = good_arrays()
    arrays["W0"] = arrays["W0"].astype(np.float32)
    refuses(write(tmp_path / "f.npz", **arrays), r"W0 must be float64, got float32")


def test_an_integer_weight_is_refused(tmp_path):
    arrays = good_arrays()
    arrays["W1"] = np.ones(GOOD_SHAPES[1], dtype=np.int64)
    refuses(write(tmp_path / "f.npz", **arrays), r"W1 must be float64, got int64")


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_a_non_finite_weight_is_refused(tmp_path, bad):
    arrays = good_arrays()
    arrays["W1"][3, 1] = bad
    refuses(write(tmp_path / "f.npz", **arrays),
            r"weights\[1\] must be finite, found 1 NaN/Inf entries \(first at index \(3, 1\)")


def test_an_extra_array_is_refused(tmp_path):
    refuses(write(tmp_path / "f.npz", W2=np.zeros((3, 3)), **good_arrays()),
            r"expected arrays \['W0', 'W1'\], found \['W0', 'W1', 'W2'\]")


def test_a_missing_array_is_refused(tmp_path):
    arrays = good_arrays()
    del arrays["W1"]
    refuses(write(tmp_path / "f.npz", **arrays), r"expected arrays \['W0', 'W1'\], found \['W0'\]")


def test_an_object_array_that_needs_pickle_is_refused(tmp_path):
    arrays = good_arrays()
    arrays["W0"] = arrays["W0"].astype(object)
    refuses(write(tmp_path / "f.npz", **arrays),
            r"array 'W0' holds Python objects \(dtype object\), which would need pickle; files "
            r"are read with allow_pickle=False")


def test_an_object_config_that_needs_pickle_is_refused(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, config=np.array(json.dumps(GOOD_CONFIG), dtype=object), **good_arrays())
    refuses(path, r"array 'config' holds Python objects \(dtype object\), which would need "
                  r"pickle")


@pytest.mark.parametrize("raw_member", ["config", "W0"])
def test_a_zip_member_that_is_not_an_npy_array_is_refused(tmp_path, raw_member):
    path = tmp_path / "f.npz"
    members = {"config": np.array(json.dumps(GOOD_CONFIG)), **good_arrays()}
    with zipfile.ZipFile(path, "w") as z:
        for name, array in members.items():
            if name == raw_member:
                z.writestr(name, b"raw bytes, not an .npy array")
            else:
                buf = io.BytesIO()
                np.save(buf, array)
                z.writestr(name + ".npy", buf.getvalue())
    refuses(path, r".")


# --- saving what cannot be saved ---------------------------------------------------------------


def test_saving_a_custom_activation_is_refused_and_writes_nothing(tmp_path):
    cube = Activation("cube", lambda v: v**3, lambda v: 3 * v**2)
    net = Network([2, 3, 1], [cube, "identity"], "mse")
    with pytest.raises(ValueError, match=r"cannot save: layer 0 uses the custom activation "
                                         r"'cube'.*no pickle"):
        net.save(tmp_path / "net.npz")
    assert os.listdir(tmp_path) == []


def test_a_save_that_fails_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        Network([2, 1], ["tanh"]).save(tmp_path / "net.npz")
    assert os.listdir(tmp_path) == []


def test_a_save_that_fails_midway_keeps_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    old = Network([2, 1], ["tanh"], seed=5)
    old.save(path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        Network([2, 1], ["tanh"], seed=6).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]


# --- exact messages, naming the file -----------------------------------------------------------


def malformed_files(tmp_path):
    """One file per refusal of ``load``, each with the reason its message must give."""
    arrays = good_arrays()
    files = []

    def add(name, why, config=GOOD_CONFIG, **entries):
        files.append((write(tmp_path / name, config, **(entries or arrays)), why))

    (tmp_path / "text.npz").write_text("hello\n")
    files.append((tmp_path / "text.npz", "expected an .npz (zip) archive"))
    np.save(tmp_path / "single.npy", np.zeros(3))
    files.append((tmp_path / "single.npy",
                  "it holds a single .npy array, expected an .npz archive"))
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as z:
        z.writestr("config", b"raw bytes")
    files.append((tmp_path / "raw.npz", "entry 'config' is not a .npy array"))
    np.savez(tmp_path / "object.npz", config=np.array(json.dumps(GOOD_CONFIG)),
             W0=arrays["W0"].astype(object), W1=arrays["W1"])
    files.append((tmp_path / "object.npz", "array 'W0' holds Python objects (dtype object), "
                                           "which would need pickle; files are read with "
                                           "allow_pickle=False"))
    add("noconfig.npz", "missing the 'config' entry (a JSON string)", config=None)
    add("nojson.npz", "config is not valid JSON (Expecting value: line 1 column 1 (char 0))",
        config="nope")
    add("notag.npz", "config has no format tag 'simple-net'", config=with_config(format="x"))
    add("version.npz", "unsupported version 2, expected 1", config=with_config(version=2))
    add("loss.npz", "config['loss'] must be a str, got 3", config=with_config(loss=3))
    add("names.npz", "config['activations'] must be a list of names",
        config=with_config(activations=[1, 2]))
    add("refused.npz", "its configuration is refused: unknown loss 'l1'; expected one of: mse, "
        "cross_entropy, binary_cross_entropy", config=with_config(loss="l1"))
    add("extra.npz", "expected arrays ['W0', 'W1'], found ['W0', 'W1', 'W2']",
        W2=np.zeros(2), **arrays)
    add("float32.npz", "W0 must be float64, got float32",
        W0=arrays["W0"].astype(np.float32), W1=arrays["W1"])
    add("shape.npz", "weights[1] must have shape (5, 2) (n_in + 1 bias row, n_out), got (4, 2)",
        W0=arrays["W0"], W1=arrays["W1"][:-1])
    return files


def test_every_refusal_names_the_file_and_gives_exactly_its_reason(tmp_path):
    for path, why in malformed_files(tmp_path):
        with pytest.raises(ValueError) as info:
            Network.load(path)
        assert str(info.value) == f"{path} is not a valid simple-net file: {why}"


def test_a_truncated_archive_is_refused_naming_the_file(tmp_path):
    path = truncated_archive(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(ValueError) as info:
            Network.load(path)
    assert str(info.value).startswith(f"{path} is not a valid simple-net file: cannot read it "
                                      "as .npz (")


def test_a_config_in_a_one_element_array_is_refused(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, config=np.array([json.dumps(GOOD_CONFIG)]), **good_arrays())
    refuses(path, r"missing the 'config' entry \(a JSON string\)$")


def test_saving_a_custom_activation_or_loss_is_refused_with_exactly_this_message(tmp_path):
    cube = Activation("cube", lambda v: v**3, lambda v: 3 * v**2)
    with pytest.raises(ValueError) as info:
        Network([2, 3, 1], ["tanh", cube]).save(tmp_path / "net.npz")
    assert str(info.value) == (
        "cannot save: layer 1 uses the custom activation 'cube', and custom functions cannot be "
        "serialised by value (no pickle); save the weights with numpy and rebuild the network "
        "with the same Activation instead")
    l1 = Loss("l1", lambda y, t: np.mean(np.sum(np.abs(y - t), axis=1)),
              lambda y, t: np.sign(y - t) / y.shape[0])
    with pytest.raises(ValueError) as info:
        Network([2, 1], ["identity"], l1).save(tmp_path / "net.npz")
    assert str(info.value) == ("cannot save: the custom loss 'l1' cannot be serialised by value "
                               "(no pickle)")
    assert os.listdir(tmp_path) == []


def test_a_save_writes_its_partial_file_as_a_tmp_file_beside_the_target(tmp_path, monkeypatch):
    # Beside the target, so that the final os.replace stays on one file system (atomic).
    seen = []

    def spying_savez(f, **arrays):
        seen.extend(os.listdir(tmp_path))
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", spying_savez)
    with pytest.raises(OSError, match="disk full"):
        Network([2, 1], ["tanh"]).save(tmp_path / "net.npz")
    assert len(seen) == 1 and seen[0].endswith(".tmp")
    assert os.listdir(tmp_path) == []
