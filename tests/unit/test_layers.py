"""The package's folders are floors: a module may import its own floor or the floors below it.

Read top-down, the floors are the data flow of DESIGN.md: command faces, wiring, control,
session, providers, the media source, the synthetic avatar, sinks, devices, the pure
pipeline, frame types, and the foundation everyone uses.  ``sim`` stands beside the daemon:
it is the far side of the network (fake services and their avatar), never imported by it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bridge"

# Higher number = higher floor.  A key is a module or folder under bridge/.
FLOORS: dict[str, int] = {
    "cli": 12,
    "__main__": 12,
    "sim": 11,
    "app": 10,
    "supervisor": 10,
    "control": 9,
    "session": 8,
    "providers": 7,
    "source": 6,
    "synthetic": 5,
    "sinks": 4,
    "devices": 3,
    "pipeline": 2,
    "media": 1,
    "config": 0,
    "errors": 0,
    "log": 0,
    "eventbus": 0,
    "sdnotify": 0,
    "watchdog": 0,
    "backoff": 0,
    "cleanup": 0,
    "__init__": 0,
}


def floor_of(module: str) -> int:
    """``bridge.providers.heygen.client`` → the floor of ``providers``."""
    parts = module.split(".")
    assert parts[0] == "bridge", module
    key = parts[1] if len(parts) > 1 else "__init__"
    assert key in FLOORS, f"bridge.{key} has no floor in FLOORS: give it one"
    return FLOORS[key]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``bridge.*`` module the file imports, with its line (also inside functions)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bridge")]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("bridge")
        ):
            found.append((node.lineno, str(node.module)))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_floor() -> None:
    for path in SOURCES:
        floor_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_imports_a_floor_above_its_own(path: Path) -> None:
    here = module_name(path)
    mine = floor_of(here)
    upward = [
        f"line {line}: {target} (floor {floor_of(target)} > {mine})"
        for line, target in imports_of(path)
        if target != "bridge" and floor_of(target) > mine
    ]
    assert not upward, f"{here} (floor {mine}) imports upward: {upward}"


def test_the_daemon_never_imports_the_simulators() -> None:
    for path in SOURCES:
        here = module_name(path)
        if here.startswith(("bridge.sim", "bridge.cli")):
            continue
        targets = [t for _, t in imports_of(path) if t.startswith("bridge.sim")]
        assert not targets, f"{here} imports {targets}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from bridge.session.manager import SessionManager\n")
    assert imports_of(sample) == [(2, "bridge.session.manager")]
    assert floor_of("bridge.session.manager") > floor_of("bridge.source.livekit")
