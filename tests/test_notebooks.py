"""Hygiene of the committed chapter notebooks (nbval itself runs in `make nbval`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(/root/|/tmp/|/home/[a-z]|/Users/[A-Za-z]|/work/)")
VARIABLE_TAGS = {"nbval-ignore-output", "nbval-skip"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _code_cells(path: Path):
    return [(i, c) for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"]


def test_chapters_exist_and_are_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert NOTEBOOKS, "no chapter notebooks"
    for nb in NOTEBOOKS:
        assert f"chapters/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_outputs_are_stored_in_order(path):
    counts = [c.get("execution_count") for _, c in _code_cells(path)]
    assert None not in counts, f"{path.name}: run it (make reference-outputs) before committing"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_errors_paths_or_addresses_in_outputs(path):
    for i, cell in _code_cells(path):
        tags = set(cell.get("metadata", {}).get("tags", []))
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                assert "raises-exception" in tags, f"{path.name} cell {i} stores an error"
            text = json.dumps(out.get("text", "")) + json.dumps(
                out.get("data", {}).get("text/plain", "")
            )
            assert not MACHINE_PATH.search(text), f"{path.name} cell {i} shows a machine path"
            if not tags & VARIABLE_TAGS:
                assert not re.search(r"0x[0-9a-f]{6,}", text), (
                    f"{path.name} cell {i} shows a memory address"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_plot_cells_end_with_show(path):
    for i, cell in _code_cells(path):
        src = "".join(cell["source"]).strip()
        if re.search(r"plt\.(subplots|figure|plot|imshow|bar)\(", src):
            assert src.endswith("plt.show()"), f"{path.name} cell {i}: end plots with plt.show()"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_ignored_outputs_are_rare(path):
    """Only genuinely variable cells (machine details, timings) may skip comparison."""
    cells = _code_cells(path)
    ignored = [i for i, c in cells if VARIABLE_TAGS & set(c.get("metadata", {}).get("tags", []))]
    assert len(ignored) <= max(2, len(cells) // 5), f"{path.name}: too many ignored cells"
    for i, c in cells:
        assert "NBVAL_IGNORE_OUTPUT" not in "".join(c["source"]) or i in ignored


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_rhythm(path):
    """Objectives first, a summary at the end (d2l's rhythm)."""
    md = ["".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown"]
    assert md[0].startswith("# "), f"{path.name} must open with its title"
    assert "In this chapter you will" in md[0], f"{path.name}: state the objectives first"
    assert any("## Summary" in m for m in md), f"{path.name}: needs a summary"
