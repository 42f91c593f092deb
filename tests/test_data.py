"""course_lib.data: offline loaders equal scikit-learn's data, seeded generators, stratified disjoint
splits that cover everything, mini-batches that visit every sample once per epoch."""
import numpy as np
import pytest
from sklearn import datasets

from course_lib import data as D


def test_load_digits_is_sklearn_digits_scaled_to_unit_interval():
    X, y = D.load_digits()
    ref = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    np.testing.assert_array_equal(X, (ref.data / 16.0).astype(np.float32))
    np.testing.assert_array_equal(y, ref.target)
    assert X.min() == 0.0 and X.max() == 1.0
    Xi, yi = D.load_digits(images=True)
    assert Xi.shape == (1797, 8, 8)
    np.testing.assert_array_equal(Xi.reshape(1797, 64), X)
    np.testing.assert_array_equal(yi, y)


@pytest.mark.parametrize("loader, ref, shape, n_classes", [
    (D.load_iris, datasets.load_iris, (150, 4), 3),
    (D.load_breast_cancer, datasets.load_breast_cancer, (569, 30), 2),
    (D.load_wine, datasets.load_wine, (178, 13), 3),
])
def test_tabular_loaders_return_raw_sklearn_features(loader, ref, shape, n_classes):
    X, y = loader()
    r = ref()
    assert X.shape == shape and X.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(X, r.data.astype(np.float32))   # not standardised
    np.testing.assert_array_equal(y, r.target)
    assert set(np.unique(y)) == set(range(n_classes))


def test_breast_cancer_scales_differ_wildly_as_documented():
    X, _ = D.load_breast_cancer()
    assert X.max() == 4254.0 and X.max(0).min() < 0.031   # as documented: 0.03 vs 4254


def test_load_sample_images():
    imgs = D.load_sample_images()
    assert sorted(imgs) == ["china", "flower"]
    for img in imgs.values():
        assert img.shape == (427, 640, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(imgs["china"], datasets.load_sample_images().images[0])


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (D.make_moons, datasets.make_moons, {}),
    (D.make_circles, datasets.make_circles, {"factor": 0.3}),
])
def test_moons_and_circles_are_sklearns_generators(ours, theirs, kwargs):
    X, y = ours(150, 0.1, 3, **kwargs)
    Xr, yr = theirs(n_samples=150, noise=0.1, random_state=3, **kwargs)
    np.testing.assert_array_equal(X, Xr.astype(np.float32))
    np.testing.assert_array_equal(y, yr)
    assert X.dtype == np.float32 and y.dtype == np.int32


def test_spirals_shapes_balance_and_seed():
    X, y = D.make_spirals(301, n_classes=3, noise=0.1, seed=0)
    assert X.shape == (301, 2) and X.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [101, 100, 100])
    X2, y2 = D.make_spirals(301, n_classes=3, noise=0.1, seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = D.make_spirals(301, n_classes=3, noise=0.1, seed=1)
    assert not np.array_equal(X, X3)
    np.testing.assert_array_less(np.linalg.norm(X, axis=1), 1.0 + 1e-6)   # radius in [0, 1]
    assert not np.array_equal(y[:100], np.sort(y[:100]))                   # shuffled


def test_spirals_without_noise_follow_the_documented_formula():
    X, y = D.make_spirals(40, n_classes=2, noise=0.0, seed=0)
    r = np.linalg.norm(X, axis=1)
    t = np.arctan2(X[:, 0], X[:, 1])                      # point = r (sin t, cos t)
    expected = 2 * np.pi * y / 2 + 4 * r
    diff = np.angle(np.exp(1j * (t - expected)))         # compare angles modulo 2 pi
    np.testing.assert_allclose(diff[r > 1e-3], 0.0, atol=1e-5)


@pytest.mark.parametrize("f", [D.make_moons, D.make_circles, D.make_spirals])
def test_generators_reject_bad_arguments(f):
    with pytest.raises(ValueError, match="n must be an int >= "):
        f(0)
    with pytest.raises(TypeError, match="n must be an int"):
        f(10.5)
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0"):
        f(10, noise=-0.1)
    with pytest.raises(TypeError, match="noise must be a number"):
        f(10, noise="a lot")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        f(10, seed=-1)


def test_specific_generator_arguments_are_checked():
    with pytest.raises(ValueError, match=r"factor must be a finite number in \[0, 1\)"):
        D.make_circles(10, factor=1.0)
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        D.make_spirals(10, n_classes=1)
    with pytest.raises(ValueError, match="n must be at least n_classes"):
        D.make_spirals(2, n_classes=3)
    with pytest.raises(TypeError, match="images must be True or False"):
        D.load_digits(images="yes")


# ----------------------------------------------------------------------------- splitting
def _ids_dataset(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1]).astype(np.int32)
    X = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.float32)   # column 0 = sample id
    return X, y


def test_split_is_disjoint_covers_everything_and_keeps_pairs():
    X, y = _ids_dataset()
    s = D.train_val_test_split(X, y, val_size=0.15, test_size=0.15, seed=0)
    assert list(s) == ["X_train", "y_train", "X_val", "y_val", "X_test", "y_test"]
    ids = [s[f"X_{k}"][:, 0].astype(int) for k in ("train", "val", "test")]
    all_ids = np.concatenate(ids)
    assert len(all_ids) == len(y) and len(np.unique(all_ids)) == len(y)          # disjoint + cover
    for k, i in zip(("train", "val", "test"), ids):
        np.testing.assert_array_equal(s[f"y_{k}"], y[i])                          # pairs intact
    assert [len(i) for i in ids] == pytest.approx([700, 150, 150], abs=2)


def test_split_is_stratified():
    X, y = _ids_dataset()
    s = D.train_val_test_split(X, y, seed=1)
    overall = np.bincount(y, minlength=3) / len(y)
    for k in ("train", "val", "test"):
        part = s[f"y_{k}"]
        counts = np.bincount(part, minlength=3)
        # each class is rounded separately: at most one sample off per class
        np.testing.assert_array_less(np.abs(counts - overall * len(part)), 1.0 + 1e-9)


def test_split_is_seeded():
    X, y = _ids_dataset()
    a = D.train_val_test_split(X, y, seed=5)
    b = D.train_val_test_split(X, y, seed=5)
    c = D.train_val_test_split(X, y, seed=6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["X_test"], c["X_test"])


def test_split_unstratified_works_for_regression_targets():
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    y = np.linspace(0.0, 1.0, 100)
    s = D.train_val_test_split(X, y, val_size=0.2, test_size=0.1, stratify=False)
    assert (len(s["y_train"]), len(s["y_val"]), len(s["y_test"])) == (70, 20, 10)
    with pytest.raises(ValueError, match="stratify=True needs integer class labels y"):
        D.train_val_test_split(X, y)


def test_split_with_no_validation_set():
    X, y = _ids_dataset(100)
    s = D.train_val_test_split(X, y, val_size=0.0, test_size=0.2)
    assert len(s["y_val"]) == 0 and len(s["y_train"]) + len(s["y_test"]) == 100


def test_split_rejects_bad_arguments():
    X, y = _ids_dataset(50)
    with pytest.raises(ValueError, match="X and y must have the same number of samples, got 50 and 49"):
        D.train_val_test_split(X, y[:-1])
    with pytest.raises(ValueError, match=r"y must have 1 dimension.*got shape \(50, 1\)"):
        D.train_val_test_split(X, y[:, None])
    with pytest.raises(ValueError, match="val_size \\+ test_size must be < 1"):
        D.train_val_test_split(X, y, val_size=0.5, test_size=0.5)
    with pytest.raises(ValueError, match=r"test_size must be a finite number in \[0, 1\)"):
        D.train_val_test_split(X, y, test_size=1.5)
    with pytest.raises(TypeError, match="val_size must be a number"):
        D.train_val_test_split(X, y, val_size="15%")
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        Xn = X.copy()
        Xn[3, 1] = np.nan
        D.train_val_test_split(Xn, y)
    with pytest.raises(TypeError, match="stratify must be True or False"):
        D.train_val_test_split(X, y, stratify="yes")
    with pytest.raises(TypeError, match="seed must be an int"):
        D.train_val_test_split(X, y, seed=0.5)
    with pytest.raises(TypeError, match="X must be an array of samples"):
        D.train_val_test_split(None, y)


# ----------------------------------------------------------------------------- mini-batches
def test_minibatches_visit_every_sample_exactly_once():
    X, y = _ids_dataset(103)
    batches = list(D.minibatches(X, y, batch_size=10, seed=0))
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    ids = np.concatenate([xb[:, 0] for xb, _ in batches]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(103))
    for xb, yb in batches:
        np.testing.assert_array_equal(yb, y[xb[:, 0].astype(int)])
    assert not np.array_equal(ids, np.arange(103))               # shuffled


def test_minibatches_drop_last_seed_and_no_shuffle():
    X, y = _ids_dataset(103)
    assert [len(b) for _, b in D.minibatches(X, y, 10, drop_last=True)] == [10] * 10
    a = np.concatenate([xb[:, 0] for xb, _ in D.minibatches(X, y, 16, seed=3)])
    b = np.concatenate([xb[:, 0] for xb, _ in D.minibatches(X, y, 16, seed=3)])
    c = np.concatenate([xb[:, 0] for xb, _ in D.minibatches(X, y, 16, seed=4)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ordered = np.concatenate([xb[:, 0] for xb, _ in D.minibatches(X, y, 16, shuffle=False)])
    np.testing.assert_array_equal(ordered, np.arange(103))
    assert len(list(D.minibatches(X, y, 500))) == 1


def test_minibatches_validate_eagerly():
    X, y = _ids_dataset(20)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        D.minibatches(X, y, 0)              # raises at the call, not at the first next()
    with pytest.raises(TypeError, match="batch_size must be an int, got float"):
        D.minibatches(X, y, 2.5)
    with pytest.raises(TypeError, match="batch_size must be an int, got bool"):
        D.minibatches(X, y, True)
    with pytest.raises(ValueError, match="X and y must have the same number of samples"):
        D.minibatches(X, y[:5], 4)
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        D.minibatches(X, y, 4, shuffle=1)
    with pytest.raises(ValueError, match="y contains 1 NaN"):
        D.minibatches(X, np.array([np.nan] + [0.0] * 19), 4)
