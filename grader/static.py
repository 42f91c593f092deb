"""Static check for forbidden calls: which dotted names does the student's definition refer to?

Complements the runtime check in the sandbox (which records calls of the forbidden functions while
the student's function runs). Scope: the definition of each tested name and, transitively, of the
student's other top-level names it uses; import aliases are resolved (``from course_lib import
activations as A`` makes ``A.sigmoid`` read ``course_lib.activations.sigmoid``).
"""
from __future__ import annotations

import ast

from .notebook import parse


def _aliases(trees) -> dict[str, str]:
    out: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out[a.asname] = a.name
                    else:
                        out.setdefault(a.name.split(".")[0], a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node, aliases) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        base = aliases.get(node.id, node.id)
        return ".".join([base] + parts[::-1])
    return None


def _refs(node, aliases) -> tuple[set[str], set[str]]:
    """(dotted names referred to, bare names used) inside ``node``."""
    dotted, bare = set(), set()
    for n in ast.walk(node):
        if isinstance(n, (ast.Attribute, ast.Name)):
            d = _dotted(n, aliases)
            if d:
                dotted.add(d)
            if isinstance(n, ast.Name):
                bare.add(n.id)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr" \
                and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str):
            d = _dotted(n.args[0], aliases)
            if d:
                dotted.add(f"{d}.{n.args[1].value}")
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                mod = getattr(n, "module", None)
                dotted.add(f"{mod}.{a.name}" if mod else a.name)
    return dotted, bare


def referenced_names(student_sources: list[str], setup_sources: list[str], tested: list[str]) -> set[str]:
    trees = []
    for src in setup_sources + student_sources:
        try:
            trees.append(parse(src))
        except SyntaxError:
            continue
    aliases = _aliases(trees)
    student_trees = trees[len([s for s in setup_sources if _parses(s)]):]
    defs: dict[str, list] = {}
    for tree in student_trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            defs.setdefault(n.id, []).append(node)
    seen, todo, found = set(), list(tested), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in defs.get(name, []):
            dotted, bare = _refs(node, aliases)
            found |= dotted
            todo.extend(b for b in bare if b in defs and b not in seen)
    return found


def _parses(src: str) -> bool:
    try:
        parse(src)
        return True
    except SyntaxError:
        return False


def forbidden_used(referenced: set[str], forbid: set[str]) -> set[str]:
    hits = set()
    for f in forbid:
        mod, _, attr = f.rpartition(".")
        variants = {f, f"{mod}._{attr}"} if mod else {f}
        if referenced & variants:
            hits.add(f)
    return hits
