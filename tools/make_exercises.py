"""Regenerate every student copy: exercises/<assignment>/<nb>.ipynb from solutions/ (make exercises).

    python tools/make_exercises.py            # all assignments
    python tools/make_exercises.py 03_neurons_and_activations   # one

Copies whose source is gone are removed. Prints one line per notebook.
"""
from __future__ import annotations

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.generate import expected_copies, leaks  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    copies = expected_copies(REPO / "solutions")
    wanted = {pathlib.Path("exercises") / a for a in argv}
    if wanted:
        unknown = wanted - {p.parent for p in copies}
        if unknown:
            print(f"error: no source notebook for {', '.join(sorted(p.name for p in unknown))}", file=sys.stderr)
            return 2
        copies = {p: t for p, t in copies.items() if p.parent in wanted}
    for rel, text in copies.items():
        bad = leaks(text)
        if bad:
            print(f"error: {rel} would contain {bad}: are the markers on their own lines?", file=sys.stderr)
            return 1
        dest = REPO / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        changed = not dest.exists() or dest.read_text() != text
        if changed:
            dest.write_text(text)
        print(f"{rel}: {'written' if changed else 'unchanged'}")
    if not wanted:
        for old in sorted((REPO / "exercises").glob("*/*.ipynb")):
            if old.relative_to(REPO) not in copies:
                old.unlink()
                print(f"{old.relative_to(REPO)}: removed (no source)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
