"""Link each chapter in README.md's chapter map to its notebook once it exists ("coming" otherwise).

    python tools/update_readme.py          # rewrite README.md in place
    python tools/update_readme.py --check  # exit 1 if README.md is out of date (used by the tests)
"""
from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHAPTERS = {
    "00": ("jax_primer", "A JAX primer"),
    "01": ("what_is_deep_learning", "What is deep learning?"),
    "02": ("classic_ml", "Classic machine learning"),
    "03": ("neurons_and_activations", "Neurons and activation functions"),
    "04": ("loss_functions", "Loss functions"),
    "05": ("feedforward_networks", "Feed-forward networks"),
    "06": ("backpropagation", "Backpropagation"),
    "07": ("optimizers", "Optimizers"),
    "08": ("regularization_and_training", "Regularization and training practice"),
    "09": ("model_evaluation", "Model evaluation"),
    "10": ("convolutional_networks", "Convolutional networks"),
    "11": ("recurrent_networks", "Recurrent networks"),
    "12": ("autoencoders_and_vae", "Autoencoders and VAEs"),
    "13": ("gans", "Generative adversarial networks"),
    "14": ("reinforcement_learning", "Reinforcement learning"),
    "15": ("applications", "Applications"),
    # beyond the source articles
    "16": ("automatic_differentiation", "How automatic differentiation works"),
    "17": ("training_deep_networks", "Training deep networks"),
    "18": ("attention_and_transformers", "Attention and transformers"),
}

ROW = re.compile(r"^\| (\d\d) \| [^|]+ \|", re.M)


def chapter_cell(num: str) -> str:
    slug, title = CHAPTERS[num]
    path = f"notebooks/{num}_{slug}.ipynb"
    if (ROOT / path).exists():
        cell = f"[{title}]({path})"
        if (ROOT / "exercises" / f"{num}_{slug}").is_dir():
            cell += f" · [exercises](exercises/{num}_{slug}/)"
        return cell
    return f"{title} *(coming)*"


def render(text: str) -> str:
    return ROW.sub(lambda m: f"| {m.group(1)} | {chapter_cell(m.group(1))} |", text)


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    old = readme.read_text(encoding="utf-8")
    new = render(old)
    if "--check" in argv:
        if new != old:
            print("README.md's chapter map is out of date: run `python tools/update_readme.py`")
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
