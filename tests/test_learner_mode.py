"""In learner mode (all stubs), a chapter fails exactly the check cells of its exercises and
the cells that use their results — nothing else. This is what `make grade` shows a learner
who has not started: a failure is always attributable to an exercise."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lmkit import grading

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


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
    names = {grading.get_exercise(i).name for i in grading.exercise_ids()}
    uses_exercise = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    nb = _run_in_learner_mode(path, monkeypatch)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        is_check = re.search(r"""check\(\s*["']\d+\.\d+["']\s*\)""", cell.source)
        if is_check:
            assert errors and errors[0].ename == "ExerciseNotImplemented", (
                f"{path.name} cell {index}: a check cell must fail on the stub"
            )
        elif errors:
            assert uses_exercise.search(cell.source), (
                f"{path.name} cell {index} fails in learner mode ({errors[0].ename}: "
                f"{errors[0].evalue}) but uses no exercise function"
            )
            assert errors[0].ename == "NotImplementedError", errors[0].evalue
