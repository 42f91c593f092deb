"""Latent-space explorer: what does a VAE's decoder draw at each point of its 2-D latent space?

Question it answers: *is the latent space of a VAE a map of digits, and what lies between them?*
The left panel is the decoder's output on a regular grid of latent points z = (z1, z2) (a mosaic of
decoded digits, with the encoded test digits' means scattered on top, coloured by class); a red
marker shows the point the sliders select. The right panel is the digit decoded at that point,
x_hat = sigmoid(dec(z)), and the readout prints z and the prior density there.

Every decoded image is computed once, when the explorer is built: the decoder runs on all points of
the sliders' grid in one call of :func:`course_lib.generative.decode` (one compilation), and a slider
move only indexes that array, moves the marker and blits (no decoding, no compiling in a callback).

Widget protocol (used by ``benchmarks/bench_widgets.py``, see ``benchmarks/README.md``): ``WIDGETS``
lists the builders; a builder called without arguments returns an object with ``controls``,
``main_controls``, ``live`` and ``widget``.

Taught in: notebooks/12_autoencoders_and_vae.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, nearest_imshow, new_figure

__all__ = ["WIDGETS", "latent_grid", "decoded_grid", "mosaic", "default_vae", "build_latent_explorer",
           "LatentExplorer"]

WIDGETS = ("build_latent_explorer",)


def latent_grid(lim: float = 3.0, step: float = 0.1) -> np.ndarray:
    """The sliders' grid of one latent coordinate: -lim, -lim + step, ..., lim (rounded)."""
    V.check_number(lim, "lim", low=0, low_open=True)
    V.check_number(step, "step", low=0, low_open=True)
    n = int(round(2 * lim / step))
    if n < 2 or abs(n * step - 2 * lim) > 1e-9 * max(1.0, lim):
        raise ValueError(f"step must divide 2 * lim into at least 2 intervals, got lim={lim}, step={step}")
    return np.round(-lim + step * np.arange(n + 1), 10)


def decoded_grid(params, grid, *, activation: str = "relu") -> np.ndarray:
    """Decode every point (grid[i], grid[j]) of a 2-D latent space in one call.

    Returns ``images[i, j]`` = sigmoid(dec((grid[i], grid[j]))) of shape (n, n, d): ``i`` indexes z1,
    ``j`` indexes z2. ``params`` come from :func:`course_lib.generative.init_vae` with a 2-D latent.
    """
    from course_lib import generative

    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.isfinite(grid)):
        raise ValueError(f"grid must be a 1-D array of at least 2 finite values, got shape {grid.shape}")
    latent = np.asarray(params["decoder"][0]["W"]).shape[0]
    if latent != 2:
        raise ValueError(f"params must be a VAE with a 2-D latent space (decoder input 2), got {latent}")
    z1, z2 = np.meshgrid(grid, grid, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)
    images = np.asarray(generative.decode(params, z, activation))
    return images.reshape(len(grid), len(grid), -1)


def mosaic(images, side: int = 8) -> np.ndarray:
    """Tile ``images[i, j]`` (n, n, side*side) into one (n*side, n*side) picture for ``imshow`` with
    ``origin="lower"``: column blocks follow z1 (left to right), row blocks follow z2 (bottom to top)."""
    images = np.asarray(images)
    n = images.shape[0]
    if images.ndim != 3 or images.shape[1] != n or images.shape[2] != side * side:
        raise ValueError(f"images must have shape (n, n, {side * side}), got {images.shape}")
    tiles = images.reshape(n, n, side, side)[:, :, ::-1, :]        # flip each tile: origin="lower"
    return tiles.transpose(1, 2, 0, 3).reshape(n * side, n * side)   # rows: z2 then pixel row


def default_vae(seed: int = 0, epochs: int = 60):
    """A 2-D-latent VAE (64-128-2) trained on the digits (used when the explorer gets no params).

    Returns ``(params, X, y)`` with the digits it was trained on."""
    from course_lib import data, generative

    X, y = data.load_digits()
    params = generative.init_vae((64, 128, 2), seed=seed)
    params, _ = generative.fit_autoencoder(params, X, kind="vae", epochs=epochs, batch_size=64,
                                           learning_rate=3e-3, seed=seed)
    return params, X, y


class LatentExplorer(Explorer):
    """State of the latent-space explorer: the precomputed decoded images, controls and figure.

    ``values`` holds what the figure shows: ``z`` (the selected latent point, snapped to the grid) and
    ``image`` (the decoded 8x8 digit there), which tests compare with an independent decoder.
    """

    def __init__(self, params=None, X=None, y=None, *, lim: float = 3.0, step: float = 0.1,
                 n_mosaic: int = 13, activation: str = "relu", z1: float = 0.0, z2: float = 0.0):
        import ipywidgets as widgets

        from course_lib import generative

        if params is None:
            params, X, y = default_vae()
        self.grid = latent_grid(lim, step)
        V.check_int(n_mosaic, "n_mosaic", minimum=2, maximum=len(self.grid))
        for name, v in (("z1", z1), ("z2", z2)):
            if not -lim <= v <= lim:
                raise ValueError(f"{name} must lie in [-lim, lim] = [{-lim}, {lim}], got {v!r}")
        self.params, self.activation, self._step = params, activation, step
        self.images = decoded_grid(params, self.grid, activation=activation)
        # the mosaic uses n_mosaic evenly spaced grid points (decoded at their exact latent values)
        self.mosaic_index = np.round(np.linspace(0, len(self.grid) - 1, n_mosaic)).astype(int)
        codes = None
        if X is not None:
            mu, _ = generative.vae_encode(params, np.asarray(X, np.float32), activation)
            codes = np.asarray(mu)
        self.values: dict = {}
        self.controls = {
            "z1": widgets.FloatSlider(value=z1, min=-lim, max=lim, step=step, description="z₁",
                                      readout_format=".1f", continuous_update=True),
            "z2": widgets.FloatSlider(value=z2, min=-lim, max=lim, step=step, description="z₂",
                                      readout_format=".1f", continuous_update=True),
        }
        self.main_controls = ("z1", "z2")
        self.readout = widgets.HTML()
        self._build_figure(lim, codes, y)
        self._connect()

    def _build_figure(self, lim, codes, y):
        fig, (ax_m, ax_d) = new_figure(1, 2, figsize=(8.0, 4.0),
                                       gridspec_kw={"width_ratios": [1.35, 1]})
        idx = self.mosaic_index
        sub = self.images[np.ix_(idx, idx)]
        half = (self.grid[idx[1]] - self.grid[idx[0]]) / 2
        ext = (self.grid[idx[0]] - half, self.grid[idx[-1]] + half)
        ax_m.imshow(mosaic(sub), cmap="gray_r", origin="lower", extent=(*ext, *ext), vmin=0, vmax=1,
                    interpolation="nearest")
        if codes is not None:
            keep = np.all(np.abs(codes) <= lim, axis=1)
            ax_m.scatter(codes[keep, 0], codes[keep, 1], c=None if y is None else np.asarray(y)[keep],
                         cmap="tab10", s=3, alpha=0.35, vmin=0, vmax=9)
        ax_m.set(title="decoder on a latent grid (dots: encoded digits)", xlabel="latent z₁",
                 ylabel="latent z₂", xlim=ext, ylim=ext)
        (self.marker,) = ax_m.plot([0.0], [0.0], "o", ms=11, mfc="none", mec="red", mew=2.5)
        self.digit = nearest_imshow(ax_d, np.zeros((8, 8)), cmap="gray_r", vmin=0, vmax=1)
        ax_d.set(title="decoded digit x̂ = sigmoid(dec(z))", xlabel="pixel column", ylabel="pixel row")
        self.live = LiveFigure(fig, animated=[self.marker, self.digit])

    def _index(self, value: float) -> int:
        return int(np.clip(round((value - self.grid[0]) / self._step), 0, len(self.grid) - 1))

    def update(self, z1: float, z2: float):
        """Snap (z1, z2) to the grid, show the precomputed decoded digit there, move the marker, blit."""
        i, j = self._index(z1), self._index(z2)
        z = (float(self.grid[i]), float(self.grid[j]))
        image = self.images[i, j].reshape(8, 8)
        self.marker.set_data([z[0]], [z[1]])
        self.digit.set_data(image)
        self.values = {"z": z, "image": image}
        density = np.exp(-0.5 * (z[0] ** 2 + z[1] ** 2)) / (2 * np.pi)
        self.readout.value = (f"z = ({z[0]:+.1f}, {z[1]:+.1f}) &nbsp; prior density p(z) = {density:.4f} "
                              f"&nbsp; mean pixel = {image.mean():.3f}")
        self.live.blit()


def build_latent_explorer(params=None, X=None, y=None, **kwargs) -> LatentExplorer:
    """The latent-space explorer of a 2-D-latent VAE (``params`` from ``init_vae((64, ..., 2))``);
    ``X``, ``y``: digits whose encoded means are scattered on the mosaic. Without ``params`` it
    trains :func:`default_vae` first (a few seconds). Display ``explorer.widget``."""
    return LatentExplorer(params, X, y, **kwargs)
