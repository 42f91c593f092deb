"""The fast wing of ``course_lib.attention``: :func:`lstm_logits` with the same signature and results
as the reference (tested equal in ``tests/test_fast_recurrent.py``), through chapter 11's fast
recurrent loop (``course_lib.fast.recurrent``). Chapter 18 trains its LSTMs with it for the
comparison with the transformer, as chapter 11 does for its large experiments.
"""
import jax

from course_lib import _validation as V
from course_lib.fast import recurrent as fast_recurrent

__all__ = ["lstm_logits"]


def lstm_logits(params, tokens):
    """Next-token logits ``(B, T, V)`` of chapter 11's LSTM language model for int ``tokens (B, T)``
    (see ``course_lib.attention.lstm_logits``)."""
    tokens = V.check_ndim(V.as_int_array(tokens, "tokens"), "tokens", 2)
    xs = jax.nn.one_hot(tokens, params["W_out"].shape[1], dtype=params["W_out"].dtype)
    return fast_recurrent.sequence_model("lstm", params, xs)[0]
