"""The grading API as learners and instructors use it, bad input included."""

from __future__ import annotations

import subprocess
import sys

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
    assert out.stdout.split() == grading.exercise_ids()


def test_cli_progress_and_check():
    out = _cli("--progress")
    assert out.returncode == 1 and "not started" in out.stdout
    out = _cli("--check", "1.1", env_ref="all")
    assert out.returncode == 0 and out.stdout.strip() == "✓ Exercise 1.1 count_parameters"
    out = _cli("--check", "9.9")
    assert out.returncode == 1 and "Valid ids" in out.stdout


def test_a_method_can_be_an_exercise(monkeypatch, capsys):
    """Exercises on nn.Module methods: named by qualname, reference on the same-named class."""
    import types

    learner_mod = types.ModuleType("lmkit._fake_module")
    solution_mod = types.ModuleType("solutions._fake_module")
    monkeypatch.setitem(sys.modules, learner_mod.__name__, learner_mod)
    monkeypatch.setitem(sys.modules, solution_mod.__name__, solution_mod)

    class Doubler:
        def forward(self, x: int) -> int:
            raise NotImplementedError("Exercise 99.1: double x")

    Doubler.forward.__module__ = learner_mod.__name__
    Doubler.forward = grading.exercise("99.1")(Doubler.forward)
    learner_mod.Doubler = Doubler

    class ReferenceDoubler(Doubler):
        def forward(self, x: int) -> int:
            return 2 * x

    solution_mod.Doubler = ReferenceDoubler
    monkeypatch.setitem(
        grading._REGISTRY["99.1"].__dict__,
        "check_fn",
        lambda impl: (
            None
            if impl(Doubler(), 21) == 42
            else (_ for _ in ()).throw(AssertionError("forward(21) should be 42"))
        ),
    )
    try:
        ex = grading.get_exercise("99.1")
        assert ex.name == "test_a_method_can_be_an_exercise.<locals>.Doubler.forward" or (
            ex.name.endswith("Doubler.forward")
        )
        # Qualified names of classes defined at module level resolve through the module:
        ex.name = "Doubler.forward"
        with pytest.raises(grading.ExerciseNotImplemented):
            grading.check("99.1")
        grading.use_reference("99.1")
        assert Doubler().forward(5) == 10
        grading.check("99.1")
        assert capsys.readouterr().out == "✓ Exercise 99.1 Doubler.forward\n"
    finally:
        grading._REGISTRY.pop("99.1", None)
        grading._MODE_CACHE.clear()
