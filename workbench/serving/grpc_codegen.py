"""Compile `proto/inference.proto` with grpcio-tools: `python -m workbench.serving.grpc_codegen`.

The output is a descriptor set (`proto/inference.binpb`), committed, so the server needs only grpcio and
protobuf at run time. It is loaded into a private descriptor pool, not protobuf's default one: classic
`*_pb2.py` stubs register package `inference` in the default pool, and so do tritonclient's and kserve's,
so any two of them in one process fail with "duplicate symbol 'inference.ServerLiveRequest'". They are produced by the grpcio-tools version pinned in the
`codegen` extra (`pip install ".[codegen]"`); `--check` regenerates into a temporary folder and fails
when the result differs from what is committed (tests/serving/test_grpc_codegen.py runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `workbench/`
PROTO = Path("workbench/serving/proto/inference.proto")
GENERATED = ("inference.binpb",)
PINNED_TOOLS = "1.81.1"  # the grpcio-tools version of the `codegen` extra


def tools_version() -> str:
    try:
        from importlib.metadata import version

        return version("grpcio-tools")
    except Exception:
        raise SystemExit('grpc_codegen: grpcio-tools is not installed; pip install "workbench[codegen]"') from None


def generate(out_root: Path) -> list[Path]:
    """Run protoc on the proto, writing the descriptor set under out_root/workbench/serving/proto/."""
    from grpc_tools import protoc

    target = out_root / PROTO.parent
    target.mkdir(parents=True, exist_ok=True)
    code = protoc.main(["grpc_tools.protoc", f"-I{PACKAGE_ROOT}",
                        f"--descriptor_set_out={target / GENERATED[0]}", str(PROTO)])
    if code != 0:
        raise SystemExit(f"grpc_codegen: protoc failed with exit code {code}")
    return [target / name for name in GENERATED]


def differences() -> list[str]:
    """The generated files that differ from (or are missing beside) the committed ones."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = PACKAGE_ROOT / PROTO.parent
        return [path.name for path in fresh
                if not (committed / path.name).exists() or not filecmp.cmp(path, committed / path.name, shallow=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.serving.grpc_codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when regenerating would change the stubs")
    args = parser.parse_args(argv)
    installed = tools_version()
    if installed != PINNED_TOOLS:
        print(f"grpc_codegen: grpcio-tools {installed} is installed; the stubs are made with {PINNED_TOOLS} "
              f'(pip install ".[codegen]")', file=sys.stderr)
        return 2
    if args.check:
        changed = differences()
        if changed:
            print(f"grpc_codegen: regenerating changes {', '.join(changed)}; run python -m "
                  f"workbench.serving.grpc_codegen and commit the result", file=sys.stderr)
            return 1
        print("grpc_codegen: the committed stubs are up to date")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copyfile(path, PACKAGE_ROOT / PROTO.parent / path.name)
            print(f"wrote {PROTO.parent / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
