"""End to end, as a learner: fill in the stubs in a copy of the course, run `grade`.

A correct implementation of every exercise must reproduce every stored output under strict
nbval in learner mode; a plausible mistake must make the grade fail."""

from __future__ import annotations

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
STUB = r"raise NotImplementedError\((?:[^()]|\([^()]*\))*\)"


def _course_copy(tmp_path: Path) -> Path:
    for part in ["chapters", "lmkit", "solutions"]:
        shutil.copytree(
            ROOT / part,
            tmp_path / part,
            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"),
        )
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tmp_path / "tests")
    return tmp_path


def _fill_in(course: Path, exercise_id: str, body_from: str) -> None:
    """Replace the stub of `exercise_id` by a call to `body_from` (a 'module:function')."""
    ex = grading.get_exercise(exercise_id)
    path = course / ex.source_file
    src = path.read_text()
    start = src.index(f"def {ex.name}(")
    match = re.compile(STUB).search(src, start)
    assert match and src[start : match.start()].count("\ndef ") == 0, f"no stub for {exercise_id}"
    params = inspect.signature(ex.learner).parameters
    call = ", ".join(f"{p}={p}" for p in params)
    module, func = body_from.split(":")
    body = f"from {module} import {func} as _impl\n\n    return _impl({call})"
    path.write_text(src[: match.start()] + body + src[match.end() :])


def _grade(course: Path, *notebooks: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(course), grading.ENV_VAR: "all"}  # grade ignores it
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
