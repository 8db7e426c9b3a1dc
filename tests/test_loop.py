"""Proof of the grading loop, over the whole registry.

For every exercise: the stub fails its check with a clear "not implemented yet"; the
reference passes it; stub and reference have the same signature; the plausible mistakes
in tests/mistakes/ are each rejected with their hint; and exactly one chapter
notebook runs its check.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lmkit import grading
from tests.mistakes import MISTAKES

ROOT = Path(__file__).resolve().parents[1]
IDS = grading.exercise_ids()


def test_every_exercise_has_a_check():
    for i in IDS:
        assert grading.get_exercise(i).check_fn is not None, f"Exercise {i} has no check"


def test_registry_is_not_empty_and_ordered():
    assert IDS, "no exercises registered"
    assert IDS == sorted(IDS, key=lambda i: tuple(map(int, i.split("."))))
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_fails_with_not_implemented(exercise_id, capsys):
    ex = grading.get_exercise(exercise_id)
    with pytest.raises(grading.ExerciseNotImplemented, match="not implemented yet"):
        grading.check(exercise_id)
    assert capsys.readouterr().out == "", "a failing check must not print the ✓ line"
    # The stub's own message names the exercise and says what to do.
    with pytest.raises(grading.ExerciseNotImplemented) as info:
        grading.check(exercise_id)
    assert ex.source_file in str(info.value)
    assert re.search(
        rf"The stub says: Exercise {re.escape(exercise_id)}: .{{10,}}", str(info.value)
    )


@pytest.mark.parametrize("exercise_id", IDS)
def test_reference_passes(exercise_id, capsys):
    ex = grading.get_exercise(exercise_id)
    grading.check(exercise_id, grading.reference(exercise_id))
    assert capsys.readouterr().out == f"✓ Exercise {exercise_id} {ex.name}\n"


@pytest.mark.parametrize("exercise_id", IDS)
def test_reference_mode_dispatches_to_reference(exercise_id, capsys, monkeypatch):
    monkeypatch.setenv(grading.ENV_VAR, "all")
    grading.check(exercise_id)
    monkeypatch.setenv(grading.ENV_VAR, "missing")
    grading.check(exercise_id)
    monkeypatch.setenv(grading.ENV_VAR, str(grading.get_exercise(exercise_id).chapter))
    grading.check(exercise_id)
    assert capsys.readouterr().out.count("✓") == 3


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_and_reference_signatures_match(exercise_id):
    ex = grading.get_exercise(exercise_id)
    assert grading.signature_of(ex.learner) == grading.signature_of(ex.reference())
    assert grading.signature_of(ex.current()) == grading.signature_of(ex.learner)
    assert ex.learner.__doc__ and len(ex.learner.__doc__) > 80, "exercises need a real docstring"


@pytest.mark.parametrize("exercise_id", IDS)
def test_check_is_deterministic(exercise_id, capsys):
    for _ in range(2):
        grading.check(exercise_id, grading.reference(exercise_id))
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("exercise_id", IDS)
def test_every_exercise_has_mistakes_on_record(exercise_id):
    assert len(MISTAKES.get(exercise_id, [])) >= 3, (
        f"Exercise {exercise_id}: record ≥3 plausible mistakes in tests/mistakes/"
    )


#: Set by tests/hint_coverage.py: append each mistake's message to this file (JSON lines).
HINT_LOG = os.environ.get("LMKIT_HINT_LOG")
CASES = [(i, desc, impl, hint) for i, ms in MISTAKES.items() for desc, impl, hint in ms]


def test_mistake_hints_are_long_enough_to_prove_something():
    """A substring like "ValueError" or "in place" matches many messages: it proves little."""
    short = [(i, desc, hint) for i, desc, _, hint in CASES if len(hint) < 10]
    assert not short, f"lengthen these hint substrings to name their hint: {short}"


@pytest.mark.parametrize(
    "exercise_id, desc, impl, hint", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_check_catches_mistake_with_hint(exercise_id, desc, impl, hint, capsys):
    with pytest.raises(AssertionError) as info:
        grading.check(exercise_id, impl)
    assert hint in str(info.value), (
        f"{desc}: expected a hint containing {hint!r}, got:\n{info.value}"
    )
    assert "✓" not in capsys.readouterr().out
    if HINT_LOG:  # tests/hint_coverage.py: which hints the recorded mistakes reach
        with open(HINT_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps([exercise_id, str(info.value)]) + "\n")


def _notebook_sources() -> dict[str, str]:
    return {
        nb.name: "\n".join(
            "".join(c["source"])
            for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "code"
        )
        for nb in sorted((ROOT / "chapters").glob("*.ipynb"))
    }


# A check cell grades the function as it is in lmkit: check("N.M") with no impl argument.
CHECK_CALL = re.compile(r"""check\(\s*["'](\d+\.\d+)["']\s*\)""")


def test_every_exercise_checked_in_exactly_one_notebook():
    where: dict[str, list[str]] = {}
    for name, src in _notebook_sources().items():
        for i in CHECK_CALL.findall(src):
            where.setdefault(i, []).append(name)
    for i in IDS:
        assert len(where.get(i, [])) == 1, f"Exercise {i} is checked in {where.get(i, [])}"
        chapter = grading.get_exercise(i).chapter
        assert where[i][0].startswith(f"{chapter:02d}_"), f"Exercise {i} checked in {where[i]}"
    unknown = set(where) - set(IDS)
    assert not unknown, f"notebooks check unknown exercises {unknown}"
