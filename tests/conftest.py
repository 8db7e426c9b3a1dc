import pytest

from lmkit import grading


@pytest.fixture(autouse=True)
def learner_mode(monkeypatch):
    """Every test starts in learner mode, whatever the shell's LMKIT_REFERENCE says."""
    monkeypatch.delenv(grading.ENV_VAR, raising=False)
    grading.use_reference(None)
    yield
    grading.use_reference(None)


@pytest.fixture
def reference_solutions(learner_mode):
    """Every exercise runs its reference solution (the course's models, trainers and
    fine-tuning are tested on the reference exercises). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("reference_solutions")``; a subprocess needs
    ``LMKIT_REFERENCE=all`` in its own environment."""
    grading.use_reference("all")
    yield
    grading.use_reference(None)
