"""The layout holds: what every process shares (vigil_runtime) and the worker (streams) do not
import the services, the shared runtime does not import the worker either, and the core and the
synthetic hospital import none of them, nor what draws files."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


CORE_FORBIDS = ("services", "streams", "vigil_runtime", "faust", "sqlalchemy", "reportlab", "matplotlib")


@pytest.mark.parametrize(("package", "forbidden"), [("streams", ("services",)),
                                                    ("vigil_runtime", ("services", "streams")),
                                                    ("vigil", CORE_FORBIDS),
                                                    ("vigil_hospital", (*CORE_FORBIDS, "vigil"))])  # fmt: skip
def test_a_package_imports_nothing_from_the_layers_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted((where, name) for where, name in imported(package) if name.split(".")[0] in forbidden)
    assert wrong == []


def test_only_the_store_touches_its_tables() -> None:
    """Every query goes through the store's read side (services/store/reads.py)."""
    wrong = sorted(
        (where, name)
        for package in ("services", "streams", "vigil_runtime", "benchmarks", "tests")
        for where, name in imported(package)
        if name == "services.store.tables" and not where.startswith("services/store/")
    )
    assert wrong == []
