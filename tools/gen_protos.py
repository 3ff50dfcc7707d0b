"""Regenerates the Python code and the descriptor set both gateways read, from `protos/`.

`python -m tools.gen_protos [OUT_ROOT]` writes `gen/python/...` and `gateway/api_descriptor.pb` under
OUT_ROOT (the repository by default); the staleness test writes into a temporary folder and compares.
"""

from __future__ import annotations

import pathlib
import sys

import google.api.annotations_pb2
import grpc_tools
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "protos"
PYTHON_OUT = pathlib.Path("gen/python")
DESCRIPTOR_OUT = pathlib.Path("gateway/api_descriptor.pb")
# Typed error details (BadRequest, ...) must be in the descriptor for Envoy to print them as JSON.
EXTRA_DESCRIPTOR_PROTOS = ["google/rpc/error_details.proto", "google/rpc/status.proto"]


def googleapis_include() -> pathlib.Path:
    return pathlib.Path(google.api.annotations_pb2.__file__).parents[2]


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def _protoc(args: list[str]) -> None:
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    includes = [f"-I{PROTO_ROOT}", f"-I{googleapis_include()}", f"-I{well_known}"]
    code = protoc.main(["grpc_tools.protoc", *includes, *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}) for: {' '.join(args)}")


def generate(out_root: pathlib.Path) -> None:
    python_out = out_root / PYTHON_OUT
    python_out.mkdir(parents=True, exist_ok=True)
    files = proto_files()
    _protoc(
        [f"--python_out={python_out}", f"--pyi_out={python_out}", f"--grpc_python_out={python_out}", *files]
    )
    # Regular packages (not namespace ones), so setuptools and type checkers find them.
    for proto in files:
        for package in pathlib.Path(proto).parents:
            if package != pathlib.Path("."):
                (python_out / package / "__init__.py").touch()
    descriptor = out_root / DESCRIPTOR_OUT
    descriptor.parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={descriptor}",
            *files,
            *EXTRA_DESCRIPTOR_PROTOS,
        ]
    )


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)
