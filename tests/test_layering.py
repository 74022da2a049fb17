"""The layers import one way (docs/architecture.md): the hardware model knows nothing of the
engine or of Linux, the engine nothing of the machine, the machine nothing of Linux, and only
engine/ touches Unicorn. Read from the source with `ast`, so a violation fails here with the
file and line, not somewhere later as an import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "uintr_emu"

# Module prefix -> the project modules (prefixes) it may import.
ALLOWED = {
    "hw": ("hw",),
    "engine": ("engine",),
    "traps": ("hw", "engine"),
    "machine": ("hw", "engine", "traps"),
    "trace": ("trace",),
    "options": ("hw", "options"),
    "linux": ("hw", "engine", "machine", "options", "trace", "linux"),
    # Full-system mode (docs/system.md): the hardware and the engine, never the Linux personality.
    "system": ("hw", "engine", "machine", "cliopts", "options", "system"),
}
# Imports inside functions that are there on purpose (a lazy import of something heavy).
LAZY = {
    ("__init__", "api"),  # `from uintr_emu import Machine` without loading the engine early
    ("__init__", "options"),
    ("cli", "api"),  # --help and usage errors do not load the engine
    ("cli", "gdbstub"),
    ("cli", "trace"),  # --timeline and --stats: json and statistics, not needed by a plain run
    ("explore", "api"),
    ("explore", "cluster"),  # Dask, only for --cluster
    ("system", "system"),  # system/cli.py: the machine (and the engine) only when booting
    ("system", "engine"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module relative to uintr_emu or 'unicorn...', inside a function)."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path).split(".")
    package = here[:-1] if path.name != "__init__.py" else here[:-1]
    out: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    name = alias.name
                    if name.startswith("uintr_emu."):
                        name = name.removeprefix("uintr_emu.")
                    out.append((child.lineno, name, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                    names = [target] if child.module else [f"{target}.{a.name}".lstrip(".")
                                                          for a in child.names]  # fmt: skip
                    for n in names:
                        out.append((child.lineno, n.lstrip("."), in_function))
                elif child.module:
                    out.append((child.lineno, child.module.removeprefix("uintr_emu."),
                                in_function))  # fmt: skip
            visit(child, nested)

    visit(tree, False)
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))
PROJECT = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path: Path) -> None:
    name = _module_name(path)
    layer = name.split(".")[0]
    allowed = ALLOWED.get(layer)
    bad = []
    for line, target, _in_function in _imports(path):
        top = target.split(".")[0]
        if top == "unicorn" and layer != "engine":
            bad.append(f"line {line}: imports {target} (only engine/ touches Unicorn)")
        if allowed is not None and top in PROJECT and top not in allowed:
            bad.append(f"line {line}: {layer} imports {target}")
    assert not bad, f"{path.relative_to(PACKAGE)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_local_project_imports(path: Path) -> None:
    """An import inside a function hides a dependency (often one that would be a cycle); the
    few lazy ones are listed in LAZY, each for a reason."""
    name = _module_name(path)
    found = [
        f"line {line}: {target}"
        for line, target, in_function in _imports(path)
        if in_function
        and target.split(".")[0] in PROJECT
        and (name.split(".")[0], target.split(".")[0]) not in LAZY
    ]
    assert not found, f"{path.relative_to(PACKAGE)} imports inside functions: {found}"
