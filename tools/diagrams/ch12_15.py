"""Diagrams of chapters 12-15: autoencoder and VAE, the GAN loop, the agent-environment loop and a
Bellman backup, and the end-to-end pipeline of the applications chapter."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Polygon

from . import Diagram
from .style import (BWD, FILL, FWD, GREY, INK, PARAM, arrow, box, canvas, circle, polyline_arrow,
                    r2, text)


def _trapezoid(ax, x, y, w, h_in, h_out, label, fc):
    """A layer block narrowing (or widening) from height h_in on the left to h_out on the right, centred at y."""
    ax.add_patch(Polygon([(x, y - h_in / 2), (x + w, y - h_out / 2), (x + w, y + h_out / 2), (x, y + h_in / 2)],
                         closed=True, fc=fc, ec=INK, lw=1.2))
    text(ax, x + w / 2, y, label, size=9)


def _digit(ax, x, y, size):
    """The first handwritten digit of course_lib.data.load_digits, drawn in a size x size square at (x, y)."""
    from course_lib import data

    X, _ = data.load_digits(images=True)
    img = np.asarray(X[0], float)
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, extent=(x, x + size, y, y + size), interpolation="nearest",
              zorder=3)


# ------------------------------------------------------------------------------------------ 12
def autoencoder():
    fig, ax = canvas(7.6, 2.7)
    y = 1.5
    _digit(ax, 0.1, y - 0.45, 0.9)
    text(ax, 0.55, y + 0.65, "$x$ (64 pixels)", size=9)
    arrow(ax, (1.05, y), (1.35, y))
    _trapezoid(ax, 1.35, y, 1.35, 1.5, 0.5, "encoder\n64 → 128 → $k$", FILL["fwd"])
    box(ax, 2.85, y - 0.3, 0.85, 0.6, "code $z$\n$k$ = 8", fc=FILL["param"], size=9)
    arrow(ax, (2.7, y), (2.85, y))
    arrow(ax, (3.7, y), (3.85, y))
    _trapezoid(ax, 3.85, y, 1.35, 0.5, 1.5, "decoder\n$k$ → 128 → 64", FILL["fwd"])
    arrow(ax, (5.2, y), (5.5, y))
    box(ax, 5.5, y - 0.45, 0.95, 0.9, "$\\hat x = \\sigma(\\mathrm{dec}(z))$\nin $(0, 1)^{64}$", fc=FILL["data"],
        size=8.5)
    text(ax, 3.27, 2.45, "the bottleneck: 8 numbers for 64 pixels", size=9, color=PARAM)
    polyline_arrow(ax, [(0.55, y - 0.5), (0.55, 0.2), (6.95, 0.2), (6.95, y - 0.5), (6.5, y - 0.5)], color=BWD,
                   lw=1.0, head=7)
    text(ax, 3.7, 0.4, "loss $L(x, \\hat x)$ = binary cross-entropy of each pixel, summed: "
         "the only signal is \"rebuild the input\"", size=8.5, color=BWD)
    return fig


def vae():
    fig, ax = canvas(7.8, 3.2)
    y = 1.85
    box(ax, 0.1, y - 0.3, 0.6, 0.6, "$x$", fc=FILL["data"], size=11)
    arrow(ax, (0.7, y), (0.95, y))
    _trapezoid(ax, 0.95, y, 1.2, 1.5, 0.7, "encoder", FILL["fwd"])
    box(ax, 2.35, y + 0.1, 0.75, 0.45, "$\\mu(x)$", fc=FILL["param"], size=10)
    box(ax, 2.35, y - 0.55, 0.75, 0.45, "$\\log\\sigma^2(x)$", fc=FILL["param"], size=9)
    arrow(ax, (2.15, y + 0.2), (2.35, y + 0.32))
    arrow(ax, (2.15, y - 0.2), (2.35, y - 0.32))
    box(ax, 3.55, y - 0.4, 1.3, 0.8, "$z = \\mu + \\sigma \\odot \\varepsilon$", fc=FILL["yellow"], size=10)
    arrow(ax, (3.1, y + 0.32), (3.55, y + 0.15))
    arrow(ax, (3.1, y - 0.32), (3.55, y - 0.15))
    circle(ax, 4.2, 0.7, 0.3, "$\\varepsilon$", fc="white", size=11)
    text(ax, 4.6, 0.7, "$\\sim \\mathcal{N}(0, I)$\n(no parameters)", size=8.5, ha="left", color=GREY)
    arrow(ax, (4.2, 1.0), (4.2, y - 0.4))
    arrow(ax, (4.85, y), (5.1, y))
    _trapezoid(ax, 5.1, y, 1.2, 0.7, 1.5, "decoder", FILL["fwd"])
    arrow(ax, (6.3, y), (6.55, y))
    box(ax, 6.55, y - 0.3, 1.1, 0.6, "$\\hat x$", fc=FILL["data"], size=11)
    text(ax, 7.1, 2.85, "reconstruction\n$-\\log p(x\\mid z)$", size=8.5, color=BWD)
    text(ax, 2.72, 2.85, "$\\mathrm{KL}(q(z\\mid x)\\,\\|\\,\\mathcal{N}(0, I))$\npulls towards the prior", size=8.5,
         color=BWD)
    # gradient path: through z to mu and sigma, never through the sample epsilon
    arrow(ax, (3.55, y + 0.3), (3.1, y + 0.45), color=BWD, ls="--")
    arrow(ax, (3.55, y - 0.3), (3.1, y - 0.45), color=BWD, ls="--")
    text(ax, 1.9, 0.75, "gradients reach $\\mu$ and $\\sigma$ (red dashed):\n"
         "$\\partial z/\\partial\\mu = 1$, $\\partial z/\\partial\\sigma = \\varepsilon$", size=8.5, color=BWD)
    text(ax, 0.1, 0.15, "loss = reconstruction + KL = −ELBO", size=9, ha="left")
    return fig


# ------------------------------------------------------------------------------------------ 13
def gan_loop():
    fig, ax = canvas(7.6, 3.2)
    box(ax, 0.1, 0.55, 1.25, 0.6, "$z \\sim \\mathcal{N}(0, I)$", fc="white", size=9.5)
    arrow(ax, (1.35, 0.85), (1.7, 0.85))
    box(ax, 1.7, 0.5, 1.15, 0.7, "generator\n$G$", fc=FILL["param"], size=10)
    arrow(ax, (2.85, 0.85), (3.3, 0.85))
    box(ax, 3.3, 0.55, 1.05, 0.6, "fake $G(z)$", fc=FILL["grey"], size=9)
    box(ax, 3.1, 2.1, 1.25, 0.6, "real $x \\sim p_{data}$", fc=FILL["data"], size=9)
    box(ax, 4.8, 1.25, 1.2, 0.7, "discriminator\n$D$", fc=FILL["fwd"], size=10)
    arrow(ax, (4.35, 0.85), (4.8, 1.4))
    arrow(ax, (4.35, 2.4), (4.8, 1.8))
    arrow(ax, (6.0, 1.6), (6.35, 1.6))
    text(ax, 6.95, 1.6, "$D(\\cdot) \\in (0, 1)$\n\"real?\"", size=9)
    text(ax, 5.4, 2.95, "$L_D$ = BCE(real, 1) + BCE(fake, 0): step $D$, $G$ fixed", size=9, color=FWD)
    text(ax, 5.4, 0.15, "$L_G = -\\log D(G(z))$ (non-saturating): step $G$, $D$ fixed", size=9, color=PARAM)
    # G learns only through D's gradient
    polyline_arrow(ax, [(5.4, 1.25), (5.4, 0.38), (2.3, 0.38), (2.3, 0.5)], color=BWD, lw=1.2, head=8)
    text(ax, 2.25, 1.55, "$G$ never sees real data:\nall it learns comes\nthrough the gradient of $D$ (red)",
         size=8.5, color=BWD)
    return fig


# ------------------------------------------------------------------------------------------ 14
def agent_environment():
    fig, ax = canvas(7.0, 3.2)
    box(ax, 0.6, 1.7, 2.0, 0.85, "agent\npolicy $\\pi(a \\mid s)$", fc=FILL["fwd"], size=10)
    box(ax, 4.4, 0.25, 2.2, 0.85, "environment\n$P(s' \\mid s, a)$, $r(s, a)$", fc=FILL["data"], size=10)
    polyline_arrow(ax, [(2.6, 2.12), (5.5, 2.12), (5.5, 1.1)], color=PARAM, lw=1.6)
    text(ax, 4.05, 2.32, "action $a_t$", size=10, color=PARAM)
    polyline_arrow(ax, [(4.4, 0.8), (1.3, 0.8), (1.3, 1.7)], color=FWD, lw=1.6)
    text(ax, 2.85, 0.98, "next state $s_{t+1}$", size=10, color=FWD)
    polyline_arrow(ax, [(4.4, 0.5), (1.9, 0.5), (1.9, 1.7)], color=BWD, lw=1.6)
    text(ax, 2.95, 0.3, "reward $r_{t+1}$", size=10, color=BWD)
    text(ax, 3.5, 2.95, "goal: maximise the expected return  "
         "$G_t = r_{t+1} + \\gamma r_{t+2} + \\gamma^2 r_{t+3} + \\dots$", size=9)
    return fig


def bellman_backup():
    from course_lib import rl
    from course_lib.widgets.rl import GAMMA, LAYOUT, SLIP

    world = rl.make_gridworld(LAYOUT, slip=SLIP)
    V, pi, _ = rl.value_iteration(world, GAMMA)
    V = np.asarray(V, float)
    P, R = np.asarray(world.P, float), np.asarray(world.R, float)
    cells = [tuple(c) for c in np.asarray(world.cells)]
    s = cells.index((1, 2))                       # the cell next to the pit
    Q = R[s] + GAMMA * P[s] @ V
    names = list(rl.ACTIONS)
    best = int(np.argmax(Q))
    assert best == int(np.asarray(pi)[s])
    fig, ax = canvas(7.9, 3.5)
    box(ax, 3.65, 2.45, 1.1, 0.5, f"$s$ = (1, 2)", fc=FILL["fwd"], size=9.5)
    text(ax, 4.9, 2.7, f"$V^*(s) = \\max_a Q^*(s, a)$ = {r2(V[s]):+.3f}", size=9, ha="left", color=FWD)
    xs = [1.45, 3.3, 5.15, 7.0]
    for k, (x, name) in enumerate(zip(xs, names)):
        arrow(ax, (4.2, 2.45), (x, 1.95), color=BWD if k == best else GREY, lw=1.8 if k == best else 1.0)
        circle(ax, x, 1.8, 0.14, "", fc=BWD if k == best else "white")
        text(ax, x, 1.45, f"{name}\n$Q^*$ = {r2(Q[k]):+.3f}", size=8.5, color=BWD if k == best else INK)
        nxt = np.flatnonzero(P[s, k] > 0)
        for m, j in enumerate(nxt):
            dx = (m - (len(nxt) - 1) / 2) * 0.55
            arrow(ax, (x, 1.2), (x + dx, 0.75), color=GREY, lw=0.8, head=6)
            text(ax, x + dx, 0.55, f"{P[s, k, j]:.1f}", size=7.5, color=GREY)
            text(ax, x + dx, 0.3, f"{r2(V[j]):+.2f}", size=7.5, color=FWD)
    text(ax, 0.05, 0.55, "P(s'|s,a)", size=7.5, color=GREY, ha="left")
    text(ax, 0.05, 0.3, "$V^*(s')$", size=7.5, color=FWD, ha="left")
    text(ax, 0.05, 3.25, "$Q^*(s, a) = R(s, a) + \\gamma \\sum_{s'} P(s' \\mid s, a) V^*(s')$,  "
         f"γ = {GAMMA}, R = −0.04 per step", size=9, ha="left")
    return fig


# ------------------------------------------------------------------------------------------ 15
def _chain(ax, steps, *, x, y, w=1.35, h=0.75, gap=0.2):
    """A row of boxes (label, fill) joined by arrows, starting at (x, y)."""
    for k, (label, fc) in enumerate(steps):
        box(ax, x, y, w, h, label, fc=fc, size=8.5)
        if k:
            arrow(ax, (x - gap, y + h / 2), (x, y + h / 2))
        x += w + gap


def pipeline():
    fig, ax = canvas(7.8, 2.9)
    steps = [("data\n1,797 digits", FILL["data"]), ("split 70/15/15\ntest put away", FILL["grey"]),
             ("baselines\n(majority, logistic)", FILL["grey"]), ("random search\non validation", FILL["param"]),
             ("one test\nevaluation", FILL["bwd"])]
    _chain(ax, steps, x=0.1, y=1.75)
    steps2 = [("error analysis\nconfusion matrix", FILL["grey"]), ("save: params.npz\n+ model_card.json", FILL["fwd"]),
              ("load: checks\nhashes, shapes", FILL["fwd"]), ("predict(model, x)\nvalidates x first", FILL["data"])]
    _chain(ax, steps2, x=1.65, y=0.5)
    polyline_arrow(ax, [(6.95, 1.75), (6.95, 1.5), (2.32, 1.5), (2.32, 1.25)], color=INK)
    text(ax, 3.9, 2.72, "validation chooses; the test set only reports, once", size=9, color=BWD)
    text(ax, 3.9, 0.2, "the deployed function takes raw pixels 0..16 and applies the card's preprocessing",
         size=8.5, color=GREY)
    return fig


DIAGRAMS = [
    Diagram("12_autoencoder", "12_autoencoders_and_vae", "cell-002",
            "A digit enters an encoder that narrows to an 8-number code, and a decoder widens it back to 64 "
            "pixels; the loss compares the output with the input.",
            "The autoencoder of this section: an encoder $64 \\to 128 \\to k$, a code of $k = 8$ numbers, a "
            "decoder back to 64 pixels in $(0, 1)$. The only training signal is the reconstruction loss.",
            autoencoder),
    Diagram("12_vae", "12_autoencoders_and_vae", "cell-020",
            "A VAE: the encoder outputs mu and log sigma squared; z is mu plus sigma times a sampled epsilon; "
            "the decoder outputs x-hat; the loss is reconstruction plus KL; gradients reach mu and sigma.",
            "The VAE and the reparameterization trick: the randomness enters through $\\varepsilon$, which "
            "has no parameters, so the gradient of the loss (reconstruction + KL $= -$ELBO) reaches the "
            "encoder through $\\mu$ and $\\sigma$.", vae),
    Diagram("13_gan_loop", "13_gans", "13e60938",
            "The GAN loop: noise z goes through the generator to a fake sample; the discriminator sees real "
            "and fake samples and outputs a probability; the two losses are minimised in turn.",
            "The two-player game: $D$ is trained to label real samples 1 and generated ones 0, then $G$ is "
            "trained to make $D$ say \"real\"; the two steps alternate. $G$ learns only through the "
            "gradient that flows back through $D$.", gan_loop),
    Diagram("14_agent_environment", "14_reinforcement_learning", "cell-000",
            "The agent-environment loop: the agent's policy picks an action, the environment returns the "
            "next state and a reward.",
            "The agent-environment loop: at every step the agent picks $a_t \\sim \\pi(\\cdot \\mid s_t)$, the "
            "environment answers with $r_{t+1}$ and $s_{t+1}$. The agent maximises the expected return, not "
            "the next reward.", agent_environment),
    Diagram("14_bellman_backup", "14_reinforcement_learning", "cell-020",
            "A backup tree for the grid-world cell next to the pit: four actions, each with its action value, "
            "and below each action the possible next states with their probabilities and values.",
            "One Bellman backup, with the numbers of the grid world: for the cell next to the pit, each "
            "action's value $Q^*(s, a)$ averages the next states' values over the slip probabilities; the "
            "maximum (red) is $V^*(s)$ and its action is the greedy policy. Values from "
            "`rl.value_iteration`.", bellman_backup),
    Diagram("15_pipeline", "15_applications", "cell-000",
            "The end-to-end pipeline: data, split, baselines, tuning on validation, one test evaluation, "
            "error analysis, save, load, predict.",
            "The pipeline of this chapter: every decision is made on the validation split, the test split "
            "is used once, and the saved model is a parameter file plus a model card that `predict` relies "
            "on.", pipeline),
]
