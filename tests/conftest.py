import pytest

from lmkit import grading


@pytest.fixture(autouse=True)
def learner_mode(monkeypatch):
    """Every test starts in learner mode, whatever the shell's LMKIT_REFERENCE says."""
    monkeypatch.delenv(grading.ENV_VAR, raising=False)
    grading.use_reference(None)
    yield
    grading.use_reference(None)
