"""Generates the Python code for every proto under protos/ into gen/ (one package, never hand-edited)."""
import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main([
        "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
        f"--python_out={OUT}", f"--pyi_out={OUT}", f"--grpc_python_out={OUT}", *files,
    ])
    for folder in [p for p in (OUT / "adtech").rglob("*") if p.is_dir()] + [OUT / "adtech"]:
        (folder / "__init__.py").touch()
    return code


if __name__ == "__main__":
    sys.exit(main())
