"""A migration is history: it carries the SQL it ran as literal text and
imports none of the live code (common, services, gateway, operations),
whose next edit would otherwise rewrite what an applied revision means."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIVE_PACKAGES = ("common", "services", "gateway", "operations")
MIGRATIONS = sorted(ROOT.glob("services/*/migrations/versions/*.py"))


def live_imports(source: str) -> list[str]:
    """Each import of live code, or a relative one (which can only reach
    it), as "line N: module"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            modules = [str(node.args[0].value)]
        else:
            continue
        found += [f"line {node.lineno}: {module}" for module in modules
                  if module.startswith(".") or module.split(".")[0] in LIVE_PACKAGES]
    return found


def test_every_service_has_migrations_to_check():
    assert {path.parts[-4] for path in MIGRATIONS} == {"campaigns", "moderation", "payments"}


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_migration_imports_no_live_code(path):
    assert live_imports(path.read_text()) == []


def test_the_check_sees_every_way_of_importing_live_code():
    source = ("import common.outbox\nfrom services.campaigns import domain\nfrom . import sibling\n"
              "import importlib\nimportlib.import_module('gateway.inputs')\n__import__('operations')\n"
              "from alembic import op\nimport sqlalchemy as sa\n")
    assert live_imports(source) == ["line 1: common.outbox", "line 2: services.campaigns", "line 3: .",
                                    "line 5: gateway.inputs", "line 6: operations"]
