"""Chapter 18's attention-map explorer, driven headlessly: it shows transformer_forward's weights."""
import numpy as np
import pytest

from course_lib import attention as A
from course_lib.widgets import attention_maps as AM


@pytest.fixture(scope="module")
def untrained():
    params = A.init_transformer(len(AM.LETTERS) + 1, 2 * AM.LENGTH, seed=0)
    return params, AM.build_attention_maps(params)


def test_every_panel_is_a_head_of_transformer_forward(untrained):
    params, w = untrained
    for text in ("abcdefghijklmnop", "xwvutsrqponmlkji"):
        before = w.live.image.value
        w.controls["text"].value = text
        assert w.live.image.value != before
        logits, maps = A.transformer_forward(params, AM.reverse_tokens(text))
        np.testing.assert_allclose(w.values["maps"], np.asarray(maps)[:, 0], rtol=1e-5, atol=1e-7)
        for i, image in enumerate(w.images):
            np.testing.assert_allclose(image.get_array(), w.values["maps"][i // w.n_heads, i % w.n_heads])
        predicted = np.asarray(logits)[0, AM.LENGTH:].argmax(-1)
        assert w.values["output"] == "".join((AM.LETTERS + "|")[i] for i in predicted)
        assert text in w.readout.value


def test_example_menu_sets_the_text_and_bad_text_is_explained(untrained):
    _, w = untrained
    w.example.value = "ponmlkjihgfedcba"
    assert w.controls["text"].value == "ponmlkjihgfedcba" and w.values["text"] == "ponmlkjihgfedcba"
    png = w.live.image.value
    w.controls["text"].value = "too short"
    assert not w.values["valid"] and "16 letters" in w.readout.value and w.live.image.value == png


def test_reverse_tokens():
    tokens = AM.reverse_tokens("abcdefghijklmnop")
    assert tokens.shape == (1, 32) and tokens[0, 16] == len(AM.LETTERS)
    np.testing.assert_array_equal(tokens[0, 17:], np.arange(16)[::-1][:-1])
    with pytest.raises(ValueError, match="16 letters"):
        AM.reverse_tokens("abcdefghijklmnoz")
    with pytest.raises(TypeError, match="text"):
        AM.reverse_tokens(16)
    with pytest.raises(ValueError, match="16 letters"):
        AM.build_attention_maps(A.init_transformer(25, 32), text="abc")


def test_built_without_arguments_it_trains_a_model_that_reverses():
    w = AM.build_attention_maps()
    for text in AM.EXAMPLES:
        w.controls["text"].value = text
        assert w.values["correct"], (text, w.values["output"])
    # layer 1 has a head that looks from output position L + j at input position L - 1 - j
    maps = w.values["maps"][0]
    rows = np.arange(AM.LENGTH, 2 * AM.LENGTH)
    anti = maps[:, rows, 2 * AM.LENGTH - 1 - rows].mean(axis=1)
    assert anti.max() > 0.5
