"""course_lib.checks: rel_error, numerical_gradient, check_close, show_source."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import activations, checks as C


def test_rel_error_matches_the_cs231n_formula():
    x = np.array([1.0, 2.0, -3.0, 0.0])
    y = np.array([1.0, 2.1, -3.0, 1e-12])
    expected = np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))
    assert C.rel_error(x, y) == pytest.approx(expected, rel=1e-15)
    assert C.rel_error(y, x) == C.rel_error(x, y)
    assert C.rel_error(x, x) == 0.0
    assert isinstance(C.rel_error(x, y), float)


def test_rel_error_is_float64_even_for_float32_inputs_without_x64():
    a = np.float32(1.0)
    b = np.float32(1.0) + np.finfo(np.float32).eps
    with jax.enable_x64(False):
        err = C.rel_error(jnp.asarray(a), jnp.asarray(b))
    assert err == pytest.approx(np.finfo(np.float32).eps / (2 + np.finfo(np.float32).eps), rel=1e-12)
    # float64 differences far below float32 resolution are still seen
    assert C.rel_error(np.array([1.0]), np.array([1.0 + 1e-12])) == pytest.approx(5e-13, rel=1e-3)


def test_rel_error_floor_avoids_division_by_zero():
    assert C.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert C.rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2)
    assert C.rel_error(np.array([np.inf]), np.array([np.inf])) == 0.0
    assert C.rel_error(np.array([np.inf]), np.array([1.0])) == np.inf


def test_rel_error_rejects_bad_input():
    with pytest.raises(ValueError, match=r"x and y must have the same shape, got \(3,\) and \(3, 1\)"):
        C.rel_error(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="y contains 1 NaN value"):
        C.rel_error(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="x must be a real array or number"):
        C.rel_error("abc", np.ones(3))
    with pytest.raises(TypeError, match="y must be a real array or number, got dtype complex"):
        C.rel_error(np.ones(2), np.ones(2) * 1j)


def test_numerical_gradient_matches_jax_grad():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    f = lambda v: jnp.sum(jnp.sin(v) * v ** 2) + jnp.sum(v) ** 2  # noqa: E731
    num = C.numerical_gradient(f, x)
    assert num.shape == x.shape and num.dtype == np.float64
    assert C.rel_error(num, jax.grad(f)(jnp.asarray(x))) <= 1e-7


def test_numerical_gradient_of_a_numpy_function():
    x = np.array([0.5, -1.5, 2.0])
    num = C.numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    assert C.rel_error(num, 3 * x ** 2) <= 1e-7


def test_numerical_gradient_computes_in_float64_even_when_jax_is_32_bit():
    x = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    with jax.enable_x64(False):
        num = C.numerical_gradient(lambda v: jnp.sum(activations.tanh(v) ** 2), x)
    x64 = x.astype(np.float64)
    expected = 2 * np.tanh(x64) * (1 - np.tanh(x64) ** 2)
    assert C.rel_error(num, expected) <= 1e-7


def test_numerical_gradient_does_not_modify_its_input():
    x = np.array([1.0, 2.0])
    C.numerical_gradient(lambda v: float(np.sum(v ** 2)), x)
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_numerical_gradient_straddles_a_kink():
    # at x = 0, the central difference of ReLU is (eps - 0) / (2 eps) = 0.5: neither slope
    num = C.numerical_gradient(lambda v: jnp.sum(activations.relu(v)), np.array([0.0]))
    assert num[0] == pytest.approx(0.5)


def test_numerical_gradient_rejects_bad_input():
    with pytest.raises(TypeError, match="f must be a callable"):
        C.numerical_gradient(3.0, np.ones(2))
    with pytest.raises(ValueError, match=r"f must return a scalar, got an output of shape \(2,\)"):
        C.numerical_gradient(lambda v: v * 2, np.ones(2))
    with pytest.raises(ValueError, match="f returned a non-finite value"), np.errstate(invalid="ignore"):
        C.numerical_gradient(lambda v: np.sum(np.log(v - 5.0)), np.ones(2))
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        C.numerical_gradient(lambda v: v.sum(), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        C.numerical_gradient(lambda v: v.sum(), np.ones(2), eps=0.0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        C.numerical_gradient(lambda v: v.sum(), np.ones(2), eps=-1e-6)
    with pytest.raises(TypeError, match="eps must be a number"):
        C.numerical_gradient(lambda v: v.sum(), np.ones(2), eps="small")
    with pytest.raises(TypeError, match="f must return a real scalar"):
        C.numerical_gradient(lambda v: "x", np.ones(2))


def test_check_close_prints_a_verdict_against_the_tolerance(capsys):
    a = np.array([1.0, 2.0, 3.0])
    assert C.check_close(a, a.copy(), name="same") is True
    assert C.check_close(a + 1e-9, a, name="close") is True
    assert C.check_close(a + np.array([0, 0.5, 0]), a, name="off") is False
    out = capsys.readouterr().out.splitlines()
    # success: the verdict and the tolerance only, so the line is the same whatever the last bits
    assert out[0] == "same             | close: True  | |got - expected| <= 1e-08 + 1e-06·|expected|"
    assert out[1] == "close            | close: True  | |got - expected| <= 1e-08 + 1e-06·|expected|"
    assert out[2].startswith("off              | close: False | |got - expected| <= 1e-08 + 1e-06·|expected|")
    assert "max diff 5.00e-01 at index (1,): got 2.5, expected 2" in out[2]


def test_check_close_success_line_does_not_depend_on_the_size_of_the_difference(capsys):
    a = np.array([1.0, 2.0, 3.0])
    for noise in (0.0, 1e-12, 3e-10, 9e-9):
        C.check_close(a + noise, a, name="x")
    lines = capsys.readouterr().out.splitlines()
    assert len(set(lines)) == 1


def test_check_close_agrees_with_numpy_allclose():
    rng = np.random.default_rng(1)
    for _ in range(20):
        e = rng.normal(size=5)
        g = e + rng.normal(scale=10.0 ** rng.integers(-10, -3), size=5)
        assert C.check_close(g, e, rtol=1e-6, atol=1e-8) == np.allclose(g, e, rtol=1e-6, atol=1e-8)


def test_check_close_without_name(capsys):
    C.check_close(1.0, 1.0)
    assert capsys.readouterr().out == "close: True  | |got - expected| <= 1e-08 + 1e-06·|expected|\n"


def test_check_close_rejects_bad_input():
    with pytest.raises(ValueError, match=r"got and expected must have the same shape, got \(3,\) and \(3, 1\)"):
        C.check_close(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="got contains 1 NaN"):
        C.check_close(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="expected contains 1 NaN"):
        C.check_close(np.array([1.0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
        C.check_close(1.0, 1.0, rtol=-1.0)
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        C.check_close(1.0, 1.0, atol=float("inf"))
    with pytest.raises(TypeError, match="name must be a string"):
        C.check_close(1.0, 1.0, name=3)


def test_show_source_prints_the_function_with_its_math(capsys):
    C.show_source(activations.relu)   # validated and compiled by a decorator: shown as written
    out = capsys.readouterr().out
    assert out.startswith("@checked(_check_x)\ndef relu(x):")
    assert "return jnp.where(x > 0, x, jnp.zeros_like(x))" in out
    C.show_source(jax.jit(C.rel_error))   # a jitted function: its Python source
    assert "def rel_error(x, y):" in capsys.readouterr().out
    C.show_source(C)                      # a public module
    assert "def show_source(obj):" in capsys.readouterr().out


def test_show_source_refuses_private_functions():
    """A chapter shows what it teaches: the public function, never an implementation detail."""
    import course_lib.losses as L
    with pytest.raises(TypeError, match="obj must be a public function, class or module; _reduce is "
                                        "private"):
        C.show_source(L._reduce)
    with pytest.raises(TypeError, match="_check_x is private"):
        C.show_source(jax.jit(activations._check_x))                      # wrapped: still private
    import course_lib._validation as V
    with pytest.raises(TypeError, match="_validation is private"):
        C.show_source(V)


def test_show_source_rejects_objects_without_source():
    with pytest.raises(TypeError, match="obj must be a Python function, class or module"):
        C.show_source(3)
    with pytest.raises(TypeError, match="obj must be a Python function, class or module"):
        C.show_source(len)


def test_low_precision_jax_floats_are_accepted(capsys):
    x = jnp.array([1.0, 2.0, 3.0], dtype=jnp.bfloat16)
    assert C.check_close(x, np.array([1.0, 2.0, 3.0]), name="bf16") is True
    assert C.rel_error(x, np.array([1.0, 2.0, 3.0])) == 0.0
    assert "close: True" in capsys.readouterr().out


def test_no_notebook_shows_a_private_function():
    """Chapters show what they teach: show_source is called on public names only (a private name
    would raise in the notebook; this finds it without executing anything)."""
    import json
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1]
    private = []
    for nb in sorted(root.glob("notebooks/*.ipynb")) + sorted(root.glob("solutions/*/*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                for arg in re.findall(r"show_source\(([^)]*)\)", "".join(cell["source"])):
                    last = arg.strip().rsplit(".", 1)[-1]
                    if last.startswith("_") and not (last.startswith("__") and last.endswith("__")):
                        private.append(f"{nb.name}: show_source({arg})")
    assert not private, private
