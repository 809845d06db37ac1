"""The packages import one way: api uses web's list state, actions and models; web uses idle,
alerts, actions, live, collection and models; idle (the auto-pause) uses actions, collection and
models; actions use collection and models; live, collection and alerts use models; models use
nothing of ours but fleet.secrets; the app
never imports the simulator at module level (production installs lack it)."""

import ast
from pathlib import Path

import pytest

FLEET = Path(__file__).resolve().parent.parent / "fleet"
FORBIDDEN = {
    "models": (
        "fleet.actions",
        "fleet.alerts",
        "fleet.collection",
        "fleet.idle",
        "fleet.live",
        "fleet.web",
        "simulator",
    ),
    "collection": (
        "fleet.actions",
        "fleet.alerts",
        "fleet.idle",
        "fleet.live",
        "fleet.web",
        "simulator",
    ),
    "live": ("fleet.actions", "fleet.alerts", "fleet.idle", "fleet.web", "simulator"),
    "alerts": (
        "fleet.actions",
        "fleet.collection",
        "fleet.idle",
        "fleet.live",
        "fleet.web",
        "simulator",
    ),
    "actions": ("fleet.alerts", "fleet.idle", "fleet.live", "fleet.web", "simulator"),
    "idle": ("fleet.alerts", "fleet.live", "fleet.web", "simulator"),
    "web": ("fleet.api", "simulator"),
    "api": ("fleet.live", "simulator"),
    "management": ("simulator",),
}
# The demo command imports the simulator inside the command, with a message when it is absent.
LAZY_ALLOWED = {"management"}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_never_imports_the_layers_above_it(package):
    wrong = {
        f"{path.relative_to(FLEET.parent)} imports {name}"
        for path in (FLEET / package).rglob("*.py")
        for name in _imports(path, top_level_only=package in LAZY_ALLOWED)
        if name.startswith(FORBIDDEN[package])
    }
    assert not wrong, sorted(wrong)
