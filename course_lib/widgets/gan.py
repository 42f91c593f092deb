"""GAN training-dynamics viewer: generator samples, the discriminator and both losses, step by step.

Question it answers: *what happens during GAN training, and what does the end look like?* A step
slider moves over snapshots stored while :func:`course_lib.gan.train_gan_history` trained the GAN.
For 2-D data the left panel scatters the generator's samples (one fixed batch of latent vectors, so
the same points move) over the data, on top of the discriminator's output D(x) as a heat map; for
images it shows a grid of generated images. The right panel has the discriminator and generator
losses up to the chosen step (the curves grow as the slider moves), on axes that span the whole
run, and the values they take at the game's optimum (p_g = p_data, D = 1/2 everywhere): 2 log 2 for
D's loss and log 2 for the non-saturating generator loss.

GAN training is chaotic: another CPU's last-bit rounding gives a different run after a hundred or
so steps. So the first picture (the first snapshot, and the losses up to it, on a fixed loss axis)
depends only on the start of the run, which is the same on every machine; what the later steps
show is this run's own.

Training happens before the viewer is built (or, with no history given, once in the builder); the
slider only indexes the stored arrays and blits.

Widget protocol: see ``benchmarks/README.md``.

Taught in: notebooks/13_gans.ipynb
"""
from __future__ import annotations

import numpy as np

from .base import Explorer, LiveFigure, nearest_imshow, new_figure

__all__ = ["WIDGETS", "GanViewer", "build_gan_viewer", "image_grid", "smooth"]

WIDGETS = ("build_gan_viewer",)

#: Top of the loss axis (nats): above every loss of the course's GANs except short spikes.
LOSS_TOP = 4.0


def image_grid(images, side: int, rows: int, cols: int, pad: int = 1):
    """Tile ``rows * cols`` flat images (N, side*side) into one 2-D array, ``pad`` pixels of NaN between."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2 or images.shape[1] != side * side:
        raise ValueError(f"images must have shape (N, {side * side}), got {images.shape}")
    if images.shape[0] < rows * cols:
        raise ValueError(f"images has {images.shape[0]} rows, fewer than rows * cols = {rows * cols}")
    cell = side + pad
    out = np.full((rows * cell - pad, cols * cell - pad), np.nan)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        out[r * cell:r * cell + side, c * cell:c * cell + side] = images[k].reshape(side, side)
    return out


def smooth(x, window: int):
    """Trailing moving average (the first values average what is available)."""
    x = np.asarray(x, dtype=np.float64)
    c = np.cumsum(np.insert(x, 0, 0.0))
    n = np.arange(1, len(x) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _default_history():
    from course_lib import gan

    X, centers = gan.make_ring(2000, std=0.05, seed=0)
    g = np.linspace(-3, 3, 41)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    h = gan.train_gan_history(gan.init_gan(2, 2, (32, 32), seed=0), X, steps=600, snapshots=20,
                              n_samples=300, grid=grid, seed=0)
    return h, X, centers, (-3.0, 3.0)


class GanViewer(Explorer):
    """Stored snapshots of one GAN run, a step slider, the live figure and a readout.

    ``values`` holds what the readout shows (step, mean D and G loss over the steps since the last
    snapshot, and for 2-D data with ``centers`` the number of modes covered).
    """

    def __init__(self, history, data=None, *, centers=None, extent=(-3.0, 3.0), image_side=None,
                 mode_radius: float = 0.2, mode_min_count: int = 5, title: str = "GAN"):
        import ipywidgets as widgets

        if not isinstance(history, dict) or not {"losses", "samples"} <= set(history):
            raise ValueError("history must be the dict returned by course_lib.gan.train_gan_history")
        self.losses = np.asarray(history["losses"], dtype=np.float64)
        self.samples = np.asarray(history["samples"], dtype=np.float64)
        if self.losses.ndim != 2 or self.losses.shape[1] != 2:
            raise ValueError(f"history['losses'] must have shape (steps, 2), got {self.losses.shape}")
        if self.samples.ndim != 3:
            raise ValueError(f"history['samples'] must have shape (snapshots, n, d), got {self.samples.shape}")
        n_snap, _, d = self.samples.shape
        if len(self.losses) % n_snap:
            raise ValueError(f"{len(self.losses)} steps are not a multiple of {n_snap} snapshots")
        self.every = len(self.losses) // n_snap
        self.images = image_side is not None
        if not self.images and d != 2:
            raise ValueError(f"samples must be 2-D points (d = 2) or images (give image_side), got d = {d}")
        if self.images and d != image_side * image_side:
            raise ValueError(f"image_side={image_side} needs d = {image_side ** 2}, got d = {d}")
        self.d_grid = history.get("d_grid")
        self.data = None if data is None else np.asarray(data, dtype=np.float64)
        self.centers = None if centers is None else np.asarray(centers, dtype=np.float64)
        self.extent, self.side, self.title = tuple(extent), image_side, title
        self.mode_radius, self.mode_min_count = mode_radius, mode_min_count
        self.window_loss = self.losses.reshape(n_snap, self.every, 2).mean(1)
        self.values: dict = {}
        self.controls = {"step": widgets.IntSlider(value=self.every, min=self.every, max=len(self.losses),
                                                   step=self.every, description="step")}
        self.main_controls = ("step",)
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, (ax, ax_l) = new_figure(1, 2, figsize=(9.6, 4.0))
        animated = []
        if self.images:
            self.grid_shape = (4, 8)
            self.im = nearest_imshow(ax, self._tile(0), cmap="gray_r", vmin=0, vmax=1)
            ax.set(title=f"{self.title}: generator samples (fixed z)", xticks=[], yticks=[])
            animated.append(self.im)
        else:
            lo, hi = self.extent
            if self.d_grid is not None:
                m = int(round(np.sqrt(self.d_grid.shape[1])))
                self.heat = ax.imshow(self.d_grid[0].reshape(m, m), origin="lower", extent=(lo, hi, lo, hi),
                                      cmap="RdBu", vmin=0, vmax=1, alpha=0.55)
                fig.colorbar(self.heat, ax=ax, label="D(x) = P(real)", shrink=0.8)
                animated.append(self.heat)
            if self.data is not None:
                ax.scatter(self.data[:, 0], self.data[:, 1], s=3, color="0.35", label="data")
            self.scat = ax.scatter(self.samples[0, :, 0], self.samples[0, :, 1], s=6, color="C1",
                                   label="generator G(z)")
            ax.set(title=f"{self.title}: samples over the data", xlabel="x₁", ylabel="x₂", xlim=(lo, hi),
                   ylim=(lo, hi), aspect="equal")
            ax.legend(loc="upper right", fontsize=7)
            animated.append(self.scat)
        self.steps = np.arange(1, len(self.losses) + 1)
        w = max(1, len(self.losses) // 100)
        # trailing averages: the curve up to a step depends only on the losses up to it
        self.smoothed = [smooth(self.losses[:, j], w) for j in (0, 1)]
        self.curves = [ax_l.plot([], [], color=c, lw=1.2, label=name)[0]
                       for c, name in (("C0", "discriminator loss"), ("C1", "generator loss"))]
        ax_l.axhline(2 * np.log(2), color="C0", ls=":", lw=1, label="D loss at optimum: 2 log 2")
        ax_l.axhline(np.log(2), color="C1", ls=":", lw=1, label="G loss at optimum: log 2")
        # a fixed loss axis (not the run's own range, which would change the first picture with the
        # rest of a chaotic run); higher spikes run off the top
        ax_l.set(title=f"losses up to the step (moving average over {w} steps)", xlabel="training step",
                 ylabel="loss (nats)", xlim=(0, len(self.losses)), ylim=(0, LOSS_TOP))
        ax_l.legend(loc="upper right", fontsize=7)
        ax_l.grid(alpha=0.3)
        self.marker = ax_l.axvline(self.every, color="k", lw=1.2)
        self.points = ax_l.plot([], [], "o", color="k", ms=4)[0]
        animated += [*self.curves, self.marker, self.points]
        self.live = LiveFigure(fig, animated=animated)

    def _tile(self, i):
        r, c = self.grid_shape
        return image_grid(self.samples[i, : r * c], self.side, r, c)

    def update(self, step: int):
        i = int(np.clip(round(step / self.every) - 1, 0, len(self.samples) - 1))
        step = (i + 1) * self.every
        if self.images:
            self.im.set_data(self._tile(i))
        else:
            self.scat.set_offsets(self.samples[i])
            if self.d_grid is not None:
                m = self.heat.get_array().shape[0]
                self.heat.set_data(self.d_grid[i].reshape(m, m))
        for curve, values in zip(self.curves, self.smoothed):
            curve.set_data(self.steps[:step], values[:step])
        ld, lg = self.window_loss[i]
        self.marker.set_xdata([step, step])
        self.points.set_data([step, step], [ld, lg])
        values = {"step": step, "snapshot": i, "d_loss": float(ld), "g_loss": float(lg)}
        text = (f"step {step}: discriminator loss {ld:.3f}, generator loss {lg:.3f} "
                f"(means over steps {step - self.every + 1}-{step})")
        if self.d_grid is not None:
            values["d_mean"] = float(np.mean(self.d_grid[i]))
        if self.centers is not None and not self.images:
            from course_lib.gan import count_modes
            values["modes"] = count_modes(self.samples[i], self.centers, self.mode_radius, self.mode_min_count)
            text += f"; modes covered {values['modes']} of {len(self.centers)}"
        self.values = values
        self.readout.value = text
        self.live.blit()


def build_gan_viewer(history=None, data=None, **kwargs) -> GanViewer:
    """The training-dynamics viewer for one GAN run (``history`` from ``gan.train_gan_history``).

    2-D data: pass ``data`` (N, 2) and optionally ``centers``, ``extent`` (the heat map of
    ``history["d_grid"]`` must cover ``extent`` x ``extent`` on a square grid, x varying fastest).
    Images: pass ``image_side`` (8 for digits). Without a history, a small GAN on a ring of eight
    Gaussians is trained first (about 600 steps).
    """
    if history is None:
        history, data, centers, extent = _default_history()
        kwargs = {"centers": centers, "extent": extent, **kwargs}
    return GanViewer(history, data, **kwargs)
