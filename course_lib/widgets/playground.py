"""Decision-boundary playground, in the spirit of TensorFlow Playground.

Question it answers: *what can a network of a given width, depth and activation learn, and how does
its decision boundary grow during training?* Choose a data set (XOR, circles, moons, spirals), its
noise, the number of hidden layers and units, the activation and the learning rate, press **Train**:
a full-batch Adam run (``STEPS`` steps) is computed, then the ``epoch`` slider scrubs through
snapshots of the decision surface and the loss curve.

Speed: every architecture is the *same* compiled program. The network always has ``MAX_DEPTH``
hidden layers of ``MAX_WIDTH`` units; a width mask switches unused units off (their outputs are
multiplied by 0, so they neither compute nor learn) and layers beyond ``depth`` are skipped
(``h = where(k < depth, layer(h), h)``), and the activation is chosen with ``lax.switch``. So the
training function is compiled once, when the playground is built; pressing Train costs only the
run itself (well under a second), and moving the epoch slider only indexes stored snapshots.

Widget protocol: see ``course_lib/widgets/activations.py``.

Taught in: notebooks/05_feedforward_networks.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "DATASETS", "ACTIVATIONS", "LEARNING_RATES", "MAX_WIDTH", "MAX_DEPTH", "STEPS", "SNAPSHOTS",
           "playground_data", "init_playground_params", "train_playground", "unpad_params", "surface_grid", "build_playground",
           "Playground"]

WIDGETS = ("build_playground",)
DATASETS = ("xor", "circles", "moons", "spirals")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu", "identity")
MAX_WIDTH = 16
MAX_DEPTH = 4
STEPS = 600          # full-batch Adam steps per training run
SNAPSHOTS = 30       # decision surfaces stored per run (every STEPS // SNAPSHOTS steps)
N_POINTS = 200
GRID = 60            # decision surface resolution (GRID x GRID)
LIM = 1.25


def playground_data(dataset: str, noise: float, n: int = N_POINTS, seed: int = 0):
    """Two-class 2-D data set scaled into [-1, 1]^2: ``(X float32 (n, 2), y int32 (n,))``.

    ``noise`` in [0, 0.5] is a fraction of the data's size: Gaussian noise of that std after scaling
    (a swapped label for XOR would be another way; here points just wander across the boundary).
    """
    from course_lib import data

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}; got {dataset!r}")
    V.check_number(noise, "noise", low=0, high=0.5)
    rng = np.random.default_rng(seed)
    if dataset == "xor":
        X = rng.uniform(-1, 1, size=(n, 2))
        X += np.sign(X) * 0.05  # a small gap around the axes
        y = (X[:, 0] * X[:, 1] < 0).astype(np.int32)
    elif dataset == "circles":
        X, y = data.make_circles(n, noise=0.0, seed=seed, factor=0.5)
    elif dataset == "moons":
        X, y = data.make_moons(n, noise=0.0, seed=seed)
    else:
        X, y = data.make_spirals(n, n_classes=2, noise=0.0, seed=seed)
    X = np.asarray(X, np.float64)
    X = (X - (X.max(0) + X.min(0)) / 2) / (np.abs(X - (X.max(0) + X.min(0)) / 2).max())
    X = X + noise * rng.standard_normal(X.shape)
    return X.astype(np.float32), np.asarray(y, np.int32)


def init_playground_params(width: int, activation: str, seed: int = 0):
    """Padded parameters (numpy float32): Xavier (tanh/sigmoid/identity) or He (ReLUs) for the real
    fan-in ``width``; the padding units beyond ``width`` are masked off during training."""
    rng = np.random.default_rng(seed)
    gain = np.sqrt(2.0) if activation in ("relu", "leaky_relu") else 1.0

    def w(shape, fan_in, fan_out):
        std = gain * np.sqrt(2.0 / (fan_in + fan_out)) if gain == 1.0 else gain / np.sqrt(fan_in)
        return (rng.standard_normal(shape) * std).astype(np.float32)

    return {"W_in": w((2, MAX_WIDTH), 2, width), "b_in": np.zeros(MAX_WIDTH, np.float32),
            "W_h": w((MAX_DEPTH - 1, MAX_WIDTH, MAX_WIDTH), width, width),
            "b_h": np.zeros((MAX_DEPTH - 1, MAX_WIDTH), np.float32),
            "W_out": w((MAX_WIDTH, 2), width, 2), "b_out": np.zeros(2, np.float32)}


_TRAIN = None


def _train_fn():
    """The one compiled training program (built on first use)."""
    global _TRAIN
    if _TRAIN is not None:
        return _TRAIN
    import jax
    import jax.numpy as jnp
    from course_lib.losses import cross_entropy

    from course_lib import activations, optim

    acts = [activations.get(name)[0] for name in ACTIVATIONS]
    adam = optim.adam(1.0)  # Adam's step is proportional to lr, so lr is applied below as a factor

    def forward(p, X, mask, depth, act):
        # all activations, weighted by a one-hot vector: cheaper to compile than lax.switch
        pick = jax.nn.one_hot(act, len(acts), dtype=X.dtype)
        f = lambda z: sum(pick[i] * a(z) for i, a in enumerate(acts))
        h = f(X @ p["W_in"] + p["b_in"]) * mask

        def layer(h, k):
            h_new = f(h @ p["W_h"][k] + p["b_h"][k]) * mask
            return jnp.where(k + 1 < depth, h_new, h), None

        h, _ = jax.lax.scan(layer, h, jnp.arange(MAX_DEPTH - 1))
        return h @ p["W_out"] + p["b_out"]

    def loss_fn(p, X, y, mask, depth, act):
        return cross_entropy(forward(p, X, mask, depth, act), y)

    @jax.jit
    def train(p, X, y, grid, width, depth, act, lr):
        mask = (jnp.arange(MAX_WIDTH) < width).astype(X.dtype)
        state = adam.init(p)

        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss_fn)(p, X, y, mask, depth, act)
            u, s = adam.update(g, s, p)
            p = jax.tree_util.tree_map(lambda a, b: a + lr * b, p, u)
            return (p, s), value

        def chunk(carry, _):
            carry, losses = jax.lax.scan(step, carry, None, length=STEPS // SNAPSHOTS)
            logits = forward(carry[0], grid, mask, depth, act)
            prob = jax.nn.softmax(logits)[:, 1]
            acc = jnp.mean(jnp.argmax(forward(carry[0], X, mask, depth, act), 1) == y)
            return carry, (losses, prob, acc)

        logits0 = forward(p, grid, mask, depth, act)
        (p_end, _), (losses, probs, accs) = jax.lax.scan(chunk, (p, state), None, length=SNAPSHOTS)
        return losses.reshape(-1), jnp.concatenate([jax.nn.softmax(logits0)[None, :, 1], probs]), accs, p_end

    _TRAIN = (train, jax.jit(forward))
    return _TRAIN


def surface_grid():
    """The GRID x GRID points (float32, (GRID**2, 2)) where the decision surface is evaluated."""
    g = np.linspace(-LIM, LIM, GRID, dtype=np.float32)
    gx, gy = np.meshgrid(g, g)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def train_playground(X, y, width: int = 8, depth: int = 2, activation: str = "tanh", lr: float = 0.03,
                     seed: int = 0):
    """Train the playground network full-batch with Adam for :data:`STEPS` steps.

    Returns a dict: ``loss`` (STEPS,) per step; ``surface`` (SNAPSHOTS + 1, GRID, GRID) = P(class 1)
    on :func:`surface_grid` before training and after every ``STEPS // SNAPSHOTS`` steps; ``acc``
    (SNAPSHOTS,) training accuracy at each snapshot.
    """
    import jax.numpy as jnp

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {activation!r}")
    V.check_int(width, "width", minimum=1, maximum=MAX_WIDTH)
    V.check_int(depth, "depth", minimum=1, maximum=MAX_DEPTH)
    V.check_number(lr, "lr", low=0, low_open=True, high=1)
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.int32)
    if X.ndim != 2 or X.shape[1] != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must have shape (n, 2) and y shape (n,), got {X.shape} and {y.shape}")
    p = init_playground_params(int(width), activation, seed)
    losses, probs, accs, p_end = _train_fn()[0](p, X, y, surface_grid(), jnp.int32(width), jnp.int32(depth),
                                                jnp.int32(ACTIVATIONS.index(activation)), jnp.float32(lr))
    return {"loss": np.asarray(losses), "surface": np.asarray(probs).reshape(SNAPSHOTS + 1, GRID, GRID),
            "acc": np.asarray(accs), "params": {k: np.asarray(v) for k, v in p_end.items()},
            "init_params": p}


def unpad_params(padded, width: int, depth: int):
    """The padded playground parameters as a plain ``course_lib.layers`` MLP of the real size:
    ``[{"W": (2, width)}, ... depth - 1 hidden ..., {"W": (width, 2)}]`` (what the masks compute)."""
    w = int(width)
    out = [{"W": padded["W_in"][:, :w], "b": padded["b_in"][:w]}]
    for k in range(int(depth) - 1):
        out.append({"W": padded["W_h"][k][:w, :w], "b": padded["b_h"][k][:w]})
    out.append({"W": padded["W_out"][:w], "b": padded["b_out"]})
    return out


#: Learning rates offered by the playground's slider (a rate given to the builder is added).
LEARNING_RATES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


class Playground(Explorer):
    """Controls, the current data set, the last training run and the live figure."""

    _DATA_CONTROLS = ("dataset", "noise")
    _MODEL_CONTROLS = ("depth", "width", "activation", "lr")

    def __init__(self, dataset: str = "circles", noise: float = 0.05, width: int = 8, depth: int = 2,
                 activation: str = "tanh", lr: float = 0.03, train: bool = True):
        import ipywidgets as widgets

        self.controls = {
            "dataset": widgets.Dropdown(options=list(DATASETS), value=dataset, description="data"),
            "noise": widgets.FloatSlider(value=noise, min=0.0, max=0.5, step=0.05, description="noise",
                                         readout_format=".2f"),
            "depth": widgets.IntSlider(value=depth, min=1, max=MAX_DEPTH, description="hidden layers"),
            "width": widgets.IntSlider(value=width, min=1, max=MAX_WIDTH, description="units/layer"),
            "activation": widgets.Dropdown(options=list(ACTIVATIONS), value=activation,
                                           description="activation"),
            # a fixed list of rates: a FloatLogSlider snaps a value that is off its grid (0.03 with
            # steps of 10^0.25) to the nearest grid point when the browser draws it, which sent a new
            # value back and discarded the run trained at build time ("press Train" on first view)
            "lr": widgets.SelectionSlider(options=sorted(set(LEARNING_RATES) | {float(lr)}), value=float(lr),
                                          description="learning rate"),
            "epoch": widgets.IntSlider(value=SNAPSHOTS, min=0, max=SNAPSHOTS, description="snapshot"),
        }
        self.main_controls = ("epoch", "dataset", "noise")
        self.button = widgets.Button(description="Train", button_style="primary")
        self.button.on_click(lambda _b: self.train())
        self.readout = widgets.HTML()
        self.run = None
        self.values: dict = {}
        self._shown: dict = {}
        self._build_figure()
        self.X, self.y = playground_data(dataset, noise)
        if train:
            self.train()
        self._shown = {name: control.value for name, control in self.controls.items()}
        self._connect(extra=[self.button])

    def _build_figure(self):
        fig, (ax, ax_l) = new_figure(1, 2, figsize=(8.4, 3.6))
        ax.set(title="decision surface P(class 1)", xlabel="x1", ylabel="x2", xlim=(-LIM, LIM),
               ylim=(-LIM, LIM), aspect="equal")
        ax_l.set(title="training loss", xlabel="Adam step (full batch)", ylabel="cross-entropy (nats)",
                 xlim=(0, STEPS), ylim=(1e-3, 3), yscale="log")
        ax_l.grid(alpha=0.3)
        self.image = ax.imshow(np.full((GRID, GRID), 0.5), extent=(-LIM, LIM, -LIM, LIM), origin="lower",
                               cmap="RdBu_r", vmin=0, vmax=1, alpha=0.6, interpolation="bilinear")
        self.points = ax.scatter(np.zeros(N_POINTS), np.zeros(N_POINTS), c=np.zeros(N_POINTS), cmap="RdBu_r",
                                 vmin=0, vmax=1, s=12, edgecolors="k", linewidths=0.4)
        (self.loss_line,) = ax_l.plot([], [], color="C0")
        (self.loss_marker,) = ax_l.plot([], [], "o", color="C3")
        self.label = ax.text(0.02, 0.98, "", transform=ax.transAxes, va="top", fontsize=9,
                             bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
        self.live = LiveFigure(fig, animated=[self.image, self.points, self.loss_line, self.loss_marker,
                                              self.label])

    def update(self, **values):
        """A control moved (one at a time): new data invalidates the run, and so does a new model;
        the snapshot slider only redraws from the stored run."""
        changed = {name for name, v in values.items() if self._shown.get(name) != v}
        self._shown = dict(values)
        if changed & set(self._DATA_CONTROLS):
            self.X, self.y = playground_data(values["dataset"], values["noise"])
            self.run = None  # the old network was trained on other data
        elif changed & set(self._MODEL_CONTROLS):
            self.run = None
        self.draw()

    def train(self):
        """Train on the current data with the current controls (the one slow action, < 1 s)."""
        c = {k: w.value for k, w in self.controls.items()}
        self.run = train_playground(self.X, self.y, c["width"], c["depth"], c["activation"], float(c["lr"]))
        self.run["config"] = {k: c[k] for k in ("dataset", "noise", "width", "depth", "activation", "lr")}
        self.controls["epoch"].value = SNAPSHOTS
        self.draw()

    def draw(self):
        """Redraw from stored arrays (no training): data points, surface and loss at the snapshot."""
        k = int(self.controls["epoch"].value)
        self.points.set_offsets(self.X)
        self.points.set_array(self.y.astype(float))
        self.controls["epoch"].disabled = self.run is None      # no run: no snapshot to show
        if self.run is None:
            c = self._shown if self._shown else {k: w.value for k, w in self.controls.items()}
            self.image.set_data(np.full((GRID, GRID), 0.5))
            self.loss_line.set_data([], [])
            self.loss_marker.set_data([], [])
            # the network the Train button will fit, so that every setting shows on the figure
            self.label.set_text(f"press Train: {c['depth']} x {c['width']} {c['activation']}, "
                                f"lr {float(c['lr']):.3g}")
            self.values = {"trained": False, "snapshot": k}
            self.readout.value = "<code>settings changed: press Train to fit this network</code>"
        else:
            step = k * (STEPS // SNAPSHOTS)
            loss = self.run["loss"]
            self.image.set_data(self.run["surface"][k])
            self.loss_line.set_data(np.arange(1, step + 1), loss[:step])
            loss_k = float(loss[step - 1]) if step > 0 else float("nan")
            acc_k = float(self.run["acc"][k - 1]) if k > 0 else float("nan")
            self.loss_marker.set_data([step], [loss_k] if step > 0 else [np.nan])
            self.label.set_text(f"step {step}: loss {loss_k:.3f}, train acc {acc_k:.2f}" if k else "step 0")
            self.values = {"trained": True, "snapshot": k, "step": step, "loss": loss_k, "acc": acc_k}
            self.readout.value = f"<code>after {step} steps: training loss {loss_k:.4f}, accuracy {acc_k:.3f}</code>"
        self.live.blit()


def build_playground(dataset: str = "circles", noise: float = 0.05, width: int = 8, depth: int = 2,
                     activation: str = "tanh", lr: float = 0.03, train: bool = True) -> Playground:
    """Build the chapter-05 playground (compiles its training program and trains once)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(map(repr, DATASETS))}; got {dataset!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {activation!r}")
    V.check_number(lr, "lr", low=0, low_open=True, high=1)
    return Playground(dataset, noise, width, depth, activation, lr, train)
