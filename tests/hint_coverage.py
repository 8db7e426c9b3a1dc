"""Hints proven both ways: every hint a check can give is given to some recorded mistake.

``tests/test_loop.py`` proves one direction: each recorded mistake (``tests/mistakes/``) gets
its hint. This script proves the other. It runs the mistake tests of ``test_loop`` under
branch coverage, keeps every message the checks raised, and then lists

- every **hint text** written in ``lmkit/checks/chNN.py`` that no message of a chapter-NN
  mistake contained (the toolkit's: of any mistake), and
- every **line or branch that carries a hint** that no recorded mistake executed (so a hint
  whose text is shared by two branches is proven for each branch, not just once).

A hint text is a string the AST puts in a hint position: after ``Hint:`` in a message; the
value of a name or keyword containing ``hint`` (``hint = …``, ``HINT_X = …``, ``hint=…``);
a parameter named ``*hint*`` of the toolkit's or the module's own helpers; or the string
paired with a suspect (a ``lambda``, or a call that makes one) in a table. For each one listed: record a plausible
mistake that reaches it in ``tests/mistakes/chNN.py``, or delete the branch.

``make hint-coverage`` runs this; it exits 1 when a hint is unreached. Usage:
``python tests/hint_coverage.py [-v]`` (``-v`` also lists the unreached checks' lines that
carry no hint: type, shape and error-kind messages).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ROOT / "lmkit" / "checks"
MIN_FRAGMENT = 12  # a formatted hint is matched by its longest constant piece, if this long


@dataclass
class Hint:
    file: str
    line: int  # the first line of the statement that carries it
    end: int
    text: str  # constant pieces joined by "…" where the f-string formats a value
    key: str  # the longest constant piece an emitted message must contain; "" when the text
    # is a variable's ("Hint: {hint}"): then only the line is proven, it must run
    exercises: frozenset[str] = frozenset()  # the checks that can give it (empty: any)


def _owners(tree: ast.Module) -> dict[ast.AST, frozenset[str]]:
    """Top-level statement → the exercises whose check (``@checks("N.M")``) reaches it,
    directly or through the module's helpers and constants."""
    defined: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined[t.id] = node
    uses = {
        node: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defined}
        for node in tree.body
    }
    owners: dict[ast.AST, set[str]] = {node: set() for node in tree.body}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        ids = [
            d.args[0].value
            for d in node.decorator_list
            if isinstance(d, ast.Call)
            and getattr(d.func, "id", "") == "checks"
            and d.args
            and isinstance(d.args[0], ast.Constant)
        ]
        if not ids:
            continue
        todo, seen = [node], set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            owners[cur].update(ids)
            todo.extend(defined[name] for name in uses.get(cur, ()))
    return {node: frozenset(ids) for node, ids in owners.items()}


def _pieces(node: ast.AST) -> list[str]:
    """The constant text of a str literal or f-string, split where values are formatted."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out, cur = [], ""
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                cur += v.value
            else:
                out.append(cur)
                cur = ""
        return [*out, cur]
    return []


def _strings(node: ast.AST) -> list[ast.AST]:
    """Every str literal / f-string in an expression (not nested inside another f-string)."""
    found: list[ast.AST] = []

    def walk(n: ast.AST) -> None:
        if isinstance(n, ast.JoinedStr) or (
            isinstance(n, ast.Constant) and isinstance(n.value, str)
        ):
            found.append(n)
            return
        if isinstance(n, ast.Dict):  # a table of hints: its values, not its keys
            for v in n.values:
                walk(v)
            return
        for child in ast.iter_child_nodes(n):
            walk(child)

    walk(node)
    return found


def _hint_params(tree: ast.Module) -> dict[str, list[int | str]]:
    """Helper name → positions (and keyword names) of its ``*hint*`` parameters."""
    import lmkit.checks as toolkit

    params: dict[str, list[int | str]] = {}
    for name, fn in vars(toolkit).items():
        if inspect.isfunction(fn) and fn.__module__ == toolkit.__name__:
            names = list(inspect.signature(fn).parameters)
            params[name] = [i for i, p in enumerate(names) if "hint" in p.lower()]
            params[name] += [p for p in names if "hint" in p.lower()]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("check_"):
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            names += [a.arg for a in node.args.kwonlyargs]
            params[node.name] = [i for i, p in enumerate(names) if "hint" in p.lower()]
            params[node.name] += [p for p in names if "hint" in p.lower()]
    return params


def hints_in(path: Path) -> list[Hint]:
    """Every hint text in one check module, with the statement that carries it."""
    source = path.read_text()
    tree = ast.parse(source)
    params = _hint_params(tree)
    rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def statement(n: ast.AST) -> ast.AST:
        while not isinstance(n, ast.stmt):
            n = parents[n]
        return n

    marked: list[tuple[ast.AST, list[str]]] = []  # (string node, its hint pieces)
    line_only: set[int] = set()  # indices into marked of "Hint: {variable}" messages

    def mark(expr: ast.AST) -> None:
        for s in _strings(expr):
            marked.append((s, _pieces(s)))

    for node in ast.walk(tree):
        # 1. The text after "Hint:" in a message.
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and not isinstance(
            parents.get(node), ast.JoinedStr
        ):
            pieces = _pieces(node)
            whole = "\x00".join(pieces)
            if "Hint:" in whole:
                after = whole.split("Hint:", 1)[1]
                pieces = after.split("\x00")
                if max(len(p.strip()) for p in pieces) < MIN_FRAGMENT and len(pieces) > 1:
                    # "Hint: {name}": the text is elsewhere; this line must still be reached.
                    pieces = [f"Hint: {{{ast.unparse(node.values[-1].value)}}}", ""]
                    line_only.add(len(marked))
                marked.append((node, pieces))
        # 2. hint = …, HINT_X = …, hints = {…}
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and "hint" in t.id.lower() for t in targets):
                if node.value is not None:
                    mark(node.value)
        # 3. hint=… and the hint parameters of helpers.
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            spots = params.get(name or "", [])
            for i, arg in enumerate(node.args):
                if i in spots:
                    mark(arg)
            for kw in node.keywords:
                if kw.arg and ("hint" in kw.arg.lower() or kw.arg in spots):
                    mark(kw.value)
        # 4. (suspect, hint) pairs in a table: a lambda (or a call making one), then a string.
        if (
            isinstance(node, ast.Tuple)
            and len(node.elts) == 2
            and isinstance(node.elts[0], (ast.Lambda, ast.Call))
        ):
            mark(node.elts[1])
        # 5. A dict entry "hint": … (a case table).
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and "hint" in str(k.value).lower():
                    mark(v)

    owners = _owners(tree)

    def top(n: ast.AST) -> ast.AST:
        while n not in owners:
            n = parents[n]
        return n

    hints: dict[tuple[int, str], Hint] = {}
    for i, (node, pieces) in enumerate(marked):
        pieces = [p.strip() for p in pieces]
        key = max(pieces, key=len, default="")
        if len(key) < MIN_FRAGMENT and i not in line_only:
            continue
        stmt = statement(node)
        text = " … ".join(p for p in pieces if p)
        end = stmt.end_lineno or stmt.lineno
        key = "" if i in line_only else key
        hints[(node.lineno, key)] = Hint(rel, stmt.lineno, end, text, key, owners[top(node)])
    return sorted(hints.values(), key=lambda h: h.line)


def run_loop(tmp: Path) -> tuple[list[str], dict]:
    """The mistake tests of test_loop under branch coverage: the messages, the coverage."""
    messages, data = tmp / "messages.jsonl", tmp / ".coverage"
    env = {**os.environ, "LMKIT_HINT_LOG": str(messages), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "coverage", "run", "--branch", f"--data-file={data}",
        f"--include={CHECKS}/*.py", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/test_loop.py", "-k", "test_check_catches_mistake_with_hint",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        sys.exit("hint coverage: the loop tests failed; fix them first")
    report = tmp / "coverage.json"
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report),
         "-q"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    lines = [json.loads(m) for m in messages.read_text().splitlines()]
    return lines, json.loads(report.read_text())["files"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        messages, files = run_loop(Path(tmp))
    # A chapter's hints must be reached by that chapter's mistakes (two chapters may share a
    # hint's words, as 6.1 and 9.2 do; each must be proven); the toolkit's by any.
    by_exercise: dict[str, list[str]] = {}
    for exercise_id, message in messages:
        by_exercise.setdefault(exercise_id, []).append(message)

    unreached: list[tuple[Hint, str]] = []
    quiet: list[str] = []
    n_hints = 0
    for path in sorted(CHECKS.glob("*.py")):
        rel = str(path.relative_to(ROOT))
        cov = next((v for k, v in files.items() if k.endswith(rel)), None)
        missing = set(cov["missing_lines"]) if cov else set()
        targets = {b for _, b in (cov or {}).get("missing_branches", []) if b > 0}
        hints = hints_in(path)
        n_hints += len(hints)
        chapter = int(path.stem[2:]) if path.stem.startswith("ch") else None
        carried: set[int] = set()
        for h in hints:
            carried |= set(range(h.line, h.end + 1))
            if h.exercises:  # a check's own hint: its own exercise's mistakes must reach it
                mine = [m for i in h.exercises for m in by_exercise.get(i, [])]
            elif chapter is not None:  # a helper no check reaches: the chapter's mistakes
                mine = [m for i, ms in by_exercise.items() if int(i.split(".")[0]) == chapter
                        for m in ms]  # fmt: skip
            else:  # the toolkit's: anyone's
                mine = [m for _, m in messages]
            shown = "\n".join(mine)
            if h.key and h.key not in shown:
                unreached.append((h, "never shown to a recorded mistake"))
            elif h.line in missing or h.line in targets:
                why = "its text is shown, but not from this line" if h.key else "never run"
                unreached.append((h, why))
        src = path.read_text().splitlines()
        for n in sorted(missing | targets):
            if n not in carried and re.search(r"raise AssertionError|fail\(", src[n - 1]):
                quiet.append(f"{rel}:{n}: {src[n - 1].strip()[:90]}")

    took = time.monotonic() - start
    print(
        f"hint coverage: {len(messages)} recorded mistakes, {n_hints} hints in "
        f"lmkit/checks, {len(unreached)} unreached ({took:.0f} s)"
    )
    for h, why in unreached:
        print(f"  {h.file}:{h.line}: {why}: {h.text[:100]!r}")
    if args.verbose and quiet:
        print("Unreached failure lines without a hint (type, shape, error kind):")
        print("\n".join(f"  {q}" for q in quiet))
    if unreached:
        print(
            "Record a plausible mistake that reaches each (tests/mistakes/chNN.py) or delete "
            "the dead branch."
        )
    return 1 if unreached else 0


if __name__ == "__main__":
    sys.exit(main())
