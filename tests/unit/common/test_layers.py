"""Imports point inward: the shared plumbing in common/ depends on none of
what it serves (services, the gateway, the operator's command line), by an
import statement or by a module named in a string."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUTER = ("services", "gateway", "operations")


def outward_references(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if node.value.split(".")[0] in OUTER and "." in node.value and " " not in node.value else []
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names if name.split(".")[0] in OUTER]
    return found


def test_common_depends_on_no_service_gateway_or_entry_point():
    offenders = [ref for path in sorted((ROOT / "common").rglob("*.py")) for ref in outward_references(path)]
    assert offenders == []
