"""save_params / load_params: exact round trip, pickle-free, clear errors for bad or foreign files."""
import json
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.serialization import load_params, save_params


@pytest.fixture
def params():
    rng = np.random.default_rng(0)
    return {
        "layers": [
            {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": np.zeros(3, np.float32)},
            {"W": rng.normal(size=(3, 2)), "b": np.arange(2.0)},
        ],
        "embedding": (jnp.ones((5, 2), jnp.float32), jnp.array(7, jnp.int32)),
    }


def assert_same(a, b):
    import jax
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_exact_with_structure_dtypes_and_metadata(tmp_path, params):
    path = save_params(tmp_path / "model", params, metadata={"classes": [0, 1], "hidden": 3})
    assert path.name == "model.npz"
    loaded, meta = load_params(path, like=params, return_metadata=True)
    assert_same(loaded, params)
    assert isinstance(loaded["embedding"], tuple) and isinstance(loaded["layers"], list)
    assert meta == {"classes": [0, 1], "hidden": 3}


def test_file_is_a_plain_npz_without_pickles(tmp_path, params):
    path = save_params(tmp_path / "m.npz", params)
    with np.load(path, allow_pickle=False) as z:  # would raise if any member needed pickle
        manifest = json.loads(z["__manifest__"].tobytes())
        assert manifest["format"] == "course-params" and manifest["version"] == 1
        np.testing.assert_array_equal(z["layers/0/W"], params["layers"][0]["W"])


def test_mismatched_model_is_named(tmp_path, params):
    path = save_params(tmp_path / "m.npz", params)
    other = {**params, "layers": [params["layers"][0], {"W": np.zeros((3, 5)), "b": np.zeros(5)}]}
    with pytest.raises(ValueError, match=r"mismatched.*layers/1/W"):
        load_params(path, like=other)
    with pytest.raises(ValueError, match="missing"):
        load_params(path, like={**params, "extra": np.zeros(1)})


def test_corrupted_files_raise_value_error(tmp_path, params):
    path = save_params(tmp_path / "m.npz", params)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        load_params(tmp_path / "truncated.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="corrupted"):
        load_params(tmp_path / "garbage.npz")
    # Flip bytes inside one stored array: the checksum catches it.
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "flipped.npz", "w") as zout:
        for item in zin.infolist():
            blob = zin.read(item.filename)
            if item.filename == "layers/0/W.npy":
                blob = blob[:-4] + bytes(b ^ 0xFF for b in blob[-4:])
            zout.writestr(item, blob)
    with pytest.raises(ValueError, match="checksum"):
        load_params(tmp_path / "flipped.npz")


def test_foreign_npz_is_rejected(tmp_path):
    np.savez(tmp_path / "plain.npz", W=np.zeros(3))
    with pytest.raises(ValueError, match="not a course-params file"):
        load_params(tmp_path / "plain.npz")


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_params(tmp_path / "nope.npz")
    with pytest.raises(TypeError, match="unsupported node"):
        save_params(tmp_path / "x", {"W": "a string"})
    with pytest.raises(TypeError, match="dict keys"):
        save_params(tmp_path / "x", {"a/b": np.zeros(1)})
    with pytest.raises(TypeError, match="metadata"):
        save_params(tmp_path / "x", {"W": np.zeros(1)}, metadata={"f": object()})
    with pytest.raises(TypeError, match="metadata must be a dict"):
        save_params(tmp_path / "x", {"W": np.zeros(1)}, metadata=[1])
