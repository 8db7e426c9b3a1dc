"""Plausible wrong answers to every exercise, one module per chapter (``chNN.py``).

Each module defines ``MISTAKES = {"N.M": [(description, impl, hint), ...]}``;
tests/test_loop.py runs every exercise's check on every mistake and requires an
AssertionError whose message contains the hint.
"""

from __future__ import annotations

import importlib
import pkgutil

MISTAKES: dict[str, list] = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _id, _cases in _module.MISTAKES.items():
        assert _id not in MISTAKES, f"mistakes for {_id} recorded twice"
        MISTAKES[_id] = _cases
