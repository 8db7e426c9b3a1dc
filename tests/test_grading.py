"""The grading API as learners and instructors use it, bad input included."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from lmkit import grading
from lmkit.config import PRESETS
from lmkit.scale import count_parameters


def test_unknown_exercise_lists_valid_ids():
    with pytest.raises(KeyError) as info:
        grading.check("9.9")
    msg = str(info.value)
    assert "no exercise '9.9'" in msg and "1.1" in msg and "1.3" in msg
    with pytest.raises(grading.UnknownExercise):
        grading.reference("count_parameters")


def test_exercise_prefix_is_accepted(capsys):
    grading.check("Exercise 1.1", grading.reference("1.1"))
    assert capsys.readouterr().out.startswith("✓ Exercise 1.1")


def test_check_rejects_non_callable():
    with pytest.raises(TypeError, match="needs a function"):
        grading.check("1.1", impl=42)


@pytest.mark.parametrize("value", ["99", "1,99", "1.9", "chapter1", "1;2"])
def test_bad_reference_spec_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(grading.ENV_VAR, value)
    with pytest.raises(ValueError, match="LMKIT_REFERENCE") as info:
        count_parameters(PRESETS["gpt2"])
    assert "all" in str(info.value) and "missing" in str(info.value)
    with pytest.raises(ValueError, match="use_reference"):
        grading.use_reference(value)


@pytest.mark.parametrize("value", ["all", "ALL", "missing", "1", "1.1", "1.1, 1.2", " 1 "])
def test_reference_spec_values(monkeypatch, value):
    monkeypatch.setenv(grading.ENV_VAR, value)
    assert count_parameters(PRESETS["gpt2"]) == 124_439_808


@pytest.mark.parametrize("value", ["", "none", "0", "1.2"])
def test_learner_mode_runs_the_stub(monkeypatch, value):
    monkeypatch.setenv(grading.ENV_VAR, value)
    with pytest.raises(NotImplementedError, match="Exercise 1.1:"):
        count_parameters(PRESETS["gpt2"])


def test_use_reference_overrides_environment(monkeypatch):
    monkeypatch.setenv(grading.ENV_VAR, "none")
    grading.use_reference(["1"])
    assert count_parameters(PRESETS["bert-base"]) == 109_482_240
    grading.use_reference(None)
    with pytest.raises(NotImplementedError):
        count_parameters(PRESETS["bert-base"])


def test_missing_mode_prefers_the_learners_code(monkeypatch):
    """'missing' falls back to the reference only for stubs, never over real code."""
    ex = grading.get_exercise("1.1")
    monkeypatch.setattr(ex, "learner", lambda config: 123)  # a (wrong) finished exercise
    grading.use_reference("missing")
    assert count_parameters(PRESETS["gpt2"]) == 123
    grading.use_reference("all")
    assert count_parameters(PRESETS["gpt2"]) == 124_439_808


def test_missing_mode_does_not_hide_other_errors(monkeypatch):
    def broken(config):
        raise NotImplementedError("some library feature")

    monkeypatch.setattr(grading.get_exercise("1.1"), "learner", broken)
    grading.use_reference("missing")
    with pytest.raises(NotImplementedError, match="some library feature"):
        count_parameters(PRESETS["gpt2"])


def test_dependency_on_unfinished_exercise_is_explained():
    def flops(config, seq_len=None):
        return 6 * count_parameters(config)  # uses Exercise 1.1, still a stub

    with pytest.raises(grading.ExerciseNotImplemented, match="uses Exercise 1.1") as info:
        grading.check("1.2", flops)
    assert "LMKIT_REFERENCE=missing" in str(info.value)


def test_wrong_type_gets_expected_type():
    with pytest.raises(AssertionError, match="should be a int, got str"):
        grading.check("1.1", lambda cfg: "124M")
    with pytest.raises(AssertionError, match=r"\.item\(\)"):
        import torch

        grading.check("1.1", lambda cfg: torch.tensor(5))
    with pytest.raises(AssertionError, match="should be a dict, got tuple"):
        grading.check("1.3", lambda n, p="fp32": (n, n, n, n))


def test_progress_reports_each_exercise(capsys):
    states = grading.progress()
    out = capsys.readouterr().out
    assert set(states) == set(grading.exercise_ids())
    assert all(s == "not started" for s in states.values())
    n = len(grading.exercise_ids())
    assert f"0 done, 0 failing, {n} not started (of {n})" in out


def test_progress_ignores_reference_mode(monkeypatch, capsys):
    monkeypatch.setenv(grading.ENV_VAR, "all")
    assert set(grading.progress().values()) == {"not started"}


def _cli(*args: str, env_ref: str = "") -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, grading.ENV_VAR: env_ref}
    return subprocess.run(
        [sys.executable, "-m", "lmkit.grading", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_list():
    out = _cli("--list")
    assert out.returncode == 0
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == grading.exercise_ids()
    for i, name, source in rows:
        ex = grading.get_exercise(i)
        assert (name, source) == (ex.name, ex.source_file)
        assert (ROOT / source).is_file()


def test_cli_progress_and_check():
    out = _cli("--progress")
    assert out.returncode == 1 and "not started" in out.stdout
    out = _cli("--check", "1.1", env_ref="all")
    assert out.returncode == 0 and out.stdout.strip() == "✓ Exercise 1.1 count_parameters"
    out = _cli("--check", "9.9")
    assert out.returncode == 1 and "Valid ids" in out.stdout


def test_cli_nbval_args_are_the_ones_grade_uses():
    out = _cli("--nbval-args")
    assert out.returncode == 0
    assert out.stdout.split() == list(grading.NBVAL_ARGS)
    assert "--nbval" in grading.NBVAL_ARGS and "tests/nbval_sanitize.cfg" in grading.NBVAL_ARGS


def test_method_exercises_resolve_by_qualified_name():
    """An exercise on a method is named Class.method; its reference is the same-named
    method of the same-named class in solutions/ (a subclass overriding just that method)."""
    methods = [grading.get_exercise(i) for i in grading.exercise_ids()]
    methods = [ex for ex in methods if "." in ex.name]
    assert len(methods) >= 3
    for ex in methods:
        cls_name, method = ex.name.split(".")
        learner_cls = getattr(importlib.import_module(ex.module), cls_name)
        solution_cls = getattr(importlib.import_module(ex.solution_module), cls_name)
        assert ex.current() is learner_cls.__dict__[method]
        assert ex.reference() is solution_cls.__dict__[method]
        assert issubclass(solution_cls, learner_cls)


ROOT = Path(__file__).resolve().parents[1]


def test_registry_holds_every_exercise_decorator_in_lmkit():
    """Registration is explicit (grading._load imports every lmkit module): every
    @exercise("N.M") in the source is registered, whichever module the checks import."""
    found = set()
    for path in (ROOT / "lmkit").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "exercise"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    assert found == set(grading.exercise_ids())


def test_a_check_module_imports_on_its_own():
    """No check module needs an import "to register" its exercise, even imported first."""
    code = (
        "import lmkit.checks.ch06\n"
        "from lmkit import grading\n"
        "grading.check('6.1', grading.reference('6.1'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "✓ Exercise 6.1 lm_loss"


def test_check_modules_import_no_other_chapter():
    """The shared helpers live in lmkit.checks (the toolkit), not in a chapter's module."""
    for path in sorted((ROOT / "lmkit" / "checks").glob("ch*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("lmkit.checks."), (
                    f"{path.name} imports {node.module}: move what it needs into lmkit/checks"
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("lmkit.checks."), path.name


def test_references_for_adds_to_the_mode_and_restores_it():
    grading.use_reference(None)
    try:
        with grading.references_for(["11"]):
            mode = grading.reference_mode()
            assert isinstance(mode, frozenset) and {"11.1", "11.4"} <= mode
            assert "15.2" not in mode
        assert grading.reference_mode() == frozenset()
        grading.use_reference("1.1")
        with grading.references_for(["11.1"]):
            assert grading.reference_mode() == {"1.1", "11.1"}
        grading.use_reference("all")
        with grading.references_for(["11"]):
            assert grading.reference_mode() == "all"
    finally:
        grading.use_reference(None)
