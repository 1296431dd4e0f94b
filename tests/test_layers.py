"""The import graph runs one way: the kernel at the bottom, the launcher at the top.

    kernel            imports no other Bondgate package
    devices           kernel
    central           kernel                      (never edge or devices: they meet over HTTP)
    edge              kernel, devices             (never central)
    firmware_sim      kernel, devices             (the simulators speak through the protocol modules)
    bondgate          anything: the CLI, the demo and process management compose the rest
    testkit           anything: what tests and benches share; no product package imports it

Read from the source (every `import` and `from … import`, also inside functions), not from what a
run happened to load.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernel", "devices", "central", "edge", "firmware_sim", "bondgate", "testkit")
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "devices": {"kernel"},
    "central": {"kernel"},
    "edge": {"kernel", "devices"},
    "firmware_sim": {"kernel", "devices"},
    "bondgate": {"kernel", "devices", "central", "edge", "firmware_sim"},
    "testkit": {"kernel", "devices", "central", "edge", "firmware_sim", "bondgate"},
}


def imports_of(package: str) -> dict[str, set[str]]:
    """For each Bondgate package `package` imports, the files that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    upward = {dep: files for dep, files in imports_of(package).items() if dep not in ALLOWED[package]}
    assert upward == {}, f"{package} imports upward or sideways: {upward}"


def test_benches_do_not_import_the_tests() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bench").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tests")
        or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tests" for a in node.names))
    ]
    assert offenders == []
