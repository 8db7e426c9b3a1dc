"""The hint extractor of tests/hint_coverage.py finds hints wherever the checks write them,
so that `make hint-coverage` (which runs the loop tests under coverage) cannot pass by
finding nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.hint_coverage import CHECKS, hints_in

SAMPLE = """
from lmkit.checks import compare, expect_raises, fail
from lmkit.grading import checks

HINT_TABLE = "a module constant whose name says hint"


def _suspects(x):
    def s(k):
        return lambda: x + k

    return [
        (lambda: x + 1, "a suspect's hint, paired with a lambda"),
        (s(2), "a suspect's hint, paired with a call that makes one"),
    ]


@checks("99.1")
def check(impl):
    case = "not a hint: a case description of some length"
    got = impl(1)
    hint = "an assigned hint, chosen by a branch"
    fail(case, got, 2, hint)
    fail(case, got, 2, "a hint passed in the fourth position")
    compare(case, got, got, _suspects(got), "a default hint, the fifth argument")
    expect_raises(case, lambda: impl(0), ValueError, hint="a hint passed by keyword")
    hints = {"key, not a hint at all": "a value in a table of hints"}
    raise AssertionError(f"{case}: wrong.\\nHint: the text after the marker, {got} included")
    raise AssertionError(f"{case}: wrong.\\nHint: {hint}")


@checks("99.2")
def check_other(impl):
    fail("other", impl(1), 2, HINT_TABLE)
"""


def test_hints_are_found_in_every_position(tmp_path: Path):
    path = tmp_path / "ch99.py"
    path.write_text(textwrap.dedent(SAMPLE))
    hints = hints_in(path)
    texts = [h.text for h in hints]
    for want in [
        "a module constant whose name says hint",
        "a suspect's hint, paired with a lambda",
        "a suspect's hint, paired with a call that makes one",
        "an assigned hint, chosen by a branch",
        "a hint passed in the fourth position",
        "a default hint, the fifth argument",
        "a hint passed by keyword",
        "a value in a table of hints",
        "the text after the marker, … included",
    ]:
        assert want in texts, f"{want!r} not found in {texts}"
    assert not any("case description" in t or t.startswith("key,") for t in texts)
    line_only = [h for h in hints if not h.key]
    assert [h.text for h in line_only] == ["Hint: {hint}"]  # proven by running its line
    # Each hint belongs to the checks that reach it, through helpers and constants too.
    owners = {h.text: set(h.exercises) for h in hints}
    assert owners["a module constant whose name says hint"] == {"99.2"}
    assert owners["a suspect's hint, paired with a lambda"] == {"99.1"}
    assert owners["a hint passed by keyword"] == {"99.1"}


def test_every_check_module_has_hints():
    counts = {p.name: len(hints_in(p)) for p in sorted(CHECKS.glob("ch*.py"))}
    assert len(counts) >= 10 and all(n >= 5 for n in counts.values()), counts
    assert "use the natural logarithm (nats), not bits" in [
        h.text for h in hints_in(CHECKS / "ch06.py")
    ]
