"""Interactive figures for the course (ipywidgets + Matplotlib Agg, updated by blitting).

Shared machinery lives in :mod:`course_lib.widgets.base`; each chapter's widget is a module here
(`activations.py`, `losses.py`, ...) built from it, with its logic in plain functions that tests
drive headlessly.
"""
from .base import LiveFigure, link_controls, new_figure, panel

__all__ = ["LiveFigure", "link_controls", "new_figure", "panel"]
