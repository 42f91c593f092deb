"""Exercises and instructor grading for the course (see docs/exercise_format.md, the README's section for instructors).

``grader.api`` holds the helpers test cells call; ``python -m grader <assignment> <submissions>``
grades a folder of submissions; ``tools/make_exercises.py`` generates student copies.
"""
