"""Optimizer race: six optimizers of ``course_lib.optim`` side by side on a 2-D loss surface.

Question it answers: *why do momentum and adaptive step sizes help, and when do they hurt?* Pick a
surface (Rosenbrock's curved valley, a saddle point, an ill-conditioned bowl), a learning rate for
the plain methods (GD, Momentum, Nesterov), one for the adaptive ones (Adagrad, RMSProp, Adam), the
momentum ``beta`` (also Adam's ``b1``) and how many steps to show. The left panel draws each
trajectory on the loss landscape, the right one ``loss - min`` per step (log scale).

Every trajectory for every surface, learning rate and beta on the sliders' grids is computed when
the widget is built, by the real optimizers of :mod:`course_lib.optim` (vmapped over the grid of
hyper-parameters, ``lax.scan`` over steps, all in one ``jax.jit``). A control change only indexes
those arrays and blits; the landscape is an animated image, so changing the surface is a blit too.
All surfaces share one domain (x in [-2, 2], y in [-1, 3]) so the axes never change.

Widget protocol: see ``course_lib/widgets/activations.py`` (``WIDGETS``, ``controls``,
``main_controls``, ``live``, ``widget``).

Taught in: notebooks/07_optimizers.ipynb
"""
from __future__ import annotations

import functools

import numpy as np
from matplotlib.colors import to_hex

from course_lib import _validation as V
from .base import Explorer, LiveFigure, new_figure, panel

__all__ = ["WIDGETS", "SURFACES", "OPTIMIZERS", "surface_value", "race_trajectories",
           "OptimizerRace", "build_optimizer_race"]

WIDGETS = ("build_optimizer_race",)

#: surface name -> (label, start point, minimum point, minimum value)
SURFACES = {
    "rosenbrock": ("Rosenbrock valley", (-1.2, 1.0), (1.0, 1.0), 0.0),
    "saddle": ("saddle point at (0, 1)", (-1.8, 1.001), (0.0, 2.0), -0.5),
    "bowl": ("ill-conditioned bowl (κ = 25)", (-1.8, 2.2), (0.0, 1.0), 0.0),
}
#: optimizer name -> (label, uses beta, adaptive learning-rate group)
OPTIMIZERS = {
    "gd": ("GD", False, False),
    "momentum": ("Momentum", True, False),
    "nesterov": ("Nesterov", True, False),
    "adagrad": ("Adagrad", False, True),
    "rmsprop": ("RMSProp", False, True),
    "adam": ("Adam", True, True),
}
XLIM, YLIM = (-2.0, 2.0), (-1.0, 3.0)
LR_PLAIN = tuple(float(v) for v in np.round(10.0 ** np.arange(-4.0, -0.99, 0.25), 8))
LR_ADAPTIVE = tuple(float(v) for v in np.round(10.0 ** np.arange(-3.0, 0.01, 0.25), 8))
BETAS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
NUM_STEPS = 300


def surface_value(name: str, x, y, xp=np):
    """The loss of surface ``name`` at points ``(x, y)`` (NumPy or ``jax.numpy`` via ``xp``).

    rosenbrock: ``(1 - x)^2 + 100 (y - x^2)^2``, minimum 0 at (1, 1), a curved flat valley.
    saddle:     ``x^2 - (y - 1)^2 + (y - 1)^4 / 2``, a saddle at (0, 1), minima -0.5 at (0, 0), (0, 2).
    bowl:       ``(x^2 + 25 (y - 1)^2) / 2``, minimum 0 at (0, 1), curvatures 1 and 25.
    """
    if name == "rosenbrock":
        return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2
    if name == "saddle":
        return x ** 2 - (y - 1) ** 2 + 0.5 * (y - 1) ** 4
    if name == "bowl":
        return 0.5 * (x ** 2 + 25 * (y - 1) ** 2)
    raise ValueError(f"surface must be one of {', '.join(map(repr, SURFACES))}; got {name!r}")


def _make_optimizer(name, lr, beta):
    from course_lib import optim
    if name == "gd":
        return optim.gd(lr)
    if name == "momentum":
        return optim.momentum(lr, beta)
    if name == "nesterov":
        return optim.nesterov(lr, beta)
    if name == "adagrad":
        return optim.adagrad(lr)
    if name == "rmsprop":
        return optim.rmsprop(lr)
    return optim.adam(lr, b1=beta)


@functools.lru_cache(maxsize=4)
def _race_fn(num_steps: int):
    """One jitted function, one ``lax.scan``: all six optimizers step together, each on a batch of
    points of shape (surface, lr, beta, 2) with hyper-parameters broadcast to (surface, lr, beta, 1)
    (the optimizers are elementwise, so a batch of 2-D problems is one problem). No vmap: tracing a
    batched scan costs seconds, this costs a fraction of one."""
    import jax
    import jax.numpy as jnp

    from course_lib import optim

    surfaces = list(SURFACES)

    @jax.jit
    def all_races(lr_plain, lr_adaptive, betas):
        S, L, B = len(surfaces), lr_plain.shape[0], betas.shape[0]
        shape = (S, L, B, 1)
        lr_p = jnp.broadcast_to(lr_plain[None, :, None, None], shape)
        lr_a = jnp.broadcast_to(lr_adaptive[None, :, None, None], shape)
        beta = jnp.broadcast_to(betas[None, None, :, None], shape)
        which = jnp.eye(S, dtype=jnp.float32)[:, None, None, :]           # (S, 1, 1, S) one-hot

        def losses(P):  # (S, L, B, 2) -> (S, L, B): point [s, ...] is on surface s
            x, y = P[..., 0], P[..., 1]
            return sum(which[..., i] * surface_value(name, x, y, jnp) for i, name in enumerate(surfaces))

        grad = jax.grad(lambda P: jnp.sum(losses(P)))
        p0 = jnp.asarray([SURFACES[name][1] for name in surfaces], jnp.float32)
        P0 = jnp.broadcast_to(p0[:, None, None, :], (S, L, B, 2))
        opts = {name: _make_optimizer(name, lr_a if adaptive else lr_p, beta)
                for name, (_, _, adaptive) in OPTIMIZERS.items()}

        def step(carry, _):
            new = {}
            for name, (P, state) in carry.items():
                updates, state = opts[name].update(grad(P), state)
                new[name] = (optim.apply_updates(P, updates), state)
            return new, {name: P for name, (P, _) in new.items()}

        _, paths = jax.lax.scan(step, {name: (P0, opt.init(P0)) for name, opt in opts.items()},
                                None, length=num_steps)
        out = {}
        for name, path in paths.items():                                 # (T, S, L, B, 2)
            path = jnp.concatenate([P0[None], path])
            out[name] = (jnp.moveaxis(path, 0, 3), jnp.moveaxis(jax.vmap(losses)(path), 0, 3))
        return out

    return all_races


def race_trajectories(lr_plain=LR_PLAIN, lr_adaptive=LR_ADAPTIVE, betas=BETAS,
                      num_steps: int = NUM_STEPS) -> dict:
    """All trajectories of the race, computed by ``course_lib.optim`` in float32.

    Returns ``{(surface, optimizer): (path, loss)}`` with ``path`` of shape
    ``(n_lr, n_beta, num_steps + 1, 2)`` (row 0 is the start point) and ``loss`` of shape
    ``(n_lr, n_beta, num_steps + 1)``; row ``i`` uses ``lr_adaptive[i]`` for Adagrad, RMSProp and
    Adam and ``lr_plain[i]`` for the others (both grids have the same length). A diverged run holds NaN from the first step whose
    coordinates left [-1e6, 1e6] (or became non-finite).
    """
    arrays = {}
    for name, values, lo, hi in (("lr_plain", lr_plain, 0, None), ("lr_adaptive", lr_adaptive, 0, None),
                                 ("betas", betas, -1e-12, 1)):
        a = np.asarray(values, dtype=np.float32)
        if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= lo) or (
                hi is not None and np.any(a >= hi)):
            rng = f"[0, {hi})" if hi is not None else "(0, inf)"
            raise ValueError(f"{name} must be a non-empty 1-D list of numbers in {rng}, got {values!r}")
        arrays[name] = a
    V.check_int(num_steps, "num_steps", minimum=1)
    if arrays["lr_plain"].shape != arrays["lr_adaptive"].shape:
        raise ValueError(f"lr_plain and lr_adaptive must have the same length (one slider position "
                         f"each), got {len(lr_plain)} and {len(lr_adaptive)}")
    raw = _race_fn(int(num_steps))(arrays["lr_plain"], arrays["lr_adaptive"], arrays["betas"])
    out = {}
    for (si, surface), name in ((si_s, n) for si_s in enumerate(SURFACES) for n in OPTIMIZERS):
        path, loss = (np.array(a[si]) for a in raw[name])
        bad = ~np.all(np.isfinite(path) & (np.abs(path) < 1e6), axis=-1)
        bad = np.cumsum(bad, axis=-1) > 0           # once diverged, stay diverged
        path[bad] = np.nan
        loss[bad] = np.nan
        out[surface, name] = (path, loss)
    return out


def _nearest(grid, value) -> int:
    return int(np.argmin(np.abs(np.log(np.asarray(grid)) - np.log(value)))) if value > 0 else 0


class OptimizerRace(Explorer):
    """The race's state: precomputed trajectories, controls, live figure and readout.

    ``values`` holds what the readout shows: per optimizer the final ``(x, y)``, ``loss`` and
    whether it diverged, for the current controls.
    """

    def __init__(self, surface: str = "rosenbrock", lr_plain: float = 1e-3, lr_adaptive: float = 0.1,
                 beta: float = 0.9, steps: int = NUM_STEPS):
        import ipywidgets as widgets

        if surface not in SURFACES:
            raise ValueError(f"surface must be one of {', '.join(map(repr, SURFACES))}; got {surface!r}")
        for name, v, grid in (("lr_plain", lr_plain, LR_PLAIN), ("lr_adaptive", lr_adaptive, LR_ADAPTIVE)):
            V.check_number(v, name, low=grid[0], high=grid[-1])
        if beta not in BETAS:
            raise ValueError(f"beta must be one of {BETAS}, got {beta!r}")
        V.check_int(steps, "steps", minimum=0, maximum=NUM_STEPS)

        self.race = race_trajectories()
        self.values: dict = {}
        self.controls = {
            "surface": widgets.Dropdown(options=[(v[0], k) for k, v in SURFACES.items()], value=surface,
                                        description="surface"),
            "lr_plain": widgets.SelectionSlider(options=[(f"{v:.2g}", v) for v in LR_PLAIN],
                                                value=LR_PLAIN[_nearest(LR_PLAIN, lr_plain)],
                                                description="lr GD/mom."),
            "lr_adaptive": widgets.SelectionSlider(options=[(f"{v:.2g}", v) for v in LR_ADAPTIVE],
                                                   value=LR_ADAPTIVE[_nearest(LR_ADAPTIVE, lr_adaptive)],
                                                   description="lr adaptive"),
            "beta": widgets.SelectionSlider(options=[(f"{b:g}", b) for b in BETAS], value=beta,
                                            description="β (mom., b1)"),
            "steps": widgets.IntSlider(value=steps, min=0, max=NUM_STEPS, step=10, description="steps"),
        }
        self.main_controls = ("lr_plain", "lr_adaptive", "beta", "steps", "surface")
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _landscapes(self, n: int = 160) -> dict:
        xs, ys = np.linspace(*XLIM, n), np.linspace(*YLIM, n)
        X, Y = np.meshgrid(xs, ys)
        out = {}
        for name, (_, _, _, fmin) in SURFACES.items():
            z = np.log10(surface_value(name, X, Y) - fmin + 1e-3)
            z = (z - z.min()) / (z.max() - z.min())
            out[name] = np.floor(z * 14) / 14  # flat bands: a contour-like look that PNG-encodes fast
        return out

    def _build_figure(self):
        fig, (ax, ax_loss) = new_figure(1, 2, figsize=(9.0, 3.9))
        ax.set(title="trajectories on the loss surface", xlabel="parameter x", ylabel="parameter y",
               xlim=XLIM, ylim=YLIM)
        ax_loss.set(title="loss − minimum per step", xlabel="step", ylabel="loss − min (log scale)",
                    xlim=(0, NUM_STEPS), ylim=(1e-7, 1e4), yscale="log")
        ax_loss.grid(alpha=0.3)
        self.landscapes = self._landscapes()
        self.image = ax.imshow(self.landscapes["rosenbrock"], extent=(*XLIM, *YLIM), origin="lower",
                               cmap="Greys_r", vmin=0, vmax=1.15, aspect="auto", interpolation="nearest")
        self._surface = "rosenbrock"
        self._backgrounds = {}  # surface -> LiveFigure background (static landscape + axes)
        self.lines, self.heads, self.loss_lines = {}, {}, {}
        for i, (name, (label, _, _)) in enumerate(OPTIMIZERS.items()):
            (self.lines[name],) = ax.plot([], [], color=f"C{i}", lw=1.6, label=label)
            (self.heads[name],) = ax.plot([], [], "o", color=f"C{i}", ms=5)
            (self.loss_lines[name],) = ax_loss.plot([], [], color=f"C{i}", lw=1.4, label=label)
        (self.start,) = ax.plot([], [], "s", color="white", mec="black", ms=7)
        (self.minimum,) = ax.plot([], [], "*", color="gold", mec="black", ms=13)
        ax_loss.legend(loc="lower left", fontsize=8, ncol=2)
        animated = [*self.lines.values(), *self.heads.values(), *self.loss_lines.values(),
                    self.start, self.minimum]
        self.live = LiveFigure(fig, animated=animated)
        # one full draw per surface now, at build time: a surface change is then a blit like every
        # other control (benchmarks/README.md)
        for name in SURFACES:
            if name != "rosenbrock":
                self.image.set_data(self.landscapes[name])
                self.live.redraw()
                self._backgrounds[name] = self.live.save_background()
        self.image.set_data(self.landscapes["rosenbrock"])
        self.live.redraw()
        self._backgrounds["rosenbrock"] = self.live.save_background()

    def update(self, surface: str, lr_plain: float, lr_adaptive: float, beta: float, steps: int):
        """Index the precomputed trajectories for these control values and blit."""
        _, start, minimum, fmin = SURFACES[surface]
        b = BETAS.index(beta)
        k = int(steps)
        self.start.set_data([start[0]], [start[1]])
        self.minimum.set_data([minimum[0]], [minimum[1]])
        rows, values = [], {}
        t = np.arange(k + 1)
        for name, (label, uses_beta, adaptive) in OPTIMIZERS.items():
            grid = LR_ADAPTIVE if adaptive else LR_PLAIN
            lr = lr_adaptive if adaptive else lr_plain
            path, loss = self.race[surface, name]
            i = grid.index(lr)
            p, f = path[i, b, : k + 1], loss[i, b, : k + 1]
            self.lines[name].set_data(p[:, 0], p[:, 1])
            last = p[-1]
            diverged = not np.all(np.isfinite(last))
            self.heads[name].set_data([] if diverged else [last[0]], [] if diverged else [last[1]])
            self.loss_lines[name].set_data(t, np.maximum(f - fmin, 1e-7))
            values[name] = {"x": float(last[0]), "y": float(last[1]), "loss": float(f[-1]),
                            "diverged": diverged}
            hyper = f"lr={lr:.2g}" + (f", β={beta:g}" if uses_beta else "")
            result = "diverged" if diverged else f"loss {f[-1]:.4g} at ({last[0]:+.3f}, {last[1]:+.3f})"
            color = to_hex(f"C{len(rows)}")
            rows.append(f"<tr><td><b style='color:{color}'>{label}</b></td><td>{hyper}</td>"
                        f"<td>{result}</td></tr>")
        self.values = values
        if surface != self._surface:  # the landscape is static: its background was drawn at build
            self._surface = surface
            self.image.set_data(self.landscapes[surface])
            self.live.restore_background(self._backgrounds[surface])
        self.live.blit()
        self.readout.value = (f"<b>after {k} steps</b> (minimum {fmin:g} at {minimum})"
                              f"<table>{''.join(rows)}</table>")


def build_optimizer_race(surface: str = "rosenbrock", lr_plain: float = 1e-3, lr_adaptive: float = 0.1,
                         beta: float = 0.9, steps: int = NUM_STEPS) -> OptimizerRace:
    """Build the chapter-07 optimizer race; display it with ``display(race.widget)``.

    ``surface``: one of :data:`SURFACES`; ``lr_plain``: learning rate of GD, Momentum and Nesterov
    (snapped to the nearest of :data:`LR_PLAIN`); ``lr_adaptive``: of Adagrad, RMSProp and Adam
    (:data:`LR_ADAPTIVE`); ``beta``: momentum / Adam's b1, one of :data:`BETAS`; ``steps``: how
    many of the 300 precomputed steps to show.
    """
    return OptimizerRace(surface=surface, lr_plain=lr_plain, lr_adaptive=lr_adaptive, beta=beta, steps=steps)
