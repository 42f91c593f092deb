"""Attention maps of a trained transformer, every head of every layer, for a sequence you type.

Question it answers: *where does each position look, and does that explain what the model does?*
The model is chapter 18's decoder-only transformer trained on the reversal task: it reads
``x_1 .. x_L |`` and must then write ``x_L .. x_1``. Type L letters (a..x) in the box or pick an
example; each panel is one head's attention weights A (query position down, key position across;
row t sums to 1 over the positions <= t). The readout shows the model's output for the reversed half
(teacher forcing: each position sees the correct prefix, one forward pass) and whether it is right.

The forward pass is compiled when the widget is built; a change of the text runs it once (about a
millisecond) and updates the images by blitting. Nothing is trained in a callback. Built without
arguments (benchmarks, browser tests) it trains a small model first (a few seconds).

Taught in: notebooks/18_attention_and_transformers.ipynb
"""
from __future__ import annotations

import numpy as np

from .base import Explorer, LiveFigure, new_figure

__all__ = ["WIDGETS", "LETTERS", "LENGTH", "EXAMPLES", "reverse_tokens", "train_reverse_model",
           "build_attention_maps", "AttentionMaps"]

WIDGETS = ("build_attention_maps",)
LETTERS = "abcdefghijklmnopqrstuvwx"          # the 24 symbols of the task; "|" (id 24) separates
LENGTH = 16
EXAMPLES = ("thequickbrownfox", "abcdefghijklmnop", "aaaaaaaabbbbbbbb", "ponmlkjihgfedcba")


def reverse_tokens(text: str) -> np.ndarray:
    """Token ids ``(1, 2L)`` of ``text | reversed(text)`` without its last token (the model's input)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if len(text) != LENGTH or any(ch not in LETTERS for ch in text):
        raise ValueError(f"text must be {LENGTH} letters from {LETTERS[0]}..{LETTERS[-1]}, got {text!r}")
    ids = [LETTERS.index(ch) for ch in text]
    seq = ids + [len(LETTERS)] + ids[::-1]
    return np.asarray(seq[:-1], np.int32)[None]


def train_reverse_model(steps: int = 200, seed: int = 0):
    """A transformer trained on the reversal task (chapter 18's recipe, one seed): its params."""
    import jax

    from course_lib import attention as A

    inputs, targets, weights = A.reverse_task(steps * 16, LENGTH, n_symbols=len(LETTERS), seed=1000 + seed)
    data = tuple(a.reshape(1, steps, 16, -1) for a in (inputs, targets, weights))
    params = A.init_transformer(len(LETTERS) + 1, 2 * LENGTH, seed=seed)
    trained, _ = A.fit_models(A.transformer_logits, jax.tree.map(lambda a: a[None], params), data,
                              learning_rate=1e-2)
    return jax.tree.map(lambda a: a[0], trained)


class AttentionMaps(Explorer):
    """Every head's attention map for a typed sequence (see the module docstring)."""

    def __init__(self, params=None, text: str = EXAMPLES[0]):
        import ipywidgets as widgets
        import jax

        from course_lib import attention as A

        reverse_tokens(text)                                  # validates the text
        self.params = train_reverse_model() if params is None else params
        self.forward = jax.jit(A.transformer_forward)
        logits, maps = self.forward(self.params, reverse_tokens(text))   # compile now, not in a callback
        self.n_layers, self.n_heads = maps.shape[0], maps.shape[2]
        self.values: dict = {}
        self.controls = {"text": widgets.Text(value=text, description="input", continuous_update=False)}
        self.example = widgets.Dropdown(options=list(EXAMPLES), value=text if text in EXAMPLES else None,
                                        description="example")
        self.example.observe(self._use_example, names="value")
        self.main_controls = ("text",)
        self.readout = widgets.HTML()
        self._build_figure()
        self._connect(extra=[self.example])

    def _use_example(self, change):
        if change["new"]:
            self.controls["text"].value = change["new"]

    def _build_figure(self):
        L, H = self.n_layers, self.n_heads
        fig, axes = new_figure(L, H, figsize=(2.1 * H + 0.4, 2.1 * L + 0.3))
        axes = np.asarray(axes).reshape(L, H)
        self.images = []
        T = 2 * LENGTH
        for l in range(L):
            for h in range(H):
                ax = axes[l, h]
                self.images.append(ax.imshow(np.zeros((T, T)), vmin=0, vmax=1, cmap="viridis",
                                             extent=(-0.5, T - 0.5, T - 0.5, -0.5)))
                for pos in (LENGTH - 0.5, LENGTH + 0.5):
                    ax.axhline(pos, color="white", lw=0.5, alpha=0.5)
                    ax.axvline(pos, color="white", lw=0.5, alpha=0.5)
                ax.set_xticks([0, LENGTH, T - 1])
                ax.set_yticks([0, LENGTH, T - 1])
                ax.tick_params(labelsize=7)
                ax.set_title(f"layer {l + 1}, head {h + 1}", fontsize=8)
                if h == 0:
                    ax.set_ylabel("query position", fontsize=8)
                if l == L - 1:
                    ax.set_xlabel("key position", fontsize=8)
        self.live = LiveFigure(fig, animated=self.images)

    def update(self, text: str):
        """Run the compiled forward pass on the typed text and show every head's weights."""
        try:
            tokens = reverse_tokens(text)
        except ValueError as exc:
            self.readout.value = f"<span style='color:#b00'>{exc}</span>"
            self.values = {"text": text, "valid": False}
            return
        logits, maps = self.forward(self.params, tokens)
        maps = np.asarray(maps)[:, 0]                             # (layers, heads, T, T)
        for i, image in enumerate(self.images):
            image.set_data(maps[i // self.n_heads, i % self.n_heads])
        self.live.blit()
        predicted = np.asarray(logits)[0, LENGTH:].argmax(-1)     # the reversed half
        out = "".join(LETTERS[i] if i < len(LETTERS) else "|" for i in predicted)
        right = out == text[::-1]
        self.values = {"text": text, "valid": True, "maps": maps, "output": out, "correct": right}
        self.readout.value = (f"<code>{text} | {out}</code> &mdash; "
                              + ("the reversal is right" if right else f"should be <code>{text[::-1]}</code>"))


def build_attention_maps(params=None, text: str = EXAMPLES[0]) -> AttentionMaps:
    """Build the chapter-18 attention-map explorer for a reversal model (trained here if ``params``
    is None); display it with ``display(w.widget)``."""
    return AttentionMaps(params, text)
