"""Reverse-mode automatic differentiation from scratch: arrays that remember how they were made.

A ``Tensor`` holds a float64 NumPy array ``data``, the Tensors it was computed from (``parents``)
and a ``backward_rule`` that knows the *local* derivative of the operation that made it. Calling
``J.backward()`` on a scalar ``J`` visits the graph in reverse topological order (every node after
all the nodes that use it) and applies the chain rule once per node::

    J.grad = 1,      parent.grad += (local derivative of node w.r.t. parent)^T  node.grad

so ``x.grad`` ends up holding dJ/dx for every node x (the "adjoint" of x). A node used twice gets
the *sum* of the two contributions. ``jax.grad`` returns the same numbers by another route: it traces
the function into its own graph (a jaxpr), linearizes it and transposes the linear map.

Taught in: notebooks/16_automatic_differentiation.ipynb
"""
from __future__ import annotations

import numpy as np

from . import _validation as V

__all__ = ["Tensor", "unbroadcast", "topological_order", "softmax_cross_entropy"]


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added (in front) or stretched (size 1), back to
    ``shape``: an operand used at every position of a broadcast receives the sum of their gradients."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """A float64 array in a computation graph: ``data``, ``grad`` (dJ/d data after ``J.backward()``),
    ``parents`` and ``op`` (the operation that made it; "" for an input), ``name`` (for drawings),
    and ``backward_rule``: for the result of an operation, a function that receives this node's
    gradient g and adds its contributions to the parents' ``.grad`` (None for an input).
    Operations: ``+ - *`` (NumPy broadcasting; ``-x`` is ``x * -1``), ``@`` (2-D), ``sum``, ``tanh``,
    ``exp``, ``log``, ``relu``, and :func:`softmax_cross_entropy`. Numbers and arrays mix in as constants.
    """

    def __init__(self, data, name: str = "", *, parents=(), op="", backward_rule=None):
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        if not parents:                        # an input: TypeError for text or complex numbers
            V.as_float_array(data, "data", allow_int=True)
        self.data = np.asarray(data, dtype=np.float64)         # float64 whatever JAX's mode
        if not parents:                        # ... and ValueError for NaN or infinity
            V.check_finite(self.data, "data")
        self.grad = np.zeros_like(self.data)
        self.parents, self.op, self.name = tuple(parents), op, name
        self.backward_rule = backward_rule

    shape = property(lambda self: self.data.shape)
    __array_ufunc__ = None                     # array * Tensor: NumPy defers to Tensor.__rmul__

    def __repr__(self):
        return f"Tensor({self.name + ': ' if self.name else ''}shape {self.shape}, op {self.op or 'input'!r})"

    # ------------------------------------------------------------------ operations, each with its rule
    def __add__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a + b)/da = 1
            self.grad += unbroadcast(g, self.shape)
            other.grad += unbroadcast(g, other.shape)
        return Tensor(self.data + other.data, parents=(self, other), op="+", backward_rule=backward)

    def __sub__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a - b)/db = -1
            self.grad += unbroadcast(g, self.shape)
            other.grad -= unbroadcast(g, other.shape)
        return Tensor(self.data - other.data, parents=(self, other), op="-", backward_rule=backward)

    def __mul__(self, other):
        other = _lift(other)

        def backward(g):                           # d(a b)/da = b
            self.grad += unbroadcast(g * other.data, self.shape)
            other.grad += unbroadcast(g * self.data, other.shape)
        return Tensor(self.data * other.data, parents=(self, other), op="*", backward_rule=backward)

    def __matmul__(self, other):
        other = _lift(other)
        if self.data.ndim != 2 or other.data.ndim != 2 or self.shape[1] != other.shape[0]:
            raise ValueError(f"@ needs 2-D operands with matching inner sizes, got shapes "
                             f"{self.shape} and {other.shape}")

        def backward(g):                           # Z = A B: dA = G B^T, dB = A^T G
            self.grad += g @ other.data.T
            other.grad += self.data.T @ g
        return Tensor(self.data @ other.data, parents=(self, other), op="@", backward_rule=backward)

    def sum(self, axis=None):
        if axis is not None:
            axis = V.check_axis(axis, self.data, "the tensor")

        def backward(g):                           # every summand receives the sum's gradient
            g = g if axis is None else np.expand_dims(g, axis)
            self.grad += np.broadcast_to(g, self.shape)
        return Tensor(self.data.sum(axis=axis), parents=(self,), op="sum", backward_rule=backward)

    def tanh(self):
        t = np.tanh(self.data)

        def backward(g):                           # d tanh(a)/da = 1 - tanh(a)^2
            self.grad += g * (1.0 - t ** 2)
        return Tensor(t, parents=(self,), op="tanh", backward_rule=backward)

    def exp(self):
        e = np.exp(self.data)

        def backward(g):                           # d e^a/da = e^a
            self.grad += g * e
        return Tensor(e, parents=(self,), op="exp", backward_rule=backward)

    def log(self):
        if not (self.data > 0).all():
            raise ValueError(f"log needs positive entries, got a minimum of {self.data.min():.4g}")

        def backward(g):                           # d log(a)/da = 1/a
            self.grad += g / self.data
        return Tensor(np.log(self.data), parents=(self,), op="log", backward_rule=backward)

    def relu(self):
        on = self.data > 0                         # the derivative at 0 is taken as 0, like jax.nn.relu

        def backward(g):
            self.grad += g * on
        return Tensor(self.data * on, parents=(self,), op="relu", backward_rule=backward)

    __radd__, __rmul__ = __add__, __mul__                # number + x, number * x
    __neg__ = lambda self: self * -1.0                                        # noqa: E731
    __rsub__ = lambda self, other: _lift(other) - self                        # noqa: E731
    __rmatmul__ = lambda self, other: _lift(other) @ self                     # noqa: E731

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
            if node.backward_rule is not None:
                node.backward_rule(node.grad)


def _lift(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def topological_order(root):
    """Every node of ``root``'s graph, each after all of its parents: a depth-first search with a
    stack of its own (a recursive one stops at Python's limit of 1,000 nested calls)."""
    if not isinstance(root, Tensor):
        raise TypeError(f"root must be a Tensor, got {type(root).__name__}")
    order, seen = [], {id(root)}
    stack = [(root, iter(root.parents))]           # each node with the parents it has still to visit
    while stack:
        node, parents = stack[-1]
        parent = next((p for p in parents if id(p) not in seen), None)
        if parent is None:                         # all of its parents are in the order: append it
            order.append(stack.pop()[0])
        else:                                      # visit that parent first
            seen.add(id(parent))
            stack.append((parent, iter(parent.parents)))
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
    y = np.asarray(V.as_int_array(labels, "labels"))
    n, c = logits.shape
    if y.shape != (n,) or (y.size and (y.min() < 0 or y.max() >= c)):
        raise ValueError(f"labels must be {n} class indices in [0, {c}), got shape {y.shape}")
    z = logits.data - logits.data.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    onehot = np.eye(c)[y]

    def backward(g):
        logits.grad += g * (np.exp(logp) - onehot) / n
    return Tensor(-logp[np.arange(n), y].mean(), parents=(logits,), op="softmax-CE", backward_rule=backward)
