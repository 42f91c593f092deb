"""course_lib._validation: each helper raises with the argument's name, and value checks are skipped
for tracers (under jax.jit/grad/vmap) while shape and dtype checks still run."""
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import _validation as V


def test_is_concrete():
    assert V.is_concrete(np.ones(2)) and V.is_concrete(jnp.ones(2)) and V.is_concrete(1.0)
    seen = []
    jax.jit(lambda x: seen.append(V.is_concrete(x)) or x)(jnp.ones(2))
    jax.grad(lambda x: seen.append(V.is_concrete(x)) or x)(1.0)
    jax.vmap(lambda x: seen.append(V.is_concrete(x)) or x)(jnp.ones(2))
    assert seen == [False, False, False]


def test_as_float_array_accepts_floats():
    for x in (1.5, [1.0, 2.0], np.ones(3, np.float32), jnp.ones(2)):
        out = V.as_float_array(x, "x")
        assert isinstance(out, jax.Array) and jnp.issubdtype(out.dtype, jnp.floating)
    assert V.as_float_array(np.ones(2, np.float32), "x").dtype == jnp.float32


def test_as_float_array_rejects_ints_unless_allowed():
    with pytest.raises(TypeError, match=r"logits must be a floating-point array, got dtype int.*logits.astype\(float\)"):
        V.as_float_array(np.array([1, 2]), "logits")
    with pytest.raises(TypeError, match="flag must be a floating-point array, got dtype bool"):
        V.as_float_array(np.array([True]), "flag")
    out = V.as_float_array(np.array([1, 2]), "x", allow_int=True)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_array_equal(out, [1.0, 2.0])


@pytest.mark.parametrize("bad, pattern", [
    ("1.0", "got str"),
    (None, "got NoneType"),
    (np.array([1 + 1j]), "must be a real floating-point array"),
    ([[1.0], [1.0, 2.0]], "got list: .*inhomogeneous"),
    (np.array(["a"]), "got dtype <U1"),
])
def test_as_float_array_rejects_non_numbers(bad, pattern):
    with pytest.raises(TypeError, match=f"^w .*({pattern})"):
        V.as_float_array(bad, "w")


def test_as_int_array():
    assert jnp.issubdtype(V.as_int_array(np.array([0, 2]), "labels").dtype, jnp.integer)
    with pytest.raises(TypeError, match=r"labels must be an integer array \(class indices\), got dtype float"):
        V.as_int_array(np.array([0.0, 1.0]), "labels")
    with pytest.raises(TypeError, match="labels must be an integer array, got str"):
        V.as_int_array("01", "labels")


def test_check_ndim():
    x = np.ones((2, 3))
    assert V.check_ndim(x, "x", 2) is x
    assert V.check_ndim(x, "x", (1, 2)) is x
    with pytest.raises(ValueError, match=r"^logits must have 2 dimension\(s\), got shape \(3,\)$"):
        V.check_ndim(np.ones(3), "logits", 2)
    with pytest.raises(ValueError, match=r"images must have 3 or 4 dimension\(s\), got shape \(2, 3\)"):
        V.check_ndim(x, "images", (3, 4))


def test_check_shape_with_wildcards():
    x = np.ones((5, 3))
    assert V.check_shape(x, "W", (None, 3)) is x
    with pytest.raises(ValueError, match=r"^W must have shape \(any, 4\), got \(5, 3\)$"):
        V.check_shape(x, "W", (None, 4))
    with pytest.raises(ValueError, match=r"W must have shape \(5, 3, any\), got \(5, 3\)"):
        V.check_shape(x, "W", (5, 3, None))


def test_check_same_shape():
    V.check_same_shape(np.ones(3), "a", np.zeros(3), "b")
    with pytest.raises(ValueError, match=r"^pred and target must have the same shape, got \(3,\) and \(3, 1\)$"):
        V.check_same_shape(np.ones(3), "pred", np.ones((3, 1)), "target")


def test_check_finite():
    x = np.ones(3)
    assert V.check_finite(x, "x") is x
    with pytest.raises(ValueError, match=r"^grads must be finite, got 2 NaN and 1 infinite value\(s\)$"):
        V.check_finite(np.array([np.nan, np.nan, np.inf, 1.0]), "grads")


def test_check_option():
    assert V.check_option("sum", "reduction", ("mean", "sum")) == "sum"
    with pytest.raises(ValueError, match=r"^reduction must be one of 'mean', 'sum'; got 'avg'$"):
        V.check_option("avg", "reduction", ("mean", "sum"))


def test_check_option_type_and_value():
    with pytest.raises(TypeError, match=r"^reduction must be a string, one of 'mean', 'sum'; got NoneType$"):
        V.check_option(None, "reduction", ("mean", "sum"))
    assert V.check_option(2, "depth", (1, 2, 4)) == 2                   # options need not be strings
    with pytest.raises(ValueError, match=r"^depth must be one of 1, 2, 4; got 3$"):
        V.check_option(3, "depth", (1, 2, 4))


def test_check_probability():
    p = np.array([0.0, 0.5, 1.0])
    assert V.check_probability(p, "p") is p
    with pytest.raises(ValueError, match=r"^p must lie in \(0, 1\), got values from 0 to 1$"):
        V.check_probability(p, "p", open_interval=True)
    with pytest.raises(ValueError, match=r"^keep must lie in \[0, 1\], got values from -0.1 to 0.5$"):
        V.check_probability(np.array([-0.1, 0.5]), "keep")
    with pytest.raises(ValueError, match="keep must be finite, got 1 NaN"):
        V.check_probability(np.array([np.nan, 0.5]), "keep")


def test_value_checks_are_skipped_under_tracing_but_shape_checks_are_not():
    def f(x):
        V.check_finite(x, "x")
        V.check_probability(x, "x")
        return x * 2

    bad = jnp.array([np.nan, 2.0])
    with pytest.raises(ValueError, match="x must be finite"):
        f(bad)                                                  # concrete: checked
    out = jax.jit(f)(bad)                                       # traced: value checks skipped
    assert np.isnan(out[0]) and out[1] == 4.0
    assert jax.vmap(f)(bad).shape == (2,)
    assert float(jax.grad(lambda x: f(x).sum())(2.0)) == 2.0

    @jax.jit
    def g(x):
        V.check_ndim(x, "x", 2)
        return V.as_float_array(x, "x")

    with pytest.raises(ValueError, match=r"x must have 2 dimension\(s\), got shape \(3,\)"):
        g(jnp.ones(3))
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int"):
        g(jnp.ones((1, 3), dtype=jnp.int32))


def test_is_binary_np_matches_numpy_isin_and_works_inside_jit():
    for values in ([0, 1, 1, 0], [0.0, 1.0], [], [0, 2], [0.5, 1.0], [np.nan, 1.0], [True, False]):
        v = np.asarray(values)
        assert V.is_binary_np(v) == bool(np.isin(v, (0, 1)).all())
        assert V.is_binary_np(jnp.asarray(v)) == bool(np.isin(v, (0, 1)).all())
    closed = jnp.asarray([0.0, 1.0, 2.0])        # a concrete array captured by a jitted function
    seen = []
    jax.jit(lambda x: (seen.append(V.is_binary_np(closed)), x)[1])(1.0)
    assert seen == [False]                       # evaluated while tracing, not staged


def test_check_number_type_and_range():
    assert V.check_number(3, "a") == 3.0 and V.check_number(np.float32(0.5), "a", low=0, high=1) == 0.5
    assert V.check_number(jnp.asarray(2.0), "a") == 2.0                 # a 0-d array is a number
    for bad in ("0.5", True, None, [0.5], np.ones(2)):
        with pytest.raises(TypeError, match="a must be a number"):
            V.check_number(bad, "a")
    with pytest.raises(ValueError, match=r"a must be a finite number in \[0, 1\), got 1"):
        V.check_number(1, "a", low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"^a must be a finite number > 0, got 0.0$"):
        V.check_number(0.0, "a", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^l2 must be a finite number >= 0, got nan$"):
        V.check_number(float("nan"), "l2", low=0)
    with pytest.raises(ValueError, match=r"^a must be a finite number <= 1, got inf$"):
        V.check_number(float("inf"), "a", high=1)
    with pytest.raises(ValueError, match=r"a must be a finite number, got nan"):
        V.check_number(float("nan"), "a")
    # a number inside jit/vmap cannot be checked: it is passed through, its type still is
    seen = []
    jax.jit(lambda a: seen.append(V.check_number(a, "a", low=0) is a) or a)(-1.0)
    assert seen == [True]
    with pytest.raises(TypeError, match="a must be a number"):
        jax.jit(lambda a: V.check_number(a, "a"))(jnp.ones(2))
    seen = []                                    # ... and with grid=True a traced array of numbers
    jax.jit(lambda a: seen.append(V.check_number(a, "a", low=0, grid=True) is a) or a)(-jnp.ones(2))
    assert seen == [True]
    with pytest.raises(TypeError, match="a must be a number"):
        V.check_number(np.ones(2), "a", grid=True)   # a concrete array is not a number


def test_check_int_and_int_pairs():
    assert V.check_int(np.int64(3), "n", minimum=1) == 3
    for bad in (3.0, True, "3", None):
        with pytest.raises(TypeError, match="n must be an int"):
            V.check_int(bad, "n")
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        V.check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match="n must be an int <= 3, got 4"):
        V.check_int(4, "n", maximum=3)
    assert V.as_int_pair(2, "s") == (2, 2) and V.as_int_pair([1, np.int32(3)], "s") == (1, 3)
    for bad in (1.5, (1, 2, 3), (1, 2.0), "12", (True, 1)):
        with pytest.raises(TypeError, match="s must be an int or a pair of ints"):
            V.as_int_pair(bad, "s")
    with pytest.raises(ValueError, match=r"s must be >= 1, got \(1, 0\)"):
        V.as_int_pair((1, 0), "s", minimum=1)


def test_check_key_nonempty_and_cache():
    assert V.check_key(jax.random.key(0)) is not None and V.check_key(jax.random.PRNGKey(0)) is not None
    for bad in (0, np.zeros(3, np.uint32), np.zeros(2, np.float32), "key"):
        with pytest.raises(TypeError, match=r"key must be a JAX random key \(jax.random.key\(seed\)\)"):
            V.check_key(bad)
    V.check_nonempty(np.zeros((2, 3)), "x", axes=(0, 1))
    with pytest.raises(ValueError, match=r"x must not be empty along axis 1, got shape \(2, 0\)"):
        V.check_nonempty(np.zeros((2, 0)), "x", axes=(0, 1))
    assert V.check_cache({"a": 1, "b": 2}, "cache", "f_forward", ("a", "b")) == {"a": 1, "b": 2}
    for bad in ((1, 2), {"a": 1}):
        with pytest.raises(TypeError, match=r"cache must be the cache returned by f_forward \(a dict with a, b\)"):
            V.check_cache(bad, "cache", "f_forward", ("a", "b"))


def test_check_bool():
    assert V.check_bool(True, "flag") is True and V.check_bool(np.bool_(False), "flag") is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="flag must be True or False"):
            V.check_bool(bad, "flag")


def test_check_int_sequence():
    assert V.check_int_sequence([0, np.int64(3)], "seeds") == [0, 3]
    assert V.check_int_sequence(np.arange(3), "seeds") == [0, 1, 2]
    assert all(type(v) is int for v in V.check_int_sequence(np.arange(3), "seeds"))
    for bad in (3, "012", None, {"a": 1}, np.array(2)):
        with pytest.raises(TypeError, match="^seeds must be a sequence of ints, got "):
            V.check_int_sequence(bad, "seeds")
    with pytest.raises(TypeError, match=r"^seeds\[1\] must be an int, got float 1.5$"):
        V.check_int_sequence([0, 1.5], "seeds")
    with pytest.raises(TypeError, match=r"^seeds\[0\] must be an int, got bool True$"):
        V.check_int_sequence([True], "seeds")
    with pytest.raises(ValueError, match=r"^seeds must be a non-empty sequence of ints, got \[\]$"):
        V.check_int_sequence([], "seeds")
    with pytest.raises(ValueError, match=r"^sizes\[1\] must be an int >= 1, got 0$"):
        V.check_int_sequence((3, 0), "sizes", minimum=1)


def test_checked_validates_then_runs_the_body_compiled():
    calls = []

    def check(x, scale=2.0, *, offset=0.0):
        calls.append(V.is_concrete(x))
        return V.check_finite(V.as_float_array(x, "x"), "x"), float(scale), offset

    @V.checked(check, static_argnames="scale")
    def double(x, scale=2.0, *, offset=0.0):
        """The body: plain math."""
        return scale * x + offset

    np.testing.assert_array_equal(double(np.array([1.0, 2.0])), [2.0, 4.0])
    np.testing.assert_array_equal(double(np.array([1.0]), scale=3.0, offset=1.0), [4.0])  # keyword-only too
    with pytest.raises(ValueError, match="x must be finite"):             # concrete: value checks
        double(np.array([np.nan]))
    np.testing.assert_array_equal(jax.jit(double)(np.array([1.0])), [2.0])  # traced: no value check
    assert calls == [True, True, True, False]
    assert inspect.unwrap(double).__doc__ == "The body: plain math."
    assert "return scale * x + offset" in inspect.getsource(inspect.unwrap(double))


def test_check_axis():
    x = np.ones((2, 3))
    assert V.check_axis(-1, x) == 1 and V.check_axis(np.int64(0), x) == 0
    with pytest.raises(ValueError, match=r"^axis must be in \[-2, 1\] for x of shape \(2, 3\), got 2$"):
        V.check_axis(2, x)
    with pytest.raises(TypeError, match="axis must be an int"):
        V.check_axis(1.0, x)
    with pytest.raises(ValueError, match="p must have at least 1 dimension"):
        V.check_axis(0, np.float64(1.0), "p")


def test_check_labels_and_targets():
    assert V.check_labels(np.array([0, 2, 1]), "y", n_classes=3, n=3).shape == (3,)
    with pytest.raises(ValueError, match=r"^y must be class indices in \[0, 2\], got values from -1 to 2$"):
        V.check_labels(np.array([0, -1, 2]), "y", n_classes=3)            # would wrap to the last class
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 2\], got values from 0 to 3"):
        V.check_labels(np.array([0, 3]), "y", n_classes=3)                # past the last class
    with pytest.raises(ValueError, match=r"^y must be class indices >= 0, got values from -2 to 1$"):
        V.check_labels(np.array([-2, 1]), "y")
    with pytest.raises(ValueError, match=r"y must have shape \(4,\) \(one class index per row\), got \(3,\)"):
        V.check_labels(np.array([0, 1, 2]), "y", n=4)
    with pytest.raises(TypeError, match="y must be an integer array"):
        V.check_labels(np.array([0.0, 1.0]), "y")
    assert V.check_targets(np.array([[0.3, 0.7]]), "t", 1, 2).dtype.kind == "f"
    assert V.check_targets([1], "t", 1, 2).dtype.kind == "i"
    with pytest.raises(ValueError, match="t must be probability distributions summing to 1"):
        V.check_targets(np.array([[0.3, 0.3]]), "t", 1, 2)
    with pytest.raises(ValueError, match=r"t of class probabilities must have the shape of the logits \(1, 2\)"):
        V.check_targets(np.array([0.3, 0.7]), "t", 1, 2)
    with pytest.raises(TypeError, match="t must be an integer array .* or a float array"):
        V.check_targets("01", "t", 2, 2)
    seen = []                                        # under jit only the shape is checked
    jax.jit(lambda y: seen.append(V.check_labels(y, "y", n_classes=2).shape) or y)(jnp.array([5, -1]))
    assert seen == [(2,)]


def test_check_distribution():
    assert V.check_distribution(np.array([[0.2, 0.8], [1.0, 0.0]]), "p") is not None
    with pytest.raises(ValueError, match="p must be probability distributions summing to 1 along axis 0"):
        V.check_distribution(np.array([[0.2, 0.8], [1.0, 0.0]]), "p", axis=0)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        V.check_distribution(np.array([1.5, -0.5]), "p")


def test_check_callable_and_tree():
    assert V.check_callable(len, "f") is len
    with pytest.raises(TypeError, match="^f must be callable, got int$"):
        V.check_callable(3, "f")
    params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    assert len(V.check_tree(params, "params")) == 2
    with pytest.raises(ValueError, match="grads must be a non-empty pytree"):
        V.check_tree({}, "grads")
    with pytest.raises(TypeError, match=r"grads\['b'\] must be a floating-point array, got dtype int"):
        V.check_tree({"W": np.ones(2), "b": np.zeros(2, int)}, "grads")
    with pytest.raises(ValueError, match=r"grads\['W'\] must have shape \(2, 3\) like params, got \(3, 2\)"):
        V.check_tree({"W": np.ones((3, 2)), "b": np.zeros(3)}, "grads", like=params)
    with pytest.raises(ValueError, match="grads must have the same pytree structure as params"):
        V.check_tree([np.ones((2, 3)), np.zeros(3)], "grads", like=params)


def test_check_cache_tuples():
    assert V.check_cache((1, 2), "cache", "dense_forward", 2) == (1, 2)
    with pytest.raises(TypeError, match=r"cache must be the cache returned by dense_forward \(a tuple of 2\), got list"):
        V.check_cache([1, 2], "cache", "dense_forward", 2)


def test_every_lazily_imported_submodule_exists():
    """course_lib.<name> resolves lazily for the names in _SUBMODULES: each one is a real module."""
    import importlib.util

    import course_lib
    missing = [n for n in sorted(course_lib._SUBMODULES) if importlib.util.find_spec(f"course_lib.{n}") is None]
    assert not missing, missing
