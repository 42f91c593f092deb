"""Kernel editor and feature-map explorer for chapter 10 (convolutional networks).

Questions they answer:

* **Kernel editor**: *what does a 3x3 kernel do to an image?* Choose an image (the two photographs
  scikit-learn ships, or a digit), pick a preset (edge, Sobel, sharpen, blur...) or type the nine
  weights, and see ``course_lib.conv.conv2d`` of the image at once.
* **Feature-map explorer**: *what does a trained CNN see, and what happens when the input moves?*
  Choose a layer and a channel of a trained :func:`course_lib.conv.init_cnn` network, shift the
  digit by a few pixels: the convolution's feature map moves with the input (equivariance), while
  the prediction after pooling and the dense layer barely changes (approximate invariance).

Heavy work is done when a widget is built: the editor compiles its convolution once per image size
and draws one static background per image; the explorer computes every layer's maps for every
shift (25 shifts) in one batched call. A control change (including switching the image) then runs
one small jitted call (editor) or only indexes arrays (explorer), and blits.

Widget protocol: see ``benchmarks/README.md`` (``WIDGETS``, builders callable without arguments).

Taught in: notebooks/10_convolutional_networks.ipynb
"""
from __future__ import annotations

import numpy as np

from course_lib import _validation as V
from .base import Explorer, LiveFigure, nearest_imshow, new_figure

__all__ = ["WIDGETS", "PRESETS", "SHIFTS", "load_images", "apply_kernel", "shift_image",
           "shifted_features", "build_kernel_editor", "build_feature_explorer", "KernelEditor",
           "FeatureExplorer"]

WIDGETS = ("build_kernel_editor", "build_feature_explorer")

#: Preset 3x3 kernels (applied as cross-correlation, like every deep-learning library).
PRESETS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "edge (Laplacian)": [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    "Sobel x (vertical edges)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y (horizontal edges)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "Gaussian blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
}

#: Shifts (pixels) offered by the feature-map explorer, in each direction.
SHIFTS = (-2, -1, 0, 1, 2)


def load_images(photo_step: int = 4, digit_index: int = 0) -> dict:
    """Gray-scale float32 images in [0, 1]: the photos 'china' and 'flower' (every ``photo_step``-th
    pixel, 107x160 by default) and one 8x8 digit scaled to [0, 1]."""
    from course_lib import data

    V.check_int(photo_step, "photo_step", minimum=1)
    photos = data.load_sample_images()
    out = {}
    for name in ("china", "flower"):
        rgb = np.asarray(photos[name], np.float32)[::photo_step, ::photo_step] / 255.0
        out[name] = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    X, y = data.load_digits(images=True)
    out[f"digit ({int(y[digit_index])})"] = np.asarray(X[digit_index], np.float32)
    return out


def _kernel_array(kernel) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float32)
    if k.shape != (3, 3):
        raise ValueError(f"kernel must have shape (3, 3), got {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel must be finite (no NaN or infinity)")
    return k


def apply_kernel(image, kernel) -> np.ndarray:
    """``course_lib.conv.conv2d`` of a gray image (H, W) with a 3x3 kernel, 'same' padding."""
    from course_lib import conv

    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must have 2 dimension(s) (H, W), got shape {img.shape}")
    k = _kernel_array(kernel)
    return np.asarray(conv.conv2d(img[None, :, :, None], k[:, :, None, None], padding="same")[0, :, :, 0])


class KernelEditor(Explorer):
    """Kernel editor state: images, the nine weight boxes, a preset menu, and the live figure."""

    def __init__(self, images: dict | None = None, preset: str = "Sobel x (vertical edges)"):
        import ipywidgets as widgets

        self.images = load_images() if images is None else dict(images)
        if not self.images:
            raise ValueError("images must be a non-empty dict name -> (H, W) array")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}; got {preset!r}")
        for name, img in self.images.items():
            apply_kernel(img, PRESETS["identity"])      # validate, and compile once per image size
        self.cells = [widgets.FloatText(value=float(PRESETS[preset][i][j]), step=0.1,
                                        layout=widgets.Layout(width="70px"))
                      for i in range(3) for j in range(3)]
        self.controls = {"image": widgets.Dropdown(options=list(self.images), description="image"),
                         "preset": widgets.Dropdown(options=list(PRESETS) + ["custom"], value=preset,
                                                    description="preset")}
        for t, cell in enumerate(self.cells):
            self.controls[f"w{t // 3}{t % 3}"] = cell
        self.main_controls = ("preset", "image")
        # choosing "custom" by hand keeps the weights, so the picture: nothing for a benchmark to time
        self.bench_skip = {"preset": ("custom",)}
        self.output = None
        self._image_name = None
        self._setting_preset = False
        self.readout = widgets.HTML()
        self._build_figure()
        self.controls["preset"].observe(self._on_preset, names="value")   # before the update observers
        grid = widgets.GridBox(self.cells, layout=widgets.Layout(
            grid_template_columns="repeat(3, 75px)", width="240px"))
        self._connect(widget=widgets.HBox([
            widgets.VBox([self.controls["image"], self.controls["preset"],
                          widgets.HTML("kernel w[i, j] (cross-correlation):"), grid, self.readout]),
            self.live.image]))

    @property
    def kernel(self) -> np.ndarray:
        return np.array([c.value for c in self.cells], np.float32).reshape(3, 3)

    def _on_preset(self, change):
        if change["new"] == "custom":
            return
        self._setting_preset = True
        try:
            values = np.asarray(PRESETS[change["new"]], np.float32).ravel()
            for cell, v in zip(self.cells, values):
                cell.value = float(v)
        finally:
            self._setting_preset = False
        # link_controls' observer (registered after this one) now redraws with the new weights

    def _build_figure(self):
        fig, (self.ax_in, self.ax_out) = new_figure(1, 2, figsize=(8.4, 3.2))
        first = next(iter(self.images.values()))
        self.im_in = self.ax_in.imshow(first, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        self.im_out = nearest_imshow(self.ax_out, np.zeros_like(first), cmap="RdBu_r")
        self.ax_in.set(title="input image", xlabel="x (pixels)", ylabel="y (pixels)")
        self.ax_out.set(title="output = conv2d(image, kernel)", xlabel="x (pixels)")
        # the colour scale is symmetric, +-max|output| (set per update): a static colour bar in units
        # of that maximum (the range is written in the corner), so an update never redraws the bar
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        fig.colorbar(ScalarMappable(Normalize(-1.0, 1.0), "RdBu_r"), ax=self.ax_out, shrink=0.8,
                     label="output / max |output|")
        # the output's range goes to the HTML readout, not into the figure (no text over the image)
        self.live = LiveFigure(fig, animated=[self.im_out])
        self.live.freeze_layout()            # laid out for the first (largest) image, kept for all
        # one static background per image (input picture, axis limits), drawn once here: switching
        # the image is then a blit like any other change, not a full redraw. The two images have
        # different shapes, so the axes sit elsewhere in each background; restore_background puts
        # them back where that background drew them, and the output is drawn inside its axes
        self._backgrounds = {}
        for name in self.images:
            self._show_input(name)
            self.live.redraw()
            self._backgrounds[name] = self.live.save_background()

    def _show_input(self, name):
        img = self.images[name]
        self.im_in.set_data(img)
        h, w = img.shape
        for im in (self.im_in, self.im_out):
            im.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
        for ax in (self.ax_in, self.ax_out):
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)

    def update(self, image, preset, **weights):
        if self._setting_preset:
            return
        kernel = self.kernel
        if preset != "custom" and not np.allclose(kernel, np.asarray(PRESETS[preset], np.float32)):
            self.controls["preset"].value = "custom"     # typing a weight leaves the preset
            return
        img = self.images[image]
        self.output = apply_kernel(img, kernel)
        lim = max(float(np.max(np.abs(self.output))), 1e-6)
        self.im_out.set_data(self.output)
        self.im_out.set_clim(-lim, lim)
        if image != self._image_name:                    # a new image: its precomputed background
            self._image_name = image
            self._show_input(image)
            self.live.restore_background(self._backgrounds[image])
        self.live.blit()
        self._update_readout()

    def _update_readout(self):
        if self.output is None:
            return
        k = self.kernel
        preset = self.controls["preset"].value
        self.readout.value = (f"<b>{preset}</b>: sum of weights {k.sum():+.3f} "
                              f"(1 keeps brightness, 0 responds only to change); "
                              f"output range [{self.output.min():+.3f}, {self.output.max():+.3f}]")


def build_kernel_editor(images: dict | None = None, preset: str = "Sobel x (vertical edges)"):
    """The kernel editor: image menu, preset menu, nine weight boxes, input and output images."""
    return KernelEditor(images, preset)


# --------------------------------------------------------------------------- feature maps
def shift_image(image, dy: int, dx: int) -> np.ndarray:
    """Move an (H, W[, C]) image by ``dy`` rows down and ``dx`` columns right, filling with zeros."""
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must have 2 or 3 dimension(s), got shape {img.shape}")
    h, w = img.shape[:2]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift ({dy}, {dx}) must be smaller than the image ({h}x{w})")
    out = np.zeros_like(img)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def shifted_features(params, image, shifts=SHIFTS) -> dict:
    """Every layer's maps of ``image`` (H, W, C) shifted by every (dy, dx) in ``shifts`` x ``shifts``.

    Returns ``{"inputs": (S, S, H, W, C), layer: (S, S, h, w, c), "probs": (S, S, n_classes)}``,
    computed with :func:`course_lib.conv.cnn_features` in one batched call.
    """
    import jax

    from course_lib import conv

    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    s = len(shifts)
    batch = np.stack([shift_image(img, dy, dx) for dy in shifts for dx in shifts])
    feats = conv.cnn_features(params, batch)
    out = {k: np.asarray(v).reshape((s, s) + v.shape[1:]) for k, v in feats.items()}
    out["probs"] = np.asarray(jax.nn.softmax(feats["logits"], axis=-1)).reshape(s, s, -1)
    out["inputs"] = batch.reshape((s, s) + img.shape)
    return out


class FeatureExplorer(Explorer):
    """Feature-map explorer state (see the module docstring)."""

    LAYERS = ("conv1", "pool1", "conv2", "pool2")

    def __init__(self, params=None, images=None, labels=None, n_images: int = 6):
        import ipywidgets as widgets

        from course_lib import conv, data

        if images is None:
            X, y = data.load_digits(images=True)
            idx = [int(np.flatnonzero(np.asarray(y) == d)[0]) for d in range(n_images)]
            images, labels = np.asarray(X)[idx][..., None], np.asarray(y)[idx]
            if params is None:      # no network given: train a small one on the other digits
                rest = np.setdiff1d(np.arange(len(y)), idx)
                params, _ = conv.train_cnn(np.asarray(X)[rest][..., None], np.asarray(y)[rest],
                                           epochs=5, seed=0)
        if params is None:
            raise ValueError("params (a trained network from course_lib.conv.train_cnn) are required "
                             "when images are given")
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must have shape (n, H, W) or (n, H, W, C), got {images.shape}")
        self.labels = (np.full(len(images), -1) if labels is None else np.asarray(labels)).astype(int)
        self.params = params
        self.maps = [shifted_features(params, img) for img in images]
        self.n_classes = self.maps[0]["probs"].shape[-1]
        self.values: dict = {}
        c0 = SHIFTS.index(0)
        self._c0 = c0
        self.controls = {
            "image": widgets.Dropdown(options=[(f"#{i} (label {l})", i) for i, l in enumerate(self.labels)],
                                      value=0, description="image"),
            "layer": widgets.Dropdown(options=list(self.LAYERS), value="conv1", description="layer"),
            "channel": widgets.IntSlider(value=0, min=0, max=self.maps[0]["conv2"].shape[-1] - 1,
                                         description="channel"),
            "dy": widgets.IntSlider(value=0, min=SHIFTS[0], max=SHIFTS[-1], description="shift down"),
            "dx": widgets.IntSlider(value=0, min=SHIFTS[0], max=SHIFTS[-1], description="shift right"),
        }
        self.main_controls = ("dx", "dy", "channel", "layer", "image")
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect()

    def _build_figure(self):
        fig, axes = new_figure(1, 4, figsize=(10.5, 2.9))
        self.ax_in, self.ax_map, self.ax_ref, self.ax_p = axes
        h, w = self.maps[0]["inputs"].shape[2:4]
        self.im_in = nearest_imshow(self.ax_in, np.zeros((h, w)), cmap="gray_r", vmin=0, vmax=1,
                                    extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        self.ax_in.set(title="shifted input", xlabel="x (pixels)", ylabel="y (pixels)")
        # feature maps are drawn on the input's pixel grid, so a move of one map cell is visible
        self.im_map = nearest_imshow(self.ax_map, np.zeros((h, w)), cmap="viridis", vmin=0, vmax=1,
                                     extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        self.ax_map.set(title="feature map of shifted input", xlabel="x (input pixels)")
        self.im_ref = nearest_imshow(self.ax_ref, np.zeros((h, w)), cmap="viridis", vmin=0, vmax=1,
                                     extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        self.ax_ref.set(title="map of unshifted input", xlabel="x (input pixels)")
        self.bars = self.ax_p.bar(np.arange(self.n_classes), np.zeros(self.n_classes), color="C0")
        self.ax_p.set(title="prediction (softmax)", xlabel="class", ylabel="probability", ylim=(0, 1),
                      xticks=np.arange(self.n_classes))
        # which map is shown, written on the map itself (two layers can show the same picture:
        # a channel that is zero everywhere looks alike in conv2 and pool2)
        self.map_label = self.ax_map.text(0.03, 0.97, "", transform=self.ax_map.transAxes, ha="left",
                                          va="top", fontsize=8, color="white",
                                          bbox=dict(boxstyle="round,pad=0.2", fc="black", alpha=0.6))
        self.live = LiveFigure(fig, animated=[self.im_in, self.im_map, self.im_ref, *self.bars,
                                              self.map_label])

    def update(self, image, layer, channel, dy, dx):
        m = self.maps[image]
        i, j = SHIFTS.index(dy), SHIFTS.index(dx)
        n_ch = m[layer].shape[-1]
        if self.controls["channel"].max != n_ch - 1:      # the slider offers this layer's channels
            self.controls["channel"].max = n_ch - 1       # (may clamp the value: a new update)
            if channel > n_ch - 1:
                return
        c = channel
        fmap, ref = m[layer][i, j, :, :, c], m[layer][self._c0, self._c0, :, :, c]
        vmax = max(float(m[layer][..., c].max()), 1e-6)
        self.im_in.set_data(m["inputs"][i, j, :, :, 0])
        for im, arr in ((self.im_map, fmap), (self.im_ref, ref)):
            im.set_data(arr)
            im.set_clim(0, vmax)
        probs = m["probs"][i, j]
        p0 = m["probs"][self._c0, self._c0]
        for bar, p in zip(self.bars, probs):
            bar.set_height(float(p))
        dead = not np.any(m[layer][..., c])
        self.map_label.set_text(f"{layer}, channel {c}" + (" (all zero)" if dead else ""))
        self.live.blit()
        scale = m["inputs"].shape[2] // fmap.shape[0]
        self.values = {"layer": layer, "channel": c, "shift": (dy, dx), "map": fmap,
                       "prediction": int(np.argmax(probs)), "p_max": float(probs.max()),
                       "prediction_unshifted": int(np.argmax(p0)), "map_cell_pixels": scale,
                       "all_zero": dead}
        self.readout.value = (
            f"{layer}, channel {c}/{m[layer].shape[-1] - 1}: map {fmap.shape[0]}x{fmap.shape[1]} "
            f"(one cell = {scale} input pixel(s)); shift ({dy:+d}, {dx:+d}) pixels; "
            f"prediction {self.values['prediction']} (p = {probs.max():.3f}), unshifted "
            f"{self.values['prediction_unshifted']} (p = {p0.max():.3f})"
            + ("<br>This channel is zero at every position and every shift of this image: its ReLU "
               "never fires here (a &quot;dead&quot; channel for this input)." if dead else ""))


def build_feature_explorer(params=None, images=None, labels=None):
    """The feature-map explorer; without ``params`` it trains a small CNN on digits first (~1 s)."""
    return FeatureExplorer(params, images, labels)
