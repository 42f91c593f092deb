"""Text that a submission chose (its file name, its exception messages), made safe to show.

The console, the gradebook (a CSV that instructors open in a spreadsheet) and the Markdown feedback
show names and messages that come from untrusted files and from the sandbox. Here they lose what
could act on their reader: control characters (a newline that forges a console line, terminal
escapes), bidirectional overrides, lone surrogates (they cannot be written as UTF-8), a leading
character that makes a spreadsheet run the cell as a formula, and Markdown or HTML syntax.
"""
from __future__ import annotations

import html
import re


def clean_text(text, limit: int) -> str:
    """At most ``limit`` characters of ``text``; control and formatting characters (terminal escapes,
    bidirectional overrides) and lone surrogates written as escapes. Newlines and tabs are kept."""
    text = str(text)[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c in "\n\t" else ascii(c)[1:-1] for c in text)


def student_name(name: str) -> str:
    """A student's name from a file or folder name (bytes that are not UTF-8 arrive as surrogates):
    one line, every character safe to show."""
    text = clean_text(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), 200)
    return text.replace("\n", "\\n").replace("\t", "\\t")


def no_formula(text: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ (or a tab/CR before one) as a formula: quote it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def markdown_text(text: str) -> str:
    """Text shown as itself in Markdown (a student's name in a heading): no HTML, no formatting."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", html.escape(text, quote=False))
