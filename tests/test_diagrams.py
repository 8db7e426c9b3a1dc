"""The architecture diagrams: every one a chapter shows exists, and each is a fresh drawing.

The SVGs in ``chapters/figures/`` are drawn by ``scripts/draw_diagrams.py``; its ``--check``
mode redraws them in memory and fails when a committed file differs (the output is
byte-stable: fixed hash salt, no date, text as paths) or when a label overlaps another,
leaves its box or leaves the figure.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "chapters" / "figures"
SCRIPT = ROOT / "scripts" / "draw_diagrams.py"
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
DIAGRAMS = [
    "attention_heads",
    "block",
    "gpt",
    "kv_cache",
    "bert_inputs",
    "lora",
    "llama_block",
    "encoder_decoder",
]
# ``![alt](figures/x.svg)`` or a ``{figure}`` directive's argument.
REFERENCE = re.compile(r"(?<![\w/.-])(figures/[\w./-]+?\.svg)")


def _references() -> list[tuple[str, str]]:
    """(notebook, path) for every ``figures/….svg`` in a markdown cell."""
    found = []
    for nb in NOTEBOOKS:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                for path in REFERENCE.findall("".join(cell["source"])):
                    found.append((nb.name, path))
    return found


def test_every_referenced_diagram_exists():
    missing = [
        f"{nb} shows {path}"
        for nb, path in _references()
        if not (ROOT / "chapters" / path).is_file()
    ]
    assert not missing, "missing figures: " + "; ".join(missing)


@pytest.mark.parametrize("name", DIAGRAMS)
def test_diagram_is_a_small_svg_with_a_sensible_viewbox(name):
    path = FIGURES / f"{name}.svg"
    assert path.is_file(), f"{path.name} is missing: run python scripts/draw_diagrams.py"
    assert path.stat().st_size < 150_000, f"{path.name} is {path.stat().st_size} bytes"
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    x, y, w, h = map(float, root.get("viewBox").split())
    assert (x, y) == (0, 0)
    # Drawn 5–8.5 inches wide (72 pt per inch) for the book's ~750 px column.
    assert 360 <= w <= 612, f"{path.name}: {w} pt wide"
    assert 0.3 * w <= h <= 1.2 * w, f"{path.name}: {w} × {h} pt"


def test_committed_svgs_are_fresh_drawings():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_notices_a_stale_svg(tmp_path):
    stale = (FIGURES / "lora.svg").read_bytes().replace(b"</svg>", b"<!-- edited --></svg>")
    (tmp_path / "lora.svg").write_bytes(stale)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--out", str(tmp_path), "lora"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1 and "lora.svg: differs" in result.stdout, result.stdout
