"""End-to-end applications: tuning on a validation split, text data, deployment with a model card.

Four parts, each a thin layer over the rest of course_lib:

* **Hyper-parameter tuning** (``train_mlp_configs``): many one-hidden-layer MLPs, each with its own
  learning rate, L2 penalty and width, trained side by side in *one* compiled call (``jax.vmap``
  over the configurations, ``lax.scan`` over epochs and mini-batches). A narrower network is
  embedded in the widest one by zero-padding and a fixed mask on the hidden units; the padded
  weights get zero gradient and stay exactly zero, so ``config_params`` slices out precisely the
  network of that width.
* **Text** (``make_topic_corpus``, ``tokenize``, ``build_vocabulary``, ``bag_of_words``,
  ``fit_text_classifier``, ``classify_texts``): a corpus written by a small grammar (sentences about
  four topics, deterministic for a seed, no download), bag-of-words / bag-of-characters features
  and a softmax-regression or MLP classifier trained with ``course_lib.training.fit``.
* **Character-level generation** (``temperature_softmax``, ``train_char_model``, ``sample_text``):
  a GRU/LSTM language model from ``course_lib.recurrent``, sampled with a temperature::

      p_i(T) = exp(z_i / T) / sum_j exp(z_j / T)        T -> 0: argmax;  T -> inf: uniform

* **Deployment** (``save_model``, ``load_model``, ``predict``): the parameters in the pickle-free
  ``course_lib.serialization`` format plus a JSON *model card* (architecture, input shape and range,
  preprocessing, class names, the SHA-256 of the parameter file). ``predict`` validates its input
  (type, shape, NaN, range) before it applies the card's preprocessing and the network.
* **Error analysis** (``most_confident_errors``, ``top_confusions``).

Taught in: notebooks/15_applications.ipynb
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import re
from collections import Counter
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from course_lib import _validation as V
from course_lib.losses import cross_entropy

__all__ = [
    "train_mlp_configs", "config_params", "evaluate_configs",
    "TOPICS", "make_topic_corpus", "tokenize", "build_vocabulary", "bag_of_words",
    "fit_text_classifier", "classify_texts",
    "temperature_softmax", "train_char_model", "sample_text",
    "CARD_FORMAT", "save_model", "load_model", "predict",
    "most_confident_errors", "top_confusions",
]


# =========================================================================== hyper-parameter tuning
def _masked_mlp(params, x, mask):
    h = jax.nn.relu(x @ params[0]["W"] + params[0]["b"]) * mask
    return h @ params[1]["W"] + params[1]["b"]


@jax.jit
def _train_configs(params0, X, y, Xv, yv, batches, lr, l2, mask):
    """vmap over configurations of: scan over epochs of (scan over mini-batches of Adam steps)."""
    from course_lib import optim

    def one(p0, lr, l2, mask):
        opt = optim.adam(lr)

        def objective(p, xb, yb):
            penalty = sum(jnp.sum(layer["W"] ** 2) for layer in p)
            return cross_entropy(_masked_mlp(p, xb, mask), yb) + l2 * penalty

        def step(carry, ib):
            p, s = carry
            loss, g = jax.value_and_grad(objective)(p, X[ib], y[ib])
            u, s = opt.update(g, s, p)
            return (jax.tree_util.tree_map(jnp.add, p, u), s), loss

        def epoch(carry, ibs):
            carry, losses = lax.scan(step, carry, ibs)
            logits = _masked_mlp(carry[0], Xv, mask)
            return carry, (jnp.mean(losses), cross_entropy(logits, yv),
                           jnp.mean(jnp.argmax(logits, -1) == yv))

        (p, _), curves = lax.scan(epoch, (p0, opt.init(p0)), batches)
        train_logits = _masked_mlp(p, X, mask)
        return p, curves, jnp.mean(jnp.argmax(train_logits, -1) == y)

    return jax.vmap(one)(params0, lr, l2, mask)


def _check_configs(X_train, y_train, X_val, y_val, learning_rates, l2s, widths, epochs, batch_size):
    """The arguments of :func:`train_mlp_configs`, checked and converted."""
    X = V.as_float_array(X_train, "X_train")
    V.check_ndim(X, "X_train", 2)
    V.check_finite(X, "X_train")
    y = V.as_int_array(y_train, "y_train")
    V.check_shape(y, "y_train", (X.shape[0],))
    Xv = V.as_float_array(X_val, "X_val")
    V.check_shape(Xv, "X_val", (None, X.shape[1]))
    V.check_finite(Xv, "X_val")
    yv = V.as_int_array(y_val, "y_val")
    V.check_shape(yv, "y_val", (Xv.shape[0],))
    lr = np.asarray(learning_rates, dtype=np.float64).reshape(-1)
    l2 = np.asarray(l2s, dtype=np.float64).reshape(-1)
    w = np.asarray(widths).reshape(-1)
    if not (len(lr) == len(l2) == len(w)) or len(lr) == 0:
        raise ValueError(f"learning_rates, l2s and widths must have the same non-zero length, "
                         f"got {len(lr)}, {len(l2)}, {len(w)}")
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0)):
        raise ValueError(f"learning_rates must be finite and > 0, got {lr}")
    if not (np.all(np.isfinite(l2)) and np.all(l2 >= 0)):
        raise ValueError(f"l2s must be finite and >= 0, got {l2}")
    if not np.issubdtype(w.dtype, np.integer) or np.any(w < 1):
        raise ValueError(f"widths must be positive integers, got {w}")
    epochs = V.check_int(epochs, "epochs", minimum=1)
    batch_size = V.check_int(batch_size, "batch_size", minimum=1)
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size must be at most the number of training rows ({X.shape[0]}), "
                         f"got {batch_size}")
    return X, y, Xv, yv, lr, l2, w, epochs, batch_size


def train_mlp_configs(X_train, y_train, X_val, y_val, *, learning_rates, l2s, widths, epochs=30,
                      batch_size=64, seed=0):
    """Train one MLP ``n_in -> width -> n_classes`` (ReLU) per configuration, all in one compiled call.

    Configuration ``c`` uses Adam with ``learning_rates[c]``, the loss
    ``cross_entropy + l2s[c] * sum(W**2)`` and ``widths[c]`` hidden units (He-initialised with seed
    ``seed + c``). Every configuration sees the same mini-batches (one permutation per epoch drawn
    from ``seed``); the last ``N mod batch_size`` rows of each permutation are skipped.

    Returns a dict of NumPy arrays: ``train_loss``, ``val_loss``, ``val_acc`` per epoch, shape
    ``(C, epochs)``; ``train_acc`` (C,) at the end; ``widths`` (C,); ``params``: the stacked,
    zero-padded parameters (use :func:`config_params` to get one configuration's network).
    Only the validation split is used for selection; the test split never enters here.

    Taught in: notebooks/15_applications.ipynb
    """
    X, y, Xv, yv, lr, l2, w, epochs, batch_size = _check_configs(
        X_train, y_train, X_val, y_val, learning_rates, l2s, widths, epochs, batch_size)
    n, d = X.shape
    n_classes = int(max(int(np.max(np.asarray(y))), int(np.max(np.asarray(yv))))) + 1
    dtype = np.dtype(X.dtype)
    H = int(w.max())
    C = len(w)
    W1 = np.zeros((C, d, H), dtype)
    W2 = np.zeros((C, H, n_classes), dtype)
    for c, width in enumerate(w):
        rng = np.random.default_rng(seed + c)
        W1[c, :, :width] = rng.standard_normal((d, width)) * np.sqrt(2.0 / d)
        W2[c, :width, :] = rng.standard_normal((width, n_classes)) * np.sqrt(2.0 / width)
    params0 = [{"W": W1, "b": np.zeros((C, H), dtype)}, {"W": W2, "b": np.zeros((C, n_classes), dtype)}]
    mask = (np.arange(H)[None, :] < w[:, None]).astype(dtype)
    rng = np.random.default_rng(seed)
    nb = n // batch_size
    batches = np.stack([rng.permutation(n)[: nb * batch_size].reshape(nb, batch_size)
                        for _ in range(epochs)]).astype(np.int32)
    params, (tl, vl, va), train_acc = _train_configs(
        params0, X, y, Xv, yv, batches, lr.astype(dtype), l2.astype(dtype), mask)
    return {"train_loss": np.asarray(tl), "val_loss": np.asarray(vl), "val_acc": np.asarray(va),
            "train_acc": np.asarray(train_acc), "widths": w.astype(int),
            "learning_rates": lr, "l2s": l2, "params": params}


@jax.jit
def _evaluate_configs(params, X, y, mask):
    logits = jax.vmap(_masked_mlp, in_axes=(0, None, 0))(params, X, mask)
    return jnp.mean(jnp.argmax(logits, -1) == y[None, :], axis=1)


def evaluate_configs(result, X, y):
    """Accuracy ``(C,)`` of every configuration of :func:`train_mlp_configs` on ``(X, y)``, in one call.

    Taught in: notebooks/15_applications.ipynb
    """
    if not isinstance(result, dict) or "params" not in result or "widths" not in result:
        raise TypeError("result must be the dict returned by train_mlp_configs")
    W1 = result["params"][0]["W"]
    X = V.as_float_array(X, "X")
    V.check_shape(X, "X", (None, W1.shape[1]))
    V.check_finite(X, "X")
    y = V.as_int_array(y, "y")
    V.check_shape(y, "y", (X.shape[0],))
    widths = np.asarray(result["widths"])
    mask = (np.arange(W1.shape[2])[None, :] < widths[:, None]).astype(W1.dtype)
    return np.asarray(_evaluate_configs(result["params"], X.astype(W1.dtype), y, mask))


def config_params(result, c):
    """The parameters ``[{"W", "b"}, {"W", "b"}]`` of configuration ``c`` of :func:`train_mlp_configs`,
    cut to its own width: a plain MLP for ``course_lib.layers.mlp_apply(params, x, "relu")``."""
    if not isinstance(result, dict) or "params" not in result or "widths" not in result:
        raise TypeError("result must be the dict returned by train_mlp_configs")
    C = len(result["widths"])
    c = V.check_int(c, "c")
    if not 0 <= c < C:
        raise ValueError(f"c must be a configuration index in [0, {C - 1}], got {c!r}")
    w = int(result["widths"][c])
    p = result["params"]
    return [{"W": p[0]["W"][c, :, :w], "b": p[0]["b"][c, :w]},
            {"W": p[1]["W"][c, :w, :], "b": p[1]["b"][c]}]


# =========================================================================================== text
TOPICS = ("weather", "sport", "food", "computers")

_TOPIC_WORDS = {
    "weather": {"noun": ("rain", "storm", "wind", "snow", "sunshine", "cloud", "fog", "forecast"),
                "verb": ("expects", "fears", "watches", "reports", "enjoys"),
                "adj": ("cold", "heavy", "warm", "grey", "strong", "wet")},
    "sport": {"noun": ("match", "goal", "team", "race", "coach", "ball", "game", "season"),
              "verb": ("wins", "loses", "watches", "trains for", "enjoys"),
              "adj": ("fast", "long", "final", "strong", "exciting", "close")},
    "food": {"noun": ("soup", "bread", "noodles", "cake", "recipe", "dinner", "rice", "tea"),
             "verb": ("cooks", "tastes", "orders", "likes", "enjoys"),
             "adj": ("hot", "sweet", "spicy", "fresh", "warm", "salty")},
    "computers": {"noun": ("laptop", "program", "screen", "keyboard", "network", "game", "bug", "server"),
                  "verb": ("fixes", "installs", "writes", "restarts", "likes"),
                  "adj": ("slow", "new", "fast", "broken", "quiet", "old")},
}
_SUBJECTS = ("my sister", "the teacher", "our neighbour", "a student", "the old man", "everyone",
             "my friend", "the child")
_TIMES = ("today", "yesterday", "every morning", "last week", "again", "at night", "this year")
_TEMPLATES = (
    "{subj} {verb} the {adj} {noun} {time}.",
    "the {noun} was {adj} {time}.",
    "{subj} says the {noun} is {adj}.",
    "{subj} {verb} the {noun}.",
)


def make_topic_corpus(n_per_topic=150, *, noise=0.1, seed=0):
    """Short English sentences about four topics (``TOPICS``), written by a small grammar.

    Each sentence fills one of four templates with a subject, a time phrase (shared by all topics)
    and a noun, verb and adjective of its topic. Some words belong to two topics ("game",
    "enjoys", "warm", "fast", ...), and with probability ``noise`` the noun is taken from another
    topic, so the task is not perfectly separable. Deterministic for a ``seed``; no download.

    Returns ``(texts, labels, topics)``: a list of ``4 * n_per_topic`` strings in shuffled order,
    int32 labels (index into ``topics``), and ``TOPICS``.

    Taught in: notebooks/15_applications.ipynb
    """
    n_per_topic = V.check_int(n_per_topic, "n_per_topic", minimum=1)
    V.check_number(noise, "noise", low=0)
    if float(noise) > 1:
        raise ValueError(f"noise must lie in [0, 1], got {noise!r}")
    rng = np.random.default_rng(seed)
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    texts, labels = [], []
    for label, topic in enumerate(TOPICS):
        words = _TOPIC_WORDS[topic]
        for _ in range(n_per_topic):
            noun_topic = topic
            if rng.random() < noise:
                noun_topic = TOPICS[(label + 1 + rng.integers(len(TOPICS) - 1)) % len(TOPICS)]
            texts.append(pick(_TEMPLATES).format(
                subj=pick(_SUBJECTS), verb=pick(words["verb"]), adj=pick(words["adj"]),
                noun=pick(_TOPIC_WORDS[noun_topic]["noun"]), time=pick(_TIMES)))
            labels.append(label)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.asarray(labels, np.int32)[order], TOPICS


LEVELS = ("word", "char")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _check_level(level):
    return V.check_option(level, "level", LEVELS)


def _check_texts(texts, name="texts"):
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
    return texts


def tokenize(text, level="word"):
    """Lower-case tokens of ``text``: words (runs of letters/digits, "it's" is one word) for
    ``level="word"``, single characters (spaces and punctuation included) for ``"char"``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    _check_level(level)
    text = text.lower()
    return _WORD.findall(text) if level == "word" else list(text)


def build_vocabulary(texts, level="word", min_count=1):
    """The tokens that occur at least ``min_count`` times in ``texts``, sorted alphabetically.

    Build it from the *training* texts only: a word seen only in validation or test data must be
    unknown to the model (it is ignored by :func:`bag_of_words`), as it will be in deployment.
    """
    _check_texts(texts)
    _check_level(level)
    min_count = V.check_int(min_count, "min_count", minimum=1)
    counts = Counter(tok for t in texts for tok in tokenize(t, level))
    return tuple(sorted(tok for tok, c in counts.items() if c >= min_count))


def bag_of_words(texts, vocab, level="word", binary=False):
    """Count matrix ``X[i, j]`` = number of times ``vocab[j]`` occurs in ``texts[i]`` (float32).

    Tokens not in ``vocab`` are ignored; ``binary=True`` gives presence (0/1) instead of counts.
    Word order is thrown away: "the dog bites the man" and "the man bites the dog" get the same row.
    Equals ``sklearn.feature_extraction.text.CountVectorizer`` with a fixed vocabulary.
    """
    _check_texts(texts)
    _check_level(level)
    if isinstance(vocab, str) or not isinstance(vocab, (list, tuple)) or not vocab:
        raise TypeError("vocab must be a non-empty tuple or list of tokens (from build_vocabulary)")
    index = {tok: j for j, tok in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError("vocab must not contain duplicate tokens")
    X = np.zeros((len(texts), len(vocab)), np.float32)
    for i, t in enumerate(texts):
        for tok in tokenize(t, level):
            j = index.get(tok)
            if j is not None:
                X[i, j] += 1.0
    return (X > 0).astype(np.float32) if binary else X


def fit_text_classifier(texts, labels, *, texts_val=None, labels_val=None, level="word", hidden=None,
                        epochs=30, batch_size=32, learning_rate=1e-2, seed=0):
    """Bag-of-words features -> softmax regression (``hidden=None``) or a one-hidden-layer MLP.

    The vocabulary is built from ``texts`` (training texts) only; training uses
    ``course_lib.training.fit`` with Adam. Returns a model dict ``{"vocab", "level", "params",
    "history"}`` for :func:`classify_texts`.

    Taught in: notebooks/15_applications.ipynb
    """
    from course_lib import layers, optim, training
    _check_texts(texts)
    y = np.asarray(V.as_int_array(labels, "labels"))
    if y.shape != (len(texts),):
        raise ValueError(f"labels must have shape ({len(texts)},) like texts, got {y.shape}")
    if (texts_val is None) != (labels_val is None):
        raise ValueError("texts_val and labels_val must be given together (or both left out)")
    vocab = build_vocabulary(texts, level)
    n_classes = int(y.max()) + 1
    sizes = ((len(vocab), n_classes) if hidden is None
             else (len(vocab), V.check_int(hidden, "hidden", minimum=1), n_classes))
    params = layers.init_mlp(sizes, "xavier", seed=seed)
    kwargs = {}
    if texts_val is not None:
        _check_texts(texts_val, "texts_val")
        kwargs = {"X_val": bag_of_words(texts_val, vocab, level), "y_val": labels_val}
    params, history = training.fit(partial(layers.mlp_apply, activation="relu"), params,
                                   optim.adam(learning_rate), bag_of_words(texts, vocab, level), y,
                                   epochs=epochs, batch_size=batch_size, seed=seed, **kwargs)
    return {"vocab": vocab, "level": level, "params": params, "history": history}


def classify_texts(model, texts):
    """Class probabilities ``(N, K)`` of a model from :func:`fit_text_classifier` for new texts."""
    from course_lib import layers
    if not isinstance(model, dict) or not {"vocab", "level", "params"} <= set(model):
        raise TypeError("model must be the dict returned by fit_text_classifier")
    _check_texts(texts)
    logits = layers.mlp_apply(model["params"], bag_of_words(texts, model["vocab"], model["level"]), "relu")
    return np.asarray(jax.nn.softmax(logits, axis=-1))


# ============================================================================ character generation
@jax.jit
def _temperature_softmax(logits, temperature):
    return jax.nn.softmax(logits / temperature, axis=-1)


def temperature_softmax(logits, temperature=1.0):
    """``softmax(logits / T)`` along the last axis: the distribution a sampler draws from.

    T = 1 is the model's own distribution; T < 1 sharpens it (T -> 0: all mass on the argmax),
    T > 1 flattens it (T -> inf: uniform). The order of the probabilities never changes.
    """
    logits = V.as_float_array(logits, "logits")
    V.check_finite(logits, "logits")
    V.check_number(temperature, "temperature", low=0, low_open=True)
    return _temperature_softmax(logits, jnp.asarray(temperature, logits.dtype))


def train_char_model(text, *, kind="gru", hidden_size=64, seq_len=48, batch_size=32, steps=300,
                     learning_rate=1e-2, seed=0):
    """A character-level language model (``course_lib.recurrent``) trained on ``text``.

    Random windows of ``seq_len + 1`` characters; at every position the model predicts the next
    character (cross-entropy), Adam with global-norm clipping 1.0, ``steps`` steps in one compiled
    loop. Returns ``(params, vocab, losses)``: ``vocab`` the sorted characters (a string),
    ``losses`` the training loss per step in nats per character.

    Taught in: notebooks/15_applications.ipynb
    """
    from course_lib import optim
    from course_lib import recurrent as R
    if not isinstance(text, str) or not text:
        raise TypeError("text must be a non-empty string")
    V.check_option(kind, "kind", R.KINDS)
    hidden_size = V.check_int(hidden_size, "hidden_size", minimum=1)
    seq_len = V.check_int(seq_len, "seq_len", minimum=1)
    batch_size, steps = V.check_int(batch_size, "batch_size", minimum=1), V.check_int(steps, "steps", minimum=1)
    if len(text) < seq_len + 1:
        raise ValueError(f"text must be longer than seq_len + 1 = {seq_len + 1} characters, got {len(text)}")
    vocab = R.char_vocabulary(text)
    ids = jnp.asarray(R.encode_text(text, vocab))
    params = R.init_sequence_model(kind, len(vocab), hidden_size, len(vocab), seed=seed)
    params, losses = R.fit(_char_fns(kind, len(vocab), batch_size, seq_len)[0], params,
                           _char_fns(kind, len(vocab), batch_size, seq_len)[1],
                           jax.random.PRNGKey(seed), steps=steps, optimizer=optim.adam(learning_rate),
                           clip_norm=1.0, data=ids)
    return params, vocab, np.asarray(losses)


@lru_cache(maxsize=None)
def _char_fns(kind, n_vocab, batch_size, seq_len):
    """The loss and batch functions, one object per setting (so R.fit's compiled loop is reused)."""
    return partial(_char_loss, kind, n_vocab), partial(_char_batch, batch_size, seq_len, n_vocab)


def _char_batch(batch_size, seq_len, n_vocab, key, ids):
    from course_lib import recurrent as R
    w = R.random_windows(key, ids, batch_size, seq_len + 1)
    return jax.nn.one_hot(w[:, :-1], n_vocab, dtype=jnp.float32), w[:, 1:]


def _char_loss(kind, n_vocab, params, batch):
    from course_lib import recurrent as R
    inputs, targets = batch
    logits, _ = R.sequence_model(kind, params, inputs)
    return R.sequence_cross_entropy(logits, targets)


def sample_text(params, vocab, prompt, n_chars, *, kind="gru", temperature=1.0, seed=0):
    """Read ``prompt`` (a string of characters in ``vocab``), then draw ``n_chars`` characters one by
    one from ``temperature_softmax(logits, temperature)``, feeding each back in. Returns the new
    characters (without the prompt)."""
    from course_lib import recurrent as R
    if not isinstance(prompt, str) or not prompt:
        raise TypeError("prompt must be a non-empty string")
    if not isinstance(vocab, str):
        raise TypeError("vocab must be the string returned by train_char_model")
    ids = R.generate(kind, params, R.encode_text(prompt, vocab), n_chars, jax.random.PRNGKey(seed),
                     temperature=temperature)
    return R.decode_text(np.asarray(ids), vocab)


# ================================================================================== deployment
CARD_FORMAT = "course-model-card"
CARD_VERSION = 1
_PARAMS_FILE = "params.npz"
_CARD_FILE = "model_card.json"


def _sha256_file(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def save_model(directory, params, *, input_shape, classes, input_range, scale=1.0,
               activation="relu", description="", metrics=None):
    """Write a deployable MLP classifier: ``directory/params.npz`` + ``directory/model_card.json``.

    The card (JSON, human-readable) records what a caller must know to use the model::

        {"format": "course-model-card", "version": 1, "description": ...,
         "architecture": {"type": "mlp", "sizes": [64, 48, 10], "activation": "relu"},
         "input": {"shape": [8, 8], "range": [0, 16], "dtype": "float32"},
         "preprocessing": {"scale": 0.0625, "flatten": true},   # x_model = (x * scale).reshape(N, -1)
         "classes": ["0", ..., "9"], "metrics": {...},
         "params_file": "params.npz", "params_sha256": "..."}

    Parameters are stored as float32. Returns the paths written ``(params_path, card_path)``.

    Taught in: notebooks/15_applications.ipynb
    """
    from course_lib import layers, serialization
    sizes = layers.layer_sizes(params)
    V.check_option(activation, "activation", layers.ACTIVATIONS)
    shape = [int(s) for s in input_shape]
    if int(np.prod(shape)) != sizes[0]:
        raise ValueError(f"input_shape {tuple(shape)} has {int(np.prod(shape))} values but the network "
                         f"expects {sizes[0]} inputs")
    classes = [str(c) for c in classes]
    if len(classes) != sizes[-1]:
        raise ValueError(f"classes must name the {sizes[-1]} outputs of the network, got {len(classes)}")
    lo, hi = (float(v) for v in input_range)
    if not lo < hi:
        raise ValueError(f"input_range must be (low, high) with low < high, got {input_range!r}")
    V.check_number(scale, "scale", low=0, low_open=True)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params = [{"W": np.asarray(layer["W"], np.float32), "b": np.asarray(layer["b"], np.float32)}
              for layer in params]
    params_path = serialization.save_params(directory / _PARAMS_FILE, params)
    card = {"format": CARD_FORMAT, "version": CARD_VERSION, "description": str(description),
            "architecture": {"type": "mlp", "sizes": list(sizes), "activation": activation},
            "input": {"shape": shape, "range": [lo, hi], "dtype": "float32"},
            "preprocessing": {"scale": float(scale), "flatten": True},
            "classes": classes, "metrics": metrics or {},
            "params_file": _PARAMS_FILE, "params_sha256": _sha256_file(params_path)}
    card_path = directory / _CARD_FILE
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return params_path, card_path


def load_model(directory):
    """Read a model written by :func:`save_model`; returns ``{"params", "card"}`` for :func:`predict`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupted card or
    parameter file, a parameter file that does not belong to the card (checksum), or parameters
    whose shapes do not match the card's architecture.
    """
    from course_lib import serialization
    directory = pathlib.Path(directory)
    card_path = directory / _CARD_FILE
    if not card_path.exists():
        raise FileNotFoundError(f"directory: no model card at {card_path}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if card.get("format") != CARD_FORMAT or card.get("version") != CARD_VERSION:
            raise ValueError(f"{card_path} is not a {CARD_FORMAT} version {CARD_VERSION} file")
        sizes = [int(s) for s in card["architecture"]["sizes"]]
        params_path = directory / card["params_file"]
        expected_sha = card["params_sha256"]
        _ = (card["input"]["shape"], card["input"]["range"], card["preprocessing"]["scale"], card["classes"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"corrupted model card {card_path}: {type(exc).__name__}: {exc}") from None
    if not params_path.exists():
        raise FileNotFoundError(f"directory: the card names {params_path.name}, which does not exist")
    if _sha256_file(params_path) != expected_sha:
        raise ValueError(f"{params_path} does not belong to {card_path}: its SHA-256 differs from the "
                         f"card's params_sha256 (the file was corrupted, or replaced by another model)")
    like = [{"W": np.zeros((a, b), np.float32), "b": np.zeros((b,), np.float32)}
            for a, b in zip(sizes[:-1], sizes[1:])]
    params = serialization.load_params(params_path, like=like)
    return {"params": params, "card": card}


@partial(jax.jit, static_argnames="activation")
def _predict_core(params, x, scale, activation):
    from course_lib import layers
    logits = layers.mlp_apply(params, x.reshape(x.shape[0], -1) * scale, activation)
    return jax.nn.softmax(logits, axis=-1)


def predict(model, x):
    """Classify ``x`` with a model from :func:`load_model`: returns ``(classes, probabilities)``.

    ``x``: one input of the card's shape (e.g. (8, 8)) -> ``(class name, probabilities (K,))``, or a
    batch ``(N, *shape)`` -> ``(list of N class names, probabilities (N, K))``. Checked before use:
    numeric dtype (``TypeError`` otherwise), shape, no NaN/inf, values inside the card's range
    (``ValueError`` naming what was expected). The card's preprocessing is applied here, so
    callers pass raw inputs exactly as described in the card.

    Taught in: notebooks/15_applications.ipynb
    """
    if not isinstance(model, dict) or not {"params", "card"} <= set(model):
        raise TypeError("model must be the dict returned by load_model(directory)")
    card = model["card"]
    shape = tuple(card["input"]["shape"])
    lo, hi = card["input"]["range"]
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"x must be a numeric array of shape {shape} or (N, {', '.join(map(str, shape))}), "
                        f"got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists
        raise TypeError(f"x must be a numeric array: {exc}") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"x must hold integer or real floating-point numbers, got dtype {arr.dtype}")
    single = arr.shape == shape
    if not single and arr.shape[1:] != shape:
        raise ValueError(f"x must have shape {shape} (one input) or (N, {', '.join(map(str, shape))}) "
                         f"(a batch), got {arr.shape}")
    if arr.size and arr.ndim == len(shape) + 1 and arr.shape[0] == 0:
        raise ValueError("x must hold at least one input")
    V.check_finite(arr, "x")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"x must lie in [{lo:g}, {hi:g}] (the model card's input range), got values "
                         f"in [{float(arr.min()):g}, {float(arr.max()):g}]; preprocessing is applied by predict")
    batch = arr[None] if single else arr
    if batch.shape[0] == 0:
        raise ValueError("x must hold at least one input")
    probs = np.asarray(_predict_core(model["params"], jnp.asarray(batch, jnp.float32),
                                     np.float32(card["preprocessing"]["scale"]),
                                     card["architecture"]["activation"]))
    names = [card["classes"][i] for i in probs.argmax(axis=1)]
    return (names[0], probs[0]) if single else (names, probs)


# ================================================================================ error analysis
def most_confident_errors(probs, y_true, k=8):
    """Indices of the ``k`` misclassified rows whose predicted class got the highest probability
    (the most confidently wrong first; ties keep the earlier row). Fewer if there are fewer errors."""
    p = V.as_float_array(probs, "probs")
    V.check_ndim(p, "probs", 2)
    V.check_finite(p, "probs")
    y = np.asarray(V.as_int_array(y_true, "y_true"))
    V.check_shape(y, "y_true", (p.shape[0],))
    k = V.check_int(k, "k", minimum=1)
    p = np.asarray(p)
    pred = p.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    conf = p[wrong, pred[wrong]]
    order = np.argsort(-conf, kind="stable")
    return wrong[order[:k]]


def top_confusions(cm, k=5):
    """The ``k`` largest off-diagonal entries of a confusion matrix (rows: truth, columns:
    prediction) as ``[(true, predicted, count), ...]``, largest first, zero counts left out."""
    cm = np.asarray(V.as_int_array(cm, "cm"))
    V.check_ndim(cm, "cm", 2)
    if cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be square, got shape {cm.shape}")
    k = V.check_int(k, "k", minimum=1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off.reshape(-1), kind="stable")[:k]
    return [(int(i // cm.shape[0]), int(i % cm.shape[0]), int(off.reshape(-1)[i]))
            for i in flat if off.reshape(-1)[i] > 0]
