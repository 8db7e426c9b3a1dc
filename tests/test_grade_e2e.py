"""End to end, as a learner: fill in the stubs in a copy of the course, run `grade`.

A correct implementation of every exercise must reproduce every stored output under strict
nbval in learner mode; a plausible mistake must make the grade fail."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmkit import grading

ROOT = Path(__file__).resolve().parents[1]


def _course_copy(tmp_path: Path) -> Path:
    for part in ["chapters", "lmkit", "solutions", "benchmarks"]:
        shutil.copytree(
            ROOT / part,
            tmp_path / part,
            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"),
        )
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tmp_path / "tests")
    cache = Path(os.environ.get("LMKIT_DATA_DIR", ROOT / ".lmkit_cache"))
    (tmp_path / ".lmkit_cache").mkdir()
    # What `make data` caches: chapter 2's corpus and chapter 13's SQuAD files.
    for name in ["tinyshakespeare.txt", *(p.name for p in cache.glob("squad-*.json"))]:
        if (cache / name).exists():
            shutil.copy(cache / name, tmp_path / ".lmkit_cache")
    return tmp_path


def _fill_in(course: Path, exercise_id: str, body_from: str) -> None:
    """Replace the stub of `exercise_id` by a call to `body_from` (a 'module:qualname').

    The stub's ``raise NotImplementedError(...)`` is found with ``ast`` (a method exercise
    inside its class); the new body calls the reference, e.g.
    ``from solutions.attention import MultiHeadAttention as _impl`` then
    ``return _impl.forward(self=self, x=x, mask=mask)``.
    """
    ex = grading.get_exercise(exercise_id)
    path = course / ex.source_file
    src = path.read_text()
    scope: list = ast.parse(src).body
    *owners, name = ex.name.split(".")
    for owner in owners:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == owner).body
    func = next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)
    stub = next(
        n
        for n in ast.walk(func)
        if isinstance(n, ast.Raise)
        and isinstance(n.exc, ast.Call)
        and getattr(n.exc.func, "id", "") == "NotImplementedError"
    )
    lines = src.splitlines(keepends=True)
    indent = " " * stub.col_offset
    params = inspect.signature(ex.learner).parameters
    call = ", ".join(f"{p}={p}" for p in params)
    module, qualname = body_from.split(":")
    head, *rest = qualname.split(".")
    body = (
        f"{indent}from {module} import {head} as _impl\n\n"
        f"{indent}return {'.'.join(['_impl', *rest])}({call})\n"
    )
    lines[stub.lineno - 1 : stub.end_lineno] = [body]
    path.write_text("".join(lines))


def _grade(course: Path, *notebooks: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(course),
        grading.ENV_VAR: "all",  # grade ignores it
        "LMKIT_DATA_DIR": str(course / ".lmkit_cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "lmkit.grading", "--grade", *notebooks],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_correct_code_passes_grading(tmp_path):
    course = _course_copy(tmp_path)
    for i in grading.exercise_ids():
        ex = grading.get_exercise(i)
        _fill_in(course, i, f"{ex.solution_module}:{ex.name}")
    result = _grade(course)
    assert result.returncode == 0, result.stdout[-3000:]
    n = len(grading.exercise_ids())
    assert f"{n} done, 0 failing, 0 not started (of {n})" in result.stdout


def test_a_mistake_fails_grading_with_its_hint(tmp_path):
    course = _course_copy(tmp_path)
    for i in grading.exercise_ids():
        ex = grading.get_exercise(i)
        if i != "1.3":
            _fill_in(course, i, f"{ex.solution_module}:{ex.name}")
    (course / "wrong.py").write_text(
        "from solutions.scale import training_memory as ref\n\n"
        "def training_memory(n_params, precision='fp32'):\n"
        "    m = ref(n_params, precision)\n"
        "    return {**m, 'optimizer': m['optimizer'] // 2, 'total': m['total'] - m['optimizer'] // 2}\n"
    )
    _fill_in(course, "1.3", "wrong:training_memory")
    result = _grade(course, "chapters/01_scale.ipynb")
    assert result.returncode == 1
    assert "two moments" in result.stdout  # the check's hint reaches the learner
    assert "✗ 01_scale.ipynb" in result.stdout
    assert re.search(r"✗ 1\.3\s+training_memory\s+failing", result.stdout)
    assert re.search(r"✓ 1\.1\s+count_parameters\s+done", result.stdout)


@pytest.mark.parametrize("exercise_id", grading.exercise_ids())
def test_every_stub_can_be_found_and_filled(exercise_id, tmp_path):
    course = _course_copy(tmp_path)
    ex = grading.get_exercise(exercise_id)
    _fill_in(course, exercise_id, f"{ex.solution_module}:{ex.name}")
    assert f"Exercise {exercise_id}:" not in (course / ex.source_file).read_text()
