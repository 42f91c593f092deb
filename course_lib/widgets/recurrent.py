"""Widgets of chapter 11: gradient through time, and the gates of a trained LSTM.

Both follow the course's widget rule: everything is computed once when the widget is built (one
compiled, vectorised call), and a control change only indexes the precomputed arrays and blits.

Taught in: notebooks/11_recurrent_networks.ipynb
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from course_lib import recurrent as R
from course_lib.widgets.base import Explorer, LiveFigure, nearest_imshow, new_figure

__all__ = ["WIDGETS", "gradient_through_time_data", "gradient_through_time_widget", "lstm_gates_widget",
           "build_gradient_through_time", "build_lstm_gates", "GradientThroughTime", "LSTMGates",
           "RNN_ACTIVATIONS"]

# builders callable without arguments (widget protocol of benchmarks/README.md)
WIDGETS = ("build_gradient_through_time", "build_lstm_gates")

RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid")
_FLOOR = 1e-30          # log axis: a gradient that underflowed to 0 is drawn at the floor
_COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}


def _scaled(kind, params, scale, bias):
    """Recurrent weights times ``scale``; forget (LSTM) / update (GRU) gate bias set to ``bias``."""
    p = dict(params)
    if kind == "rnn":
        p["W_hh"] = params["W_hh"] * scale
        return p
    hidden = params["W_h"].shape[0]
    p["W_h"] = params["W_h"] * scale
    key = "b" if kind == "lstm" else "b_x"
    p[key] = params[key].at[hidden:2 * hidden].set(bias)
    return p


@jax.jit
def _table(base, xs, scales, biases, steps):
    """Every ||dL/dh_t|| curve: RNN per activation over (scale, step); LSTM/GRU over
    (scale, bias, step). One compiled call for the whole widget; all loss steps of one
    configuration share its forward pass."""
    out = {}
    for act in RNN_ACTIVATIONS:
        def one_rnn(scale, act=act):
            return R._gradient_norms_core("rnn", _scaled("rnn", base["rnn"], scale, 0.0), xs, steps, act)
        out[act] = jax.vmap(one_rnn)(scales)
    for kind in ("lstm", "gru"):
        def one(scale, bias, kind=kind):
            return R._gradient_norms_core(kind, _scaled(kind, base[kind], scale, bias), xs, steps, "tanh")
        out[kind] = jax.vmap(jax.vmap(one, (None, 0)), (0, None))(scales, biases)
    return out


def gradient_through_time_data(*, max_len=60, hidden_size=32, input_size=4, batch_size=8,
                               scales=(0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0),
                               gate_biases=(0.0, 1.0, 2.0, 3.0, 5.0),
                               lengths=(5, 10, 15, 20, 30, 40, 50, 60), seed=0):
    """Precompute ``||dL/dh_t||`` for t = 1..T with the loss ``L = sum_b u . h_T`` at step T.

    Recurrent weights are ``scale`` times random orthogonal matrices (every singular value equals
    ``scale``), inputs are Gaussian; for the LSTM/GRU the forget/update-gate bias is one of
    ``gate_biases``. Returns a dict of NumPy arrays: ``"rnn"`` maps an activation to
    ``(n_scales, n_lengths, max_len)``; ``"lstm"``/``"gru"`` are ``(n_scales, n_biases, n_lengths,
    max_len)``; plus the grids themselves.
    """
    lengths = tuple(int(n) for n in lengths)
    if not lengths or min(lengths) < 1 or max(lengths) > max_len:
        raise ValueError(f"lengths must be sequence lengths in [1, max_len={max_len}], got {lengths}")
    base = {kind: R.init(kind, input_size, hidden_size, seed=seed, recurrent_scale=1.0)
            for kind in R.KINDS}
    xs = np.random.default_rng(seed).standard_normal((batch_size, max_len, input_size)).astype(np.float32)
    table = _table(base, jnp.asarray(xs), jnp.asarray(scales, jnp.float32),
                   jnp.asarray(gate_biases, jnp.float32), jnp.asarray(lengths) - 1)
    data = {"rnn": {act: np.asarray(table[act]) for act in RNN_ACTIVATIONS},
            "lstm": np.asarray(table["lstm"]), "gru": np.asarray(table["gru"])}
    data.update(scales=tuple(float(s) for s in scales), gate_biases=tuple(float(b) for b in gate_biases),
                lengths=lengths, max_len=int(max_len), xs=xs, base=base)
    return data


class GradientThroughTime(Explorer):
    """||dL/dh_t|| against t for RNN, LSTM and GRU, on a log axis (see :func:`gradient_through_time_widget`)."""

    def __init__(self, data=None):
        import ipywidgets as widgets

        self.data = data = gradient_through_time_data() if data is None else data
        self.t = t = np.arange(1, data["max_len"] + 1)
        fig, ax = new_figure(figsize=(8.0, 3.6))
        ax.set_yscale("log")
        ax.set_ylim(1e-16, 1e12)
        ax.set_xlim(0.5, data["max_len"] + 0.5)
        ax.set_xlabel("time step t (the loss is computed at step T)")
        ax.set_ylabel("||dL/dh_t||")
        ax.set_title("Gradient through time: how much the loss at step T still feels h_t")
        ax.grid(True, which="major", alpha=0.3)
        self.lines = {kind: ax.plot(t, np.ones_like(t, dtype=float), color=_COLORS[kind], lw=2,
                                    label=kind.upper())[0] for kind in R.KINDS}
        ax.legend(loc="lower left")
        self.vline = ax.axvline(data["max_len"], color="gray", ls="--", lw=1)
        # the ratios go to the HTML readout, not into the figure (why: benchmarks/README.md)
        self.live = LiveFigure(fig, animated=[*self.lines.values(), self.vline])
        self.controls = {
            "length": widgets.SelectionSlider(options=list(data["lengths"]), value=data["lengths"][-1],
                                              description="sequence length T"),
            "scale": widgets.SelectionSlider(options=list(data["scales"]), value=1.0 if 1.0 in data["scales"]
                                             else data["scales"][0], description="recurrent weight scale"),
            "activation": widgets.Dropdown(options=list(RNN_ACTIVATIONS), value="tanh",
                                           description="RNN activation"),
            "gate_bias": widgets.SelectionSlider(options=list(data["gate_biases"]),
                                                 value=data["gate_biases"][min(1, len(data["gate_biases"]) - 1)],
                                                 description="forget (LSTM) / update (GRU) gate bias"),
        }
        self._connect()

    def update(self, length, scale, activation, gate_bias):
        data, t = self.data, self.t
        i_l, i_s = data["lengths"].index(length), data["scales"].index(scale)
        i_b = data["gate_biases"].index(gate_bias)
        curves = {"rnn": data["rnn"][activation][i_s, i_l], "lstm": data["lstm"][i_s, i_b, i_l],
                  "gru": data["gru"][i_s, i_b, i_l]}
        rows = []
        for kind, curve in curves.items():
            y = np.where(t <= length, np.maximum(curve, _FLOOR), np.nan)
            self.lines[kind].set_ydata(y)
            rows.append(f"{kind.upper():4s} |dL/dh_1| / |dL/dh_T| = {curve[0] / curve[length - 1]:.1e}")
        self.vline.set_xdata([length, length])
        self.live.blit()
        self.readout.value = "<pre style='margin:0'>" + "\n".join(rows) + "</pre>"


def gradient_through_time_widget(data=None):
    """||dL/dh_t|| against t for RNN, LSTM and GRU, on a log axis.

    Controls: sequence length T (the loss is at step T), recurrent weight scale, the vanilla RNN's
    activation, and the LSTM forget / GRU update gate bias. Returns ``(panel, live, controls)``
    of a :class:`GradientThroughTime`.
    """
    w = GradientThroughTime(data)
    return w.widget, w.live, w.controls


#: What the gate viewer can show: key -> (button label, colour-bar label, colour map, fixed range or
#: None for the cell state, whose range is that of the data).
_GATES = {
    "i": ("input gate i", "input gate i (0 = write nothing, 1 = write g)", "viridis", (0.0, 1.0)),
    "f": ("forget gate f", "forget gate f (0 = forget, 1 = keep c)", "viridis", (0.0, 1.0)),
    "g": ("candidate g", "candidate g (tanh, not a gate)", "coolwarm", (-1.0, 1.0)),
    "o": ("output gate o", "output gate o (0 = hide, 1 = show)", "viridis", (0.0, 1.0)),
    "c": ("cell state c", "cell state c", "coolwarm", None),
    "h": ("hidden state h", "hidden state h = o * tanh(c)", "coolwarm", (-1.0, 1.0)),
}
_GATE_NAME = {k: v[0] for k, v in _GATES.items()}


class LSTMGates(Explorer):
    """Heat maps of an LSTM's gates over one input sequence (see :func:`lstm_gates_widget`).

    The bottom panel shows one gate (or state) for every hidden unit and time step, with a colour
    bar named after it; its title names the gate. Each gate has its own static layout (title,
    colour map, colour bar), drawn once when the viewer is built, so switching gates is a blit.
    """

    def __init__(self, params, xs, *, mask=None, input_labels=None, max_units=32):
        import ipywidgets as widgets
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        self.gates = {k: np.asarray(v) for k, v in R.lstm_gate_activations(params, xs).items()}
        self.xs = xs = np.asarray(xs)
        n, steps, d = xs.shape
        if input_labels is not None and len(input_labels) != d:
            raise ValueError(f"input_labels must name the {d} input features, got {len(input_labels)}")
        self.mask = np.ones((n, steps)) if mask is None else np.asarray(mask)
        self.units = units = min(max_units, self.gates["h"].shape[2])
        self.c_max = float(np.max(np.abs(self.gates["c"][..., :units]))) or 1.0
        fig, (ax_in, ax_g) = new_figure(2, 1, figsize=(8.0, 5.6), sharex=True,
                                        gridspec_kw={"height_ratios": [max(d, 4), 16]})
        self.im_in = nearest_imshow(ax_in, np.zeros((d, steps)), aspect="auto", cmap="gray_r", vmin=-2, vmax=2)
        ax_in.set_ylabel("input")
        ax_in.set_title("input sequence (one row per input feature)", fontsize=10)
        labels = list(input_labels) if input_labels is not None else [f"x[{j}]" for j in range(d)]
        step = max(1, d // 12)                   # at most ~12 readable labels
        ax_in.set_yticks(range(0, d, step))
        ax_in.set_yticklabels(labels[::step], fontsize=9)
        fig.colorbar(self.im_in, ax=ax_in, label="input value", fraction=0.04, pad=0.01)
        self.im_g = nearest_imshow(ax_g, np.zeros((units, steps)), aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax_g.set_xlabel("time step t")
        ax_g.set_ylabel("hidden unit")
        self._mappable = ScalarMappable(Normalize(0.0, 1.0), "viridis")
        self._colorbar = fig.colorbar(self._mappable, ax=ax_g, fraction=0.04, pad=0.01)
        self.ax_g = ax_g
        self.live = LiveFigure(fig, animated=[self.im_in, self.im_g])
        self._backgrounds = {}
        for key in _GATES:                       # one static layout per gate, drawn once
            self._show_layout(key)
            self.live.redraw()
            self._backgrounds[key] = self.live.save_background()
        self._layout = None
        self.controls = {
            "example": widgets.IntSlider(min=0, max=n - 1, value=0, description="sequence"),
            "gate": widgets.ToggleButtons(options=[(v[0], k) for k, v in _GATES.items()], value="f",
                                          description="show", style={"button_width": "112px"}),
        }
        self._connect()

    def model_region(self):
        """Where the figure's pixels come from the trained model: the heat map, as ``(x0, y0, x1, y1)``
        fractions of the figure's width and height, measured from its top left corner. Everything
        else (input rows, titles, labels, colour bars) depends only on the shapes and the inputs."""
        x0, y0, x1, y1 = self.ax_g.get_position().extents
        return x0, 1.0 - y1, x1, 1.0 - y0

    def _range(self, gate):
        fixed = _GATES[gate][3]
        return fixed if fixed is not None else (-self.c_max, self.c_max)

    def _name_and_colours(self, gate):
        """What a switch to an already drawn layout changes: the heat map's colour map and range, and
        the texts that name the gate (cheap; their pixels come from the saved background)."""
        name, bar_label, cmap, _ = _GATES[gate]
        lo, hi = self._range(gate)
        self.im_g.set_cmap(cmap)
        self.im_g.set_clim(lo, hi)
        self._colorbar.set_label(bar_label)
        self.ax_g.set_title(f"{name} of each hidden unit over time", fontsize=10)

    def _show_layout(self, gate):
        """Everything static of ``gate``'s layout, for drawing its background at build time. The colour
        bar's colours are set only here: updating a colour bar rebuilds its artists, so a switch
        restores the background drawn here instead (``update``)."""
        _, _, cmap, _ = _GATES[gate]
        lo, hi = self._range(gate)
        self._name_and_colours(gate)
        self._mappable.set_cmap(cmap)
        self._mappable.set_clim(lo, hi)

    def update(self, example, gate):
        gates, units = self.gates, self.units
        valid = self.mask[example] > 0
        self.im_in.set_data(np.where(valid[None, :], self.xs[example].T, np.nan))
        if gate != self._layout:                 # that gate's title and colour bar, as drawn at build time
            self._layout = gate
            self._name_and_colours(gate)
            self.live.restore_background(self._backgrounds[gate])
        lo, hi = self._range(gate)
        self.im_g.set_data(np.where(valid[None, :], gates[gate][example, :, :units].T, np.nan))
        self.live.blit()
        self.readout.value = (f"sequence {example}: {_GATE_NAME[gate]}, colour range {lo:.2g} to {hi:.2g}; "
                              f"mean over the valid steps {gates[gate][example][valid, :units].mean():.3f}")


def lstm_gates_widget(params, xs, *, mask=None, input_labels=None, max_units=32):
    """Heat maps of an LSTM's gates (units x time) over one input sequence, picked by a slider.

    ``params`` an LSTM (``init_lstm`` layout), ``xs (N, T, D)`` the sequences to browse, ``mask``
    an optional (N, T) mask (padded steps are blanked). Every gate of every sequence is computed
    once, up front. Returns ``(panel, live, controls)`` of an :class:`LSTMGates`.
    """
    w = LSTMGates(params, xs, mask=mask, input_labels=input_labels, max_units=max_units)
    return w.widget, w.live, w.controls


def build_gradient_through_time(data=None) -> GradientThroughTime:
    """The gradient-through-time explorer as an object (``.widget``, ``.live``, ``.controls``)."""
    return GradientThroughTime(data)


def build_lstm_gates(params=None, xs=None, **kwargs) -> LSTMGates:
    """The LSTM gate viewer as an object. Without arguments it shows an UNTRAINED LSTM (hidden 16,
    seed 0) reading four generated sine waves of 40 steps: enough to see the controls work (the
    chapter passes its trained network and real sequences)."""
    if params is None:
        params = R.init_lstm(1, 16, seed=0)
    if xs is None:
        t = np.arange(40, dtype=np.float32)
        xs = np.stack([np.sin(t * f) for f in (0.1, 0.2, 0.4, 0.8)])[..., None].astype(np.float32)
    return LSTMGates(params, xs, **kwargs)
