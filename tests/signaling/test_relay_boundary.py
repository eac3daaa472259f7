"""Signaling meets the relay at ``sfu``'s exported names and nowhere else, and signaling's own
modules import each other without a circle (metrics used to need consultations' types while
consultations imported metrics).

The checks read the source (imports in ``if TYPE_CHECKING:`` blocks and inside functions count
too), so they hold for code paths no test runs; one more imports in a fresh interpreter.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import sfu

ROOT = Path(__file__).parents[2]


def test_signaling_imports_only_names_the_relay_exports():
    assert relay_imports_outside_the_api(ROOT) == []


def test_signaling_touches_no_private_attribute_of_the_relays_classes():
    assert private_relay_attributes_used(ROOT) == []


def test_signalings_modules_import_each_other_without_a_circle():
    assert import_cycles(ROOT) == []


@pytest.mark.parametrize("module", ["signaling.metrics", "signaling.consultations"])
def test_each_module_of_the_former_circle_imports_first_in_a_fresh_interpreter(module):
    # metrics must not pull consultations in: it is handed the live state instead
    check = f"import sys, {module}; print('signaling.consultations' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(module == "signaling.consultations")


# --- the checks, on any source tree (so they can be tried on an older one) --------------------


def relay_imports_outside_the_api(root: Path) -> list[str]:
    """``file:line import`` for every import of ``sfu`` in signaling that is not
    ``from sfu import <exported name>``."""
    found = []
    for path, tree in _modules(root, "signaling"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name.split(".")[0] == "sfu"]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sfu":
                exported = node.module == "sfu" and node.level == 0
                bad = [a.name for a in node.names if not exported or a.name not in sfu.__all__]
            else:
                continue
            if bad:
                found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def private_relay_attributes_used(root: Path) -> list[str]:
    """``file:line expression`` where signaling reads an underscored attribute that one of the
    relay's exported classes defines, on anything but ``self`` (e.g. ``self._room._legs``)."""
    private = set()
    for name in sfu.__all__:
        cls = getattr(sfu, name)
        if inspect.isclass(cls) and cls.__module__.startswith("sfu."):
            private |= _underscored_names(ast.parse(inspect.getsource(cls)))
    found = []
    for path, tree in _modules(root, "signaling"):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Each circle of imports among signaling's modules, as the list of modules around it."""
    graph = _import_graph(root, "signaling")
    cycles: list[list[str]] = []
    finished: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in finished:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        finished.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = {_module_name(root, path): path for path, _ in _modules(root, package)}
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                imported.add(base)
                imported |= {f"{base}.{a.name}" for a in node.names}  # a submodule, maybe
        # a module importing its own package is no circle: Python runs the package first anyway
        graph[name] = {m for m in imported if m in modules and not _within(name, m)}
    return graph


def _modules(root: Path, package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((root / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _underscored_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}
