"""In learner mode (all stubs), a chapter fails exactly the check cells of its exercises and
the cells that use their results — nothing else. This is what `make grade` shows a learner
who has not started: a failure is always attributable to an exercise."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import lmkit
from lmkit import grading

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _exercise_users() -> set[str]:
    """Exercise names, and every lmkit function or class that (transitively) uses one."""
    names = set()
    for i in grading.exercise_ids():
        qualname = grading.get_exercise(i).name
        names |= {qualname.split(".")[0], qualname.split(".")[-1]}
    objects = {}
    for info in pkgutil.walk_packages(lmkit.__path__, "lmkit."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == info.name:
                objects[name] = inspect.getsource(obj)
    changed = True
    while changed:
        changed = False
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
        for name, src in objects.items():
            if name not in names and pattern.search(src):
                names.add(name)
                changed = True
    return names


def _defined_names(tree: ast.Module) -> set[str]:
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    out.add(sub.id)
    return out


def _run_in_learner_mode(path: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv(grading.ENV_VAR, "none")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_only_exercise_cells_fail_on_stubs(path, monkeypatch):
    tainted = _exercise_users()
    nb = _run_in_learner_mode(path, monkeypatch)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: judged by their text alone
            tree = ast.Module(body=[], type_ignores=[])
        used = (
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            | {
                a.asname or a.name
                for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)
                for a in n.names
            }
        )
        uses_exercise = bool(used & tainted)
        if uses_exercise:  # what this cell defines now depends on an exercise too
            tainted |= _defined_names(tree)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        is_check = re.search(r"""check\(\s*["']\d+\.\d+["']\s*\)""", cell.source)
        if is_check:
            assert errors and errors[0].ename == "ExerciseNotImplemented", (
                f"{path.name} cell {index}: a check cell must fail on the stub"
            )
        elif errors:
            assert uses_exercise, (
                f"{path.name} cell {index} fails in learner mode ({errors[0].ename}: "
                f"{errors[0].evalue}) but uses no exercise function"
            )
            err = errors[0]
            if err.ename == "NameError":  # a result an earlier failing cell did not produce
                missing = re.search(r"name '(\w+)' is not defined", err.evalue)
                assert missing and missing.group(1) in tainted, err.evalue
            else:
                assert err.ename == "NotImplementedError", err.evalue
                assert re.match(r"Exercise \d+\.\d+:", err.evalue), err.evalue
