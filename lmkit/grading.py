"""The course's grading loop: exercises, their reference solutions, and their checks.

Every exercise is a function in ``lmkit`` decorated with :func:`exercise`. Its body is
the learner's to write; until then it raises ``NotImplementedError("Exercise N.M: …")``.
The reference implementation with the identical signature lives in ``solutions/``,
and a check in ``lmkit/checks/`` decides whether an implementation is right.

Public entry points (see chapter 0):

- :func:`exercise_ids` — every exercise id, in course order
  (``python -m lmkit.grading --list`` prints each id with its name and ``lmkit`` file).
- :func:`reference` — the reference callable of an exercise.
- :func:`check` — run an exercise's check on an implementation (default: the function as
  it currently is in ``lmkit``). Prints one stable line on success, raises
  ``AssertionError`` with a hint on a wrong answer and :class:`ExerciseNotImplemented`
  on a stub.
- :func:`use_reference` / ``LMKIT_REFERENCE`` — make exercises dispatch to the reference
  solutions, so any chapter runs before its prerequisites are done.
- :func:`progress` — which exercises are done, failing or not started
  (also ``python -m lmkit.grading --progress``).

``LMKIT_REFERENCE`` accepts ``all``, ``missing`` (reference only where the learner's
function is still a stub), ``none``/empty, or a comma-separated list of chapter numbers
(``1,2``) and exercise ids (``1.1,2.3``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field

__all__ = [
    "Exercise",
    "ExerciseNotImplemented",
    "UnknownExercise",
    "check",
    "exercise",
    "exercise_ids",
    "get_exercise",
    "grade",
    "progress",
    "reference",
    "reference_mode",
    "references_for",
    "resolve_references",
    "use_reference",
]

#: The package whose modules ``chNN`` hold the checks (``@checks("N.M")``), loaded after
#: every ``lmkit`` module has registered its exercises (see :func:`_load`).
CHECKS_PACKAGE = "lmkit.checks"

_ID_RE = re.compile(r"^(\d+)\.(\d+)$")
ENV_VAR = "LMKIT_REFERENCE"


class ExerciseNotImplemented(NotImplementedError):
    """Raised by :func:`check` when the exercise still has its stub body."""


class UnknownExercise(KeyError):
    """An exercise id that the registry does not know; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


@dataclass
class Exercise:
    """One graded exercise: a learner-facing function, its reference and its check."""

    id: str
    name: str
    module: str
    learner: Callable = field(repr=False)
    check_fn: Callable | None = field(default=None, repr=False)
    _reference: Callable | None = field(default=None, repr=False, compare=False)
    _runner: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def solution_module(self) -> str:
        """``lmkit.scale`` → ``solutions.scale``: the reference lives under the same name."""
        return "solutions." + self.module.split(".", 1)[1]

    @property
    def source_file(self) -> str:
        return self.module.replace(".", "/") + ".py"

    def reference(self) -> Callable:
        # Resolved once: the dispatch runs on every call, and an import inside it would
        # also break torch.compile's graph at every exercise.
        if self._reference is None:
            try:
                self._reference = _resolve(self.solution_module, self.name)
            except AttributeError:
                raise LookupError(
                    f"{self.solution_module} has no reference for Exercise {self.id} ({self.name})"
                ) from None
        return self._reference

    def runner(self) -> Callable:
        """What reference mode runs: the reference, or its fused twin when the solution
        module lists one in ``FUSED`` (same results within float rounding, proven by the
        tests; PyTorch's one-kernel ``layer_norm`` instead of the written-out one, so the
        course's training runs as fast as plain PyTorch). Checks always test
        :meth:`reference`, the written-out solution."""
        if self._runner is None:
            reference = self.reference()  # imports the solution module
            fused = getattr(sys.modules[self.solution_module], "FUSED", {})
            self._runner = fused.get(self.name, reference)
        return self._runner

    def current(self) -> Callable:
        """The function as ``lmkit`` exposes it now (dispatching to the reference if asked)."""
        return _resolve(self.module, self.name)


def resolve_references() -> None:
    """Import every exercise's reference now, outside any ``torch.compile`` trace: an
    import inside a compiled forward pass is a graph break (the model builds call this)."""
    for ex in _REGISTRY.values():
        try:
            ex.runner()
        except LookupError:  # reported by the loop tests, not here
            pass


def _resolve(module: str, qualname: str) -> Callable:
    """``_resolve("lmkit.attention", "MultiHeadAttention.forward")`` → that function.

    Exercises are usually module-level functions; a method is named by its qualified name
    and its reference is the method of the same name on the class of the same name in
    ``solutions`` (typically a subclass that overrides just that method).
    """
    obj = sys.modules.get(module) or importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


_REGISTRY: dict[str, Exercise] = {}
_override: str | None = None  # set by use_reference(); wins over the environment variable


def _sort_key(exercise_id: str) -> tuple[int, int]:
    m = _ID_RE.match(exercise_id)
    assert m, exercise_id
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- registry


def exercise(exercise_id: str) -> Callable[[Callable], Callable]:
    """Mark a function in ``lmkit`` as Exercise ``exercise_id``.

    The decorated function runs the learner's body, unless reference mode covers this
    exercise; then it runs the reference in ``solutions/`` instead.
    """
    if not _ID_RE.match(exercise_id):
        raise ValueError(f"exercise ids look like '1.2', got {exercise_id!r}")

    def decorate(func: Callable) -> Callable:
        if exercise_id in _REGISTRY and _REGISTRY[exercise_id].name != func.__qualname__:
            raise ValueError(f"Exercise {exercise_id} is registered twice")
        ex = Exercise(exercise_id, func.__qualname__, func.__module__, func)
        _REGISTRY[exercise_id] = ex
        _MODE_CACHE.clear()  # chapter and id lists changed

        @functools.wraps(func)
        def dispatch(*args, **kwargs):
            mode = _reference_mode_for(ex)
            if mode == "reference":
                return ex.runner()(*args, **kwargs)
            if mode == "missing":
                try:
                    return ex.learner(*args, **kwargs)
                except NotImplementedError as err:
                    if not _is_stub_error(err, exercise_id):
                        raise
                    return ex.runner()(*args, **kwargs)
            return ex.learner(*args, **kwargs)

        return dispatch

    return decorate


def checks(exercise_id: str) -> Callable[[Callable], Callable]:
    """Register ``func(impl)`` as the check of Exercise ``exercise_id``.

    The exercise must be registered first: :func:`_load` imports every ``lmkit`` module
    (which registers the exercises) before any check module.
    """

    def decorate(func: Callable) -> Callable:
        if exercise_id not in _REGISTRY:  # a check module imported on its own, before _load
            _load_exercises()
        if exercise_id not in _REGISTRY:
            raise ValueError(f"check for unknown Exercise {exercise_id}")
        _REGISTRY[exercise_id].check_fn = func
        return func

    return decorate


#: The package whose modules define the exercises (``@exercise``): every module of it is
#: imported before the checks, so a new chapter's module needs no edit here.
EXERCISES_PACKAGE = "lmkit"

_loaded = False


def _load_exercises() -> None:
    """Import every ``lmkit`` module: their ``@exercise`` decorators fill the registry."""
    import pkgutil

    package = importlib.import_module(EXERCISES_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{EXERCISES_PACKAGE}.{info.name}")


def _load() -> None:
    """Fill the registry explicitly: every ``lmkit`` module (the exercises), then every
    ``lmkit.checks.chNN`` (their checks). Nothing relies on which module imports which."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import pkgutil

    _load_exercises()
    checks_package = importlib.import_module(CHECKS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(checks_package.__path__), key=lambda m: m.name):
        if re.fullmatch(r"ch\d\d", info.name):
            importlib.import_module(f"{CHECKS_PACKAGE}.{info.name}")


def exercise_ids() -> list[str]:
    """Every exercise id in course order, e.g. ``['1.1', '1.2', '1.3', ...]``."""
    _load()
    return sorted(_REGISTRY, key=_sort_key)


def get_exercise(exercise_id: str) -> Exercise:
    """The :class:`Exercise` record for ``exercise_id``; a clear error lists the valid ids."""
    _load()
    key = str(exercise_id).strip()
    if key.lower().startswith("exercise "):
        key = key[len("exercise ") :].strip()
    if key not in _REGISTRY:
        raise UnknownExercise(
            f"no exercise {exercise_id!r}. Valid ids: {', '.join(exercise_ids())}"
        )
    return _REGISTRY[key]


def reference(exercise_id: str) -> Callable:
    """The reference implementation of ``exercise_id`` (from ``solutions/``)."""
    return get_exercise(exercise_id).reference()


# ---------------------------------------------------------------------- reference mode


def _parse_mode(spec: str, source: str) -> frozenset[str] | str:
    """Parse a reference-mode value, once per value (this runs on every exercise call)."""
    key = (spec, source)
    if key not in _MODE_CACHE:
        _MODE_CACHE[key] = _parse_mode_uncached(spec, source)
    return _MODE_CACHE[key]


#: Parsed reference-mode values; a plain dict (torch.compile traces it, not lru_cache).
_MODE_CACHE: dict[tuple[str, str], frozenset[str] | str] = {}


def _parse_mode_uncached(spec: str, source: str) -> frozenset[str] | str:
    """Parse an ``LMKIT_REFERENCE`` value into 'all', 'missing', or a set of exercise ids."""
    spec = spec.strip()
    if spec.lower() in {"", "none", "0", "off", "false"}:
        return frozenset()
    if spec.lower() in {"all", "true", "on", "yes"}:
        return "all"
    if spec.lower() == "missing":
        return "missing"
    _load()
    chosen: set[str] = set()
    chapters = sorted({ex.chapter for ex in _REGISTRY.values()})
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item.isdigit():
            if int(item) not in chapters:
                raise ValueError(
                    f"{source}: no chapter {item} has exercises. Chapters with exercises: "
                    f"{', '.join(map(str, chapters))} (or use 'all', 'missing', 'none')"
                )
            chosen |= {i for i, ex in _REGISTRY.items() if ex.chapter == int(item)}
        elif item in _REGISTRY:
            chosen.add(item)
        else:
            raise ValueError(
                f"{source}: {item!r} is neither a chapter nor an exercise id. Use 'all', "
                f"'missing', 'none', chapters like '1,2' or ids like "
                f"{', '.join(exercise_ids()[:3])}"
            )
    return frozenset(chosen)


def reference_mode() -> frozenset[str] | str:
    """The reference mode in force: ``'all'``, ``'missing'`` or a set of exercise ids."""
    if _override is not None:
        return _parse_mode(_override, "use_reference()")
    return _parse_mode(os.environ.get(ENV_VAR, ""), ENV_VAR)


def _reference_mode_for(ex: Exercise) -> str:
    mode = reference_mode()
    if mode == "all" or (isinstance(mode, frozenset) and ex.id in mode):
        return "reference"
    if mode == "missing":
        return "missing"
    return "learner"


def use_reference(spec: str | Iterable[str] | None = "all") -> None:
    """Make exercises run their reference solutions, like ``LMKIT_REFERENCE``.

    ``use_reference("all")``, ``use_reference("missing")``, ``use_reference(["1.1", "2"])``;
    ``use_reference(None)`` goes back to the environment variable (learner mode by default).
    """
    global _override
    if spec is None:
        _override = None
        return
    if not isinstance(spec, str):
        spec = ",".join(str(s) for s in spec)
    _parse_mode(spec, "use_reference()")  # validate now, fail early
    _override = spec


# ------------------------------------------------------------------------------ check


def _is_stub_error(err: BaseException, exercise_id: str) -> bool:
    return isinstance(err, NotImplementedError) and str(err).startswith(f"Exercise {exercise_id}:")


def check(exercise_id: str, impl: Callable | None = None) -> None:
    """Check an implementation of ``exercise_id``; print ``✓ Exercise N.M name`` if right.

    ``impl`` defaults to the function as it is in ``lmkit`` now. A wrong answer raises
    ``AssertionError`` with a hint about the likely mistake; a stub raises
    :class:`ExerciseNotImplemented`.
    """
    ex = get_exercise(exercise_id)
    if ex.check_fn is None:  # pragma: no cover - guarded by tests/test_loop.py
        raise LookupError(f"Exercise {ex.id} has no check")
    fn = impl if impl is not None else ex.current()
    if not callable(fn):
        raise TypeError(f"check({ex.id!r}, impl=…) needs a function, got {type(fn).__name__}")
    try:
        ex.check_fn(fn)
    except NotImplementedError as err:
        if _is_stub_error(err, ex.id):
            raise ExerciseNotImplemented(
                f"Exercise {ex.id} ({ex.name}) is not implemented yet: write it in "
                f"{ex.source_file}. The stub says: {err}"
            ) from None
        other = re.match(r"^Exercise (\d+\.\d+):", str(err))
        if other:
            raise ExerciseNotImplemented(
                f"Exercise {ex.id} ({ex.name}) uses Exercise {other.group(1)}, which is not "
                f"implemented yet: do it first, or run with LMKIT_REFERENCE=missing "
                f"to use its reference solution. The stub says: {err}"
            ) from None
        raise
    print(f"✓ Exercise {ex.id} {ex.name}")


@contextlib.contextmanager
def references_for(ids: Iterable[str]) -> Iterator[None]:
    """Run a block with the reference solutions of ``ids`` (exercise ids or chapter
    numbers) in force, on top of the current mode (``all`` and ``missing`` stay as they
    are). A check uses it for the exercises its test model is built from, so that it judges
    only its own exercise, whatever state the learner's earlier ones are in."""
    mode = reference_mode()
    if isinstance(mode, str):
        spec = mode
    else:
        spec = ",".join([*sorted(mode), *(str(i) for i in ids)])
    with _reference_override(spec):
        yield


# --------------------------------------------------------------------------- progress


@contextlib.contextmanager
def _reference_override(spec: str | None) -> Iterator[None]:
    """Set the reference mode (as :func:`use_reference` does) for a ``with`` block only."""
    global _override
    saved = _override
    _override = spec
    try:
        yield
    finally:
        _override = saved


def status(exercise_id: str) -> tuple[str, str]:
    """``('done'|'failing'|'not started', detail)`` for the learner's own code.

    Reference mode is ignored: progress is about what *you* wrote.
    """
    ex = get_exercise(exercise_id)
    try:
        with _reference_override("none"), redirect_stdout(io.StringIO()):
            check(ex.id, ex.learner)
        return "done", ""
    except ExerciseNotImplemented:
        return "not started", ""
    except AssertionError as err:
        return "failing", str(err).strip().splitlines()[0] if str(err).strip() else "wrong answer"
    except Exception as err:  # a crash in the learner's code is a failing exercise too
        return "failing", f"{type(err).__name__}: {err}".splitlines()[0]


def progress(file=None) -> dict[str, str]:
    """Print a table of every exercise's state and return ``{id: state}``."""
    out = file or sys.stdout
    states: dict[str, str] = {}
    width = max(len(_REGISTRY[i].name) for i in exercise_ids())
    for i in exercise_ids():
        ex = _REGISTRY[i]
        state, detail = status(i)
        states[i] = state
        mark = {"done": "✓", "failing": "✗", "not started": "·"}[state]
        line = f"{mark} {ex.id:<5} {ex.name:<{width}} {state}"
        if detail:
            line += f" — {detail[:110]}"
        print(line, file=out)
    counts = {s: list(states.values()).count(s) for s in ("done", "failing", "not started")}
    print(
        f"{counts['done']} done, {counts['failing']} failing, "
        f"{counts['not started']} not started (of {len(states)})",
        file=out,
    )
    return states


#: The options of strict nbval, in one place: ``make nbval`` and ``make reference-outputs``
#: read them from ``python -m lmkit.grading --nbval-args``, and :func:`grade` uses them.
NBVAL_ARGS = (
    "--nbval",
    "--nbval-sanitize-with",
    "tests/nbval_sanitize.cfg",
    "-p",
    "no:cacheprovider",
)


def nbval_args(root: object = None) -> list[str]:
    """:data:`NBVAL_ARGS`, with the sanitize file made absolute when ``root`` is given."""
    from pathlib import Path

    args = list(NBVAL_ARGS)
    if root is not None:
        i = args.index("--nbval-sanitize-with") + 1
        args[i] = str(Path(str(root)) / args[i])
    return args


def grade(notebooks: Iterable[str] | None = None, file=None) -> int:
    """Grade the learner's code: strict nbval on the chapter notebooks, then a summary.

    Runs in learner mode (``LMKIT_REFERENCE=none``) whatever the environment says.
    Returns 0 when every notebook reproduces the reference outputs and every exercise is
    done. This is ``make grade``.
    """
    import subprocess
    import tempfile
    import xml.etree.ElementTree as ET
    from pathlib import Path

    out = file or sys.stdout
    root = Path(__file__).resolve().parents[1]
    paths = sorted(notebooks or (str(p) for p in (root / "chapters").glob("*.ipynb")))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "nbval.xml"
        cmd = [sys.executable, "-m", "pytest", *paths, *nbval_args(root)]
        cmd += ["-q", "--tb=line", f"--junitxml={report}", "--rootdir", str(root)]
        env = {**os.environ, ENV_VAR: "none"}
        subprocess.run(cmd, cwd=root, env=env, check=False)
        cases = ET.parse(report).getroot().iter("testcase") if report.exists() else []
        per_nb: dict[str, list[int]] = {}
        for case in cases:
            # classname is the notebook's path with dots: "chapters.01_scale.ipynb"
            name = case.get("classname", "").split(".")[-2] + ".ipynb"
            bad = case.find("failure") is not None or case.find("error") is not None
            counts = per_nb.setdefault(name, [0, 0])
            counts[0] += 1
            counts[1] += bad
    print("\nGrading summary (your code, no reference solutions):", file=out)
    for name, (total, bad) in sorted(per_nb.items()):
        mark = "✓" if not bad else "✗"
        print(f"{mark} {name}: {total - bad} of {total} cells match the reference run", file=out)
    states = progress(file=out)
    clean = all(bad == 0 for _, bad in per_nb.values())
    return 0 if clean and all(s == "done" for s in states.values()) else 1


def signature_of(func: Callable) -> inspect.Signature:
    return inspect.signature(inspect.unwrap(func))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmkit.grading", description="The course's exercises and their checks."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--list", action="store_true", help="every exercise: its id, name and lmkit file"
    )
    group.add_argument(
        "--nbval-args", action="store_true", help="the pytest options of strict nbval"
    )
    group.add_argument("--progress", action="store_true", help="what is done, failing, not started")
    group.add_argument("--check", metavar="ID", nargs="+", help="run these exercises' checks")
    group.add_argument(
        "--grade", metavar="NOTEBOOK", nargs="*", help="nbval on the chapters (all by default)"
    )
    args = parser.parse_args(argv)
    if args.list:
        rows = [get_exercise(i) for i in exercise_ids()]
        width = max(len(ex.name) for ex in rows)
        print("\n".join(f"{ex.id:<5} {ex.name:<{width}} {ex.source_file}" for ex in rows))
        return 0
    if args.nbval_args:
        print(" ".join(NBVAL_ARGS))
        return 0
    if args.grade is not None:
        return grade(args.grade or None)
    if args.check:
        failed = 0
        for i in args.check:
            try:
                check(i)
            except (AssertionError, NotImplementedError, KeyError) as err:
                failed += 1
                print(f"✗ Exercise {i}: {err}")
        return 1 if failed else 0
    states = progress()
    return 0 if all(s == "done" for s in states.values()) else 1


if __name__ == "__main__":  # pragma: no cover
    # Run the copy in sys.modules["lmkit.grading"], which holds the registry the
    # exercise decorators filled, not this __main__ copy.
    from lmkit.grading import main as _main

    sys.exit(_main())
