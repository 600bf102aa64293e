"""The runtime's layers: no module of ``realtime`` imports from a layer above its own.

The folders of ``realtime/`` are its layers (``realtime/__init__.py`` describes them); :data:`LAYERS`
declares their order, lowest first, and is the only place that does. Every import is read from the
source (:mod:`ast`), including those inside functions (the command line imports most things lazily),
so nothing of the runtime is run. The runtime also never reaches into the training, benchmark or test
code, nor TensorFlow (``model_export`` is the only package that imports it).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "realtime"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("engine", (PACKAGE,)),
    ("settings", ("realtime.config",)),
    ("files", ("realtime.files",)),
    ("live audio", ("realtime.live",)),
    ("desktop service", ("realtime.desktop",)),
    ("command line", ("realtime.cli", "realtime.__main__")),
)
"""The layers, lowest first, each with the modules or packages it holds (a module belongs to the layer
of the longest name that contains it). ``engine``: the modules at the top of ``realtime/`` (the
enhancer, DSP, model, metadata and what they need); a module may import from its own layer and the
layers below it."""

FORBIDDEN = ("model_export", "benchmarks", "tests", "tensorflow", "keras", "tf_keras", "scipy")
"""Top-level packages the runtime never imports: training and export, benchmarks, tests, TensorFlow, and
scipy (not a runtime dependency: files are resampled with soxr; ``tests/test_audio_formats.py`` also runs
file mode with scipy made unimportable)."""


@dataclass(frozen=True)
class Import:
    """One imported module, as written in ``module`` at ``line``."""

    module: str
    """The module that imports."""
    line: int
    imported: str
    """The full dotted name of what is imported (a module, or a package when a name in it is)."""

    def __str__(self) -> str:
        return f"{module_path(self.module)}:{self.line} imports {self.imported}"


def module_name(path: Path) -> str:
    """The dotted module name of a file under :data:`PACKAGE_DIR` (a package's ``__init__``: the package)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_path(module: str) -> str:
    """The source file of ``module``, relative to the repository (for messages)."""
    base = PACKAGE_DIR.parent / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return str(path.relative_to(PACKAGE_DIR.parent))


def runtime_modules() -> list[str]:
    """Every module of the runtime package, sub-packages included."""
    return sorted(module_name(path) for path in PACKAGE_DIR.rglob("*.py"))


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of the runtime (not a name defined in one)."""
    base = PACKAGE_DIR.parent / Path(*name.split("."))
    return base.is_dir() or base.with_suffix(".py").is_file()


def imports_of(module: str, source: str) -> list[Import]:
    """What ``module`` (whose text is ``source``) imports, anywhere in it: full dotted names.

    ``from package import name`` counts as importing ``package.name`` when that is a module of the
    runtime, else as importing ``package``; relative imports are resolved against ``module``.
    """
    is_package = module_path(module).endswith("__init__.py")
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(Import(module, node.lineno, full if _is_module(full) else base))
    return list(dict.fromkeys(found))  # one entry per line and module imported


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the layer holding ``module``, or None if no layer holds it."""
    best: tuple[int, int] | None = None  # (length of the matching name, layer index)
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                if best is None or len(member) > best[0]:
                    best = (len(member), index)
    return None if best is None else best[1]


def upward_imports(imports: list[Import]) -> list[str]:
    """The imports among ``imports`` that reach a layer above their module's, one message each."""
    problems = []
    for item in imports:
        if not (item.imported == PACKAGE or item.imported.startswith(PACKAGE + ".")):
            continue
        own, other = layer_of(item.module), layer_of(item.imported)
        if own is None or other is None or other <= own:
            continue
        problems.append(f"{item} ({LAYERS[own][0]} layer imports from the {LAYERS[other][0]} layer above it)")
    return problems


def _all_imports() -> list[Import]:
    found = []
    for module in runtime_modules():
        found += imports_of(module, (PACKAGE_DIR.parent / module_path(module)).read_text())
    return found


def test_every_runtime_module_belongs_to_a_declared_layer() -> None:
    """A new sub-package must be given its place in LAYERS (a new top-level module is engine)."""
    loose = [module_path(m) for m in runtime_modules()
             if m.count(".") > 1 and not any(m.startswith(p + ".") for _, ps in LAYERS[1:] for p in ps)]
    assert not loose, "modules of a sub-package that LAYERS does not name: " + ", ".join(loose)
    declared = [member for _, members in LAYERS for member in members]
    missing = [member for member in declared if not _is_module(member)]
    assert not missing, f"LAYERS names modules that do not exist: {missing}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    problems = upward_imports(_all_imports())
    order = " < ".join(name for name, _ in LAYERS)
    assert not problems, f"imports against the layer order ({order}):\n  " + "\n  ".join(problems)


def test_the_runtime_imports_no_training_benchmark_test_tensorflow_or_scipy_code() -> None:
    problems = [f"{item}" for item in _all_imports() if item.imported.split(".")[0] in FORBIDDEN]
    assert not problems, "the runtime must not import these:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "flagged"),
    [
        ("realtime.enhancer", "def f():\n    from realtime.live.processor import LiveProcessor\n", True),
        ("realtime.files.file_mode", "import realtime.desktop.service\n", True),
        ("realtime.live.processor", "from ..desktop import service\n", True),
        ("realtime.config", "from realtime import cli\n", True),
        ("realtime.desktop.service", "from realtime.live.processor import LiveProcessor\n", False),
        ("realtime.live.processor", "from . import portaudio_scan\nfrom ..enhancer import Enhancer\n", False),
        ("realtime.cli", "from realtime import __version__\n", False),
    ],
)
def test_the_check_sees_upward_imports_wherever_they_are_written(module: str, source: str, flagged: bool) -> None:
    """The checker itself: an upward import inside a function, relative or absolute, is found and named."""
    problems = upward_imports(imports_of(module, source))
    assert bool(problems) == flagged, problems
    if flagged:
        assert module_path(module) in problems[0] and "layer above it" in problems[0]
