"""Reverse-mode automatic differentiation from scratch: arrays that remember how they were made.

A ``Tensor`` holds a float64 NumPy array ``data``, the Tensors it was computed from (``parents``)
and a small function that knows the *local* derivative of the operation that made it. Calling
``J.backward()`` on a scalar ``J`` visits the graph in reverse topological order (every node after
all the nodes that use it) and applies the chain rule once per node::

    J.grad = 1,      parent.grad += (local derivative of node w.r.t. parent)^T  node.grad

so ``x.grad`` ends up holding dJ/dx for every node x (the "adjoint" of x). A node used twice gets
the *sum* of the two contributions. That is all ``jax.grad`` does, over many more operations.

Taught in: notebooks/16_automatic_differentiation.ipynb
"""
from __future__ import annotations

import numpy as np

from . import _validation as V

__all__ = ["Tensor", "topological_order", "softmax_cross_entropy"]


def _as_data(x, name):
    V.as_float_array_host(x, name, allow_int=True)       # TypeError for text, objects, complex
    return V.check_finite_np(np.asarray(x, dtype=np.float64), name)   # float64 whatever JAX's mode


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """A float64 array in a computation graph: ``data``, ``grad`` (dJ/d data after ``J.backward()``),
    ``parents`` and ``op`` (the operation that made it; "" for an input), ``name`` (for drawings).

    Operations: ``+ - *`` (NumPy broadcasting; ``-x`` is ``x * -1``), ``@`` (2-D), ``sum``, ``tanh``, ``exp``, ``log``,
    ``relu``, and :func:`softmax_cross_entropy`. Numbers and arrays mix in as constants.
    """

    def __init__(self, data, name: str = "", *, _parents=(), _op=""):
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.data = _as_data(data, "data") if not _op else data
        self.grad = np.zeros_like(self.data)
        self.parents, self.op, self.name = tuple(_parents), _op, name
        self._backward = lambda: None          # adds this node's gradient into its parents' .grad

    shape = property(lambda self: self.data.shape)
    __array_ufunc__ = None                     # array * Tensor: NumPy defers to Tensor.__rmul__

    def __repr__(self):
        label = f"{self.name}: " if self.name else ""
        return f"Tensor({label}shape {self.shape}, op {self.op or 'input'!r})"

    def _new(self, data, parents, op, backward):
        out = Tensor(np.asarray(data, dtype=np.float64), _parents=parents, _op=op)
        out._backward = lambda: backward(out.grad)
        return out

    # ------------------------------------------------------------------ operations, each with its rule
    def __add__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a + b)/da = 1
            self.grad += _unbroadcast(g, self.shape)
            other.grad += _unbroadcast(g, other.shape)
        return self._new(self.data + other.data, (self, other), "+", backward)

    def __sub__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a - b)/db = -1
            self.grad += _unbroadcast(g, self.shape)
            other.grad -= _unbroadcast(g, other.shape)
        return self._new(self.data - other.data, (self, other), "-", backward)

    def __mul__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a b)/da = b
            self.grad += _unbroadcast(g * other.data, self.shape)
            other.grad += _unbroadcast(g * self.data, other.shape)
        return self._new(self.data * other.data, (self, other), "*", backward)

    def __matmul__(self, other):
        other = _lift(other)
        if self.data.ndim != 2 or other.data.ndim != 2 or self.shape[1] != other.shape[0]:
            raise ValueError(f"@ needs 2-D operands with matching inner sizes, got shapes "
                             f"{self.shape} and {other.shape}")

        def backward(g):                           # Z = A B: dA = G B^T, dB = A^T G
            self.grad += g @ other.data.T
            other.grad += self.data.T @ g
        return self._new(self.data @ other.data, (self, other), "@", backward)

    def sum(self, axis=None):
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))
                                 or not -self.data.ndim <= axis < self.data.ndim):
            raise ValueError(f"axis must be None or an axis of a {self.data.ndim}-D tensor, got {axis!r}")

        def backward(g):                           # every summand receives the sum's gradient
            g = g if axis is None else np.expand_dims(g, axis)
            self.grad += np.broadcast_to(g, self.shape)
        return self._new(self.data.sum(axis=axis), (self,), "sum", backward)

    def tanh(self):
        t = np.tanh(self.data)
        return self._new(t, (self,), "tanh", lambda g: _add_to(self, g * (1.0 - t ** 2)))

    def exp(self):
        e = np.exp(self.data)
        return self._new(e, (self,), "exp", lambda g: _add_to(self, g * e))

    def log(self):
        if not (self.data > 0).all():
            raise ValueError(f"log needs positive entries, got a minimum of {self.data.min():.4g}")
        return self._new(np.log(self.data), (self,), "log", lambda g: _add_to(self, g / self.data))

    def relu(self):
        on = self.data > 0                         # the derivative at 0 is taken as 0, like jax.nn.relu
        return self._new(self.data * on, (self,), "relu", lambda g: _add_to(self, g * on))

    def __neg__(self):
        return self * -1.0

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return _lift(other) - self

    def __rmatmul__(self, other):
        return _lift(other) @ self

    # ------------------------------------------------------------------------------ the backward pass
    def backward(self):
        """Fill ``.grad`` of every node of this scalar's graph with dJ/d(node) (J = this Tensor),
        replacing what was there: one sweep in reverse topological order."""
        if self.data.size != 1:
            raise ValueError(f"backward() starts from a scalar loss, got a tensor of shape {self.shape}")
        order = topological_order(self)
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):               # the loss first, the inputs last
            node._backward()


def _add_to(node, g):
    node.grad += g


def _lift(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def topological_order(root):
    """Every node of ``root``'s graph, each after all of its parents (depth-first, inputs first)."""
    if not isinstance(root, Tensor):
        raise TypeError(f"root must be a Tensor, got {type(root).__name__}")
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)
    visit(root)
    return order


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) over N rows: ``J = -(1/N) sum_n log softmax(z_n)[y_n]``.

    ``logits``: Tensor (N, C); ``labels``: int array (N,) in [0, C). One node whose local derivative
    is chapter 06's ``dJ/dz = (softmax(z) - onehot(y)) / N`` (stable: computed with log-softmax).
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a Tensor, got {type(logits).__name__}")
    if logits.data.ndim != 2:
        raise ValueError(f"logits must be a 2-D Tensor (N, C), got shape {logits.shape}")
    y = np.asarray(V.as_int_array_host(labels, "labels"))
    n, c = logits.shape
    if y.shape != (n,) or (y.size and (y.min() < 0 or y.max() >= c)):
        raise ValueError(f"labels must be {n} class indices in [0, {c}), got shape {y.shape}")
    z = logits.data - logits.data.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    onehot = np.eye(c)[y]

    def backward(g):
        logits.grad += g * (np.exp(logp) - onehot) / n
    return logits._new(-logp[np.arange(n), y].mean(), (logits,), "softmax-CE", backward)
