"""course_lib.applications: tuning grid vs optax, text features vs scikit-learn, temperature sampling,
the deployable predict (round trip, corrupted / mismatched files, input errors), error analysis."""
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix as sk_confusion

from course_lib import applications as A
from course_lib import layers
from course_lib import recurrent as R


# ------------------------------------------------------------------------------ tuning grid
def _toy(n=40, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, size=n).astype(np.int32)
    return X, y


def _reference_run(X, y, width, lr, l2, epochs, batch_size, seed, c):
    """The same training written independently: an unpadded MLP, jax.grad and optax.adam."""
    d, k = X.shape[1], int(y.max()) + 1
    rng = np.random.default_rng(seed + c)
    p = [{"W": rng.standard_normal((d, width)) * np.sqrt(2.0 / d), "b": np.zeros(width)},
         {"W": rng.standard_normal((width, k)) * np.sqrt(2.0 / width), "b": np.zeros(k)}]
    p = jax.tree_util.tree_map(jnp.asarray, p)

    def loss(p, xb, yb):
        h = jax.nn.relu(xb @ p[0]["W"] + p[0]["b"])
        logits = h @ p[1]["W"] + p[1]["b"]
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(yb)), yb])
        return ce + l2 * (jnp.sum(p[0]["W"] ** 2) + jnp.sum(p[1]["W"] ** 2))

    opt = optax.adam(lr)

    @jax.jit
    def step(p, state, xb, yb):
        u, state = opt.update(jax.grad(loss)(p, xb, yb), state, p)
        return optax.apply_updates(p, u), state

    state = opt.init(p)
    order = np.random.default_rng(seed)
    nb = len(X) // batch_size
    for _ in range(epochs):
        perm = order.permutation(len(X))[: nb * batch_size].reshape(nb, batch_size)
        for ib in perm:
            p, state = step(p, state, X[ib], y[ib])
    return p


def test_grid_configs_equal_separately_trained_networks_with_optax():
    X, y = _toy()
    Xv, yv = _toy(n=20, seed=1)
    lrs, l2s, widths = [0.05, 0.01, 0.02], [0.0, 1e-3, 1e-2], [4, 7, 2]
    r = A.train_mlp_configs(X, y, Xv, yv, learning_rates=lrs, l2s=l2s, widths=widths, epochs=3,
                            batch_size=8, seed=3)
    assert r["val_acc"].shape == (3, 3) and r["train_loss"].shape == (3, 3)
    for c in range(3):
        ref = _reference_run(X, y, widths[c], lrs[c], l2s[c], 3, 8, 3, c)
        got = A.config_params(r, c)
        for lg, lr_ in zip(got, ref):
            np.testing.assert_allclose(lg["W"], lr_["W"], rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(lg["b"], lr_["b"], rtol=1e-9, atol=1e-11)
        # the reported validation accuracy is that of the sliced network
        acc = np.mean(np.argmax(layers.mlp_apply(got, Xv, "relu"), -1) == yv)
        assert r["val_acc"][c, -1] == pytest.approx(acc)
    accs = A.evaluate_configs(r, Xv, yv)
    for c in range(3):
        acc = np.mean(np.argmax(layers.mlp_apply(A.config_params(r, c), Xv, "relu"), -1) == yv)
        assert accs[c] == pytest.approx(acc)
    with pytest.raises(ValueError, match="X must have shape"):
        A.evaluate_configs(r, Xv[:, :2], yv)
    with pytest.raises(TypeError, match="train_mlp_configs"):
        A.evaluate_configs({}, Xv, yv)
    # the padding of the narrow networks never moves away from zero
    W1 = np.asarray(r["params"][0]["W"])
    assert np.all(W1[2, :, 2:] == 0) and np.all(np.asarray(r["params"][1]["W"])[0, 4:] == 0)


def test_grid_bad_arguments():
    X, y = _toy()
    kw = dict(learning_rates=[0.1], l2s=[0.0], widths=[3])
    with pytest.raises(ValueError, match="same non-zero length"):
        A.train_mlp_configs(X, y, X, y, learning_rates=[0.1, 0.2], l2s=[0.0], widths=[3])
    with pytest.raises(ValueError, match="learning_rates"):
        A.train_mlp_configs(X, y, X, y, learning_rates=[-1.0], l2s=[0.0], widths=[3])
    with pytest.raises(ValueError, match="widths"):
        A.train_mlp_configs(X, y, X, y, learning_rates=[0.1], l2s=[0.0], widths=[0])
    with pytest.raises(ValueError, match="X_val"):
        A.train_mlp_configs(X, y, X[:, :2], y, **kw)
    with pytest.raises(ValueError, match="X_train must be finite"):
        A.train_mlp_configs(np.where(X > 1, np.nan, X), y, X, y, **kw)
    with pytest.raises(TypeError, match="y_train"):
        A.train_mlp_configs(X, y.astype(float), X, y, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        A.train_mlp_configs(X, y, X, y, batch_size=1000, **kw)
    r = A.train_mlp_configs(X, y, X, y, epochs=1, batch_size=20, **kw)
    with pytest.raises(ValueError, match="configuration index"):
        A.config_params(r, 1)
    with pytest.raises(TypeError, match="train_mlp_configs"):
        A.config_params({}, 0)


# ------------------------------------------------------------------------------------- text
def test_topic_corpus_is_deterministic_and_labelled():
    t1, y1, topics = A.make_topic_corpus(30, seed=4)
    t2, y2, _ = A.make_topic_corpus(30, seed=4)
    t3, _, _ = A.make_topic_corpus(30, seed=5)
    assert t1 == t2 and np.array_equal(y1, y2) and t1 != t3
    assert topics == A.TOPICS and len(t1) == 120 and y1.dtype == np.int32
    assert np.bincount(y1).tolist() == [30, 30, 30, 30]
    # without noise every noun comes from the sentence's own topic
    texts, labels, _ = A.make_topic_corpus(40, noise=0.0, seed=1)
    for text, label in zip(texts, labels):
        own = set(A._TOPIC_WORDS[topics[label]]["noun"])
        words = set(A.tokenize(text))
        others = set().union(*(A._TOPIC_WORDS[t]["noun"] for t in topics if t != topics[label])) - own
        assert words & own and not words & others
    with pytest.raises(ValueError, match="noise"):
        A.make_topic_corpus(10, noise=1.5)
    with pytest.raises(ValueError, match="n_per_topic"):
        A.make_topic_corpus(0)


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("binary", [False, True])
def test_bag_of_words_equals_sklearn_count_vectorizer(level, binary):
    texts, _, _ = A.make_topic_corpus(20, seed=0)
    train, new = texts[:60], texts[60:] + ["Unknown WORDS, and the rain!"]
    vocab = A.build_vocabulary(train, level)
    if level == "word":
        cv = CountVectorizer(vocabulary=list(vocab), token_pattern=r"[a-z0-9]+(?:'[a-z]+)?", binary=binary)
    else:
        cv = CountVectorizer(vocabulary=list(vocab), analyzer="char", binary=binary)
    np.testing.assert_array_equal(A.bag_of_words(new, vocab, level, binary=binary), cv.transform(new).toarray())
    assert vocab == tuple(sorted(vocab))


def test_bag_of_words_forgets_word_order_and_vocab_comes_from_training_texts():
    vocab = A.build_vocabulary(["the dog bites the man"])
    a, b = A.bag_of_words(["the dog bites the man", "the man bites the dog"], vocab)
    np.testing.assert_array_equal(a, b)
    assert A.build_vocabulary(["a a b", "b c"], min_count=2) == ("a", "b")
    assert A.tokenize("It's RAINING, 2 days!") == ["it's", "raining", "2", "days"]
    assert A.tokenize("Hi!", "char") == ["h", "i", "!"]


def test_text_bad_arguments():
    with pytest.raises(TypeError, match="texts must be a list"):
        A.bag_of_words("one string", ("a",))
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        A.build_vocabulary(["ok", 3])
    with pytest.raises(ValueError, match="level"):
        A.tokenize("a b", "sentence")
    with pytest.raises(TypeError, match="vocab"):
        A.bag_of_words(["a"], ())
    with pytest.raises(ValueError, match="duplicate"):
        A.bag_of_words(["a"], ("a", "a"))
    with pytest.raises(ValueError, match="min_count"):
        A.build_vocabulary(["a"], min_count=0)


def test_text_classifier_matches_sklearn_logistic_regression():
    texts, labels, _ = A.make_topic_corpus(100, seed=2)
    tr, va = slice(0, 300), slice(300, 400)
    model = A.fit_text_classifier(texts[tr], labels[tr], texts_val=texts[va], labels_val=labels[va],
                                  epochs=40, seed=0)
    probs = A.classify_texts(model, texts[va])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    ours = np.mean(probs.argmax(1) == labels[va])
    X = A.bag_of_words(texts[tr], model["vocab"])
    ref = LogisticRegression(C=10.0, solver="newton-cg", max_iter=200).fit(X, labels[tr])
    theirs = ref.score(A.bag_of_words(texts[va], model["vocab"]), labels[va])
    assert ours >= theirs - 0.05 and ours > 0.8
    assert model["history"]["val_acc"][-1] == pytest.approx(ours, abs=1e-6)
    with pytest.raises(ValueError, match="labels must have shape"):
        A.fit_text_classifier(texts[:10], labels[:9])
    with pytest.raises(TypeError, match="fit_text_classifier"):
        A.classify_texts({"params": 1}, ["a"])


# ------------------------------------------------------------------------- text generation
def test_temperature_softmax_against_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 6)) * 3
    for T in (0.25, 1.0, 3.0):
        e = np.exp((z - z.max(1, keepdims=True)) / T)
        np.testing.assert_allclose(A.temperature_softmax(z, T), e / e.sum(1, keepdims=True), rtol=1e-12)
    cold = np.asarray(A.temperature_softmax(z, 1e-3))
    np.testing.assert_allclose(cold, np.eye(6)[z.argmax(1)], atol=1e-12)
    hot = np.asarray(A.temperature_softmax(z, 1e6))
    np.testing.assert_allclose(hot, 1 / 6, atol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        A.temperature_softmax(z, 0.0)
    with pytest.raises(ValueError, match="logits must be finite"):
        A.temperature_softmax(np.array([np.nan, 1.0]), 1.0)
    with pytest.raises(TypeError, match="logits"):
        A.temperature_softmax(np.array([1, 2]), 1.0)


def test_sample_text_draws_from_the_temperature_softmax():
    vocab = "abcd"
    params = R.init_sequence_model("gru", 4, 8, 4, seed=0)
    params = {**params, "W_out": params["W_out"] * 6.0, "b_out": jnp.array([0.5, 0.0, -0.5, 0.2])}
    logits, _ = R.sequence_model("gru", params, jax.nn.one_hot(jnp.array([[0, 2]]), 4))
    for T in (0.5, 2.0):
        p = np.asarray(A.temperature_softmax(logits[0, -1], T))
        n = 600
        draws = [A.sample_text(params, vocab, "ac", 1, temperature=T, seed=s) for s in range(n)]
        freq = np.array([draws.count(ch) for ch in vocab]) / n
        np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / n) + 1e-3)
    assert A.sample_text(params, vocab, "ab", 20, seed=1) == A.sample_text(params, vocab, "ab", 20, seed=1)
    with pytest.raises(ValueError, match="not in vocab"):
        A.sample_text(params, vocab, "xyz", 3)
    with pytest.raises(TypeError, match="prompt"):
        A.sample_text(params, vocab, "", 3)


def test_train_char_model_learns_a_repeating_text():
    text = "abcd" * 60
    params, vocab, losses = A.train_char_model(text, hidden_size=16, seq_len=12, batch_size=16, steps=80,
                                               learning_rate=3e-2, seed=0)
    assert vocab == "abcd" and losses.shape == (80,)
    assert losses[-10:].mean() < 0.1 * losses[:5].mean()
    assert A.sample_text(params, vocab, "ab", 8, temperature=0.2, seed=0) == "cdabcdab"
    with pytest.raises(ValueError, match="seq_len"):
        A.train_char_model("abc", seq_len=10)
    with pytest.raises(ValueError, match="kind"):
        A.train_char_model(text, kind="transformer")


# ------------------------------------------------------------------------------- deployment
@pytest.fixture
def deployed(tmp_path):
    params = layers.init_mlp((6, 5, 3), seed=1)
    params = [{"W": l["W"].astype(np.float32), "b": (l["b"] + 0.1).astype(np.float32)} for l in params]
    A.save_model(tmp_path / "m", params, input_shape=(2, 3), classes=["cat", "dog", "owl"],
                 input_range=(0, 16), scale=1 / 16, description="toy", metrics={"val_acc": 0.5})
    return tmp_path / "m", params


def _numpy_forward(params, x):
    h = np.maximum(x.reshape(len(x), -1).astype(np.float64) / 16 @ np.asarray(params[0]["W"], np.float64)
                   + np.asarray(params[0]["b"], np.float64), 0)
    z = h @ np.asarray(params[1]["W"], np.float64) + np.asarray(params[1]["b"], np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_round_trip_gives_identical_predictions(deployed):
    path, params = deployed
    card = json.loads((path / "model_card.json").read_text())
    assert card["architecture"]["sizes"] == [6, 5, 3] and card["input"]["shape"] == [2, 3]
    assert card["preprocessing"] == {"flatten": True, "scale": 1 / 16}
    model = A.load_model(path)
    for a, b in zip(jax.tree_util.tree_leaves(model["params"]), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = np.random.default_rng(0).integers(0, 17, size=(7, 2, 3))
    names, probs = A.predict(model, x)
    ref = _numpy_forward(params, x)
    np.testing.assert_allclose(probs, ref, rtol=1e-5, atol=1e-6)
    assert names == [["cat", "dog", "owl"][i] for i in ref.argmax(1)]
    name, p1 = A.predict(model, x[3].astype(np.float32))
    assert name == names[3] and p1.shape == (3,)
    np.testing.assert_allclose(p1, probs[3], rtol=1e-6)
    again, _ = A.predict(A.load_model(path), x)
    assert again == names


def test_corrupted_or_mismatched_files_give_clear_errors(deployed, tmp_path):
    path, params = deployed
    # a byte flipped inside the parameter archive: the card's checksum no longer matches
    blob = bytearray((path / "params.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "params.npz").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not belong"):
        A.load_model(path)
    # a different model of the same architecture put in its place
    other = layers.init_mlp((6, 5, 3), seed=9)
    A.save_model(tmp_path / "o", other, input_shape=(2, 3), classes="abc", input_range=(0, 16))
    (path / "params.npz").write_bytes((tmp_path / "o" / "params.npz").read_bytes())
    with pytest.raises(ValueError, match="does not belong"):
        A.load_model(path)
    # the card edited to a different architecture (checksum kept): load_params reports the mismatch
    card = json.loads((tmp_path / "o" / "model_card.json").read_text())
    card["architecture"]["sizes"] = [6, 4, 3]
    (tmp_path / "o" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"mismatched.*0/W"):
        A.load_model(tmp_path / "o")
    # a truncated parameter file whose checksum was (wrongly) updated: serialization catches it
    data = (tmp_path / "o" / "params.npz").read_bytes()[:200]
    (tmp_path / "o" / "params.npz").write_bytes(data)
    card["architecture"]["sizes"] = [6, 5, 3]
    card["params_sha256"] = A._sha256_file(tmp_path / "o" / "params.npz")
    (tmp_path / "o" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="corrupted"):
        A.load_model(tmp_path / "o")
    # a broken card
    (tmp_path / "o" / "model_card.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted model card"):
        A.load_model(tmp_path / "o")
    (tmp_path / "o" / "model_card.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a course-model-card"):
        A.load_model(tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="model card"):
        A.load_model(tmp_path / "nowhere")


def test_save_model_bad_arguments(tmp_path):
    params = layers.init_mlp((6, 5, 3), seed=1)
    with pytest.raises(ValueError, match="input_shape"):
        A.save_model(tmp_path, params, input_shape=(2, 2), classes="abc", input_range=(0, 1))
    with pytest.raises(ValueError, match="classes"):
        A.save_model(tmp_path, params, input_shape=(6,), classes="ab", input_range=(0, 1))
    with pytest.raises(ValueError, match="input_range"):
        A.save_model(tmp_path, params, input_shape=(6,), classes="abc", input_range=(1, 0))
    with pytest.raises(ValueError, match="activation"):
        A.save_model(tmp_path, params, input_shape=(6,), classes="abc", input_range=(0, 1), activation="gelu")


def test_predict_input_errors(deployed):
    model = A.load_model(deployed[0])
    good = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(2, 3\).*got \(3, 2\)"):
        A.predict(model, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"got \(4, 6\)"):
        A.predict(model, np.zeros((4, 6)))
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN"):
        A.predict(model, np.where(np.arange(6).reshape(2, 3) == 4, np.nan, good))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 16\].*\[0, 255\]"):
        A.predict(model, np.where(np.arange(6).reshape(2, 3) == 1, 255, 0))
    with pytest.raises(ValueError, match=r"lie in"):
        A.predict(model, good - 1)
    with pytest.raises(TypeError, match="dtype bool"):
        A.predict(model, good.astype(bool))
    with pytest.raises(TypeError, match="x must be a numeric array"):
        A.predict(model, "an image")
    with pytest.raises(TypeError, match="complex"):
        A.predict(model, good.astype(complex))
    with pytest.raises(ValueError, match="at least one"):
        A.predict(model, np.zeros((0, 2, 3)))
    with pytest.raises(TypeError, match="load_model"):
        A.predict({"params": model["params"]}, good)


# ---------------------------------------------------------------------------- error analysis
def test_most_confident_errors_against_brute_force():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, size=50)
    got = A.most_confident_errors(probs, y, k=6)
    wrong = [(-probs[i].max(), i) for i in range(50) if probs[i].argmax() != y[i]]
    assert got.tolist() == [i for _, i in sorted(wrong)[:6]]
    assert len(A.most_confident_errors(probs, probs.argmax(1), k=3)) == 0
    with pytest.raises(ValueError, match="y_true"):
        A.most_confident_errors(probs, y[:3])
    with pytest.raises(ValueError, match="probs must be finite"):
        A.most_confident_errors(np.full((2, 2), np.nan), np.array([0, 1]))


def test_top_confusions_against_sklearn():
    rng = np.random.default_rng(1)
    yt, yp = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    cm = sk_confusion(yt, yp)
    got = A.top_confusions(cm, k=4)
    pairs = sorted(((-cm[i, j], i, j) for i in range(5) for j in range(5) if i != j))[:4]
    assert [c for *_, c in got] == [-c for c, _, _ in pairs]
    for i, j, c in got:
        assert i != j and cm[i, j] == c
    assert A.top_confusions(np.eye(3, dtype=int) * 5) == []
    with pytest.raises(ValueError, match="square"):
        A.top_confusions(np.zeros((2, 3), int))
    with pytest.raises(TypeError, match="cm"):
        A.top_confusions(np.zeros((2, 2)))
