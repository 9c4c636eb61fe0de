#!/usr/bin/env bash
# Regenerate all code generated from protos/ (make generate).
#
#   tools/generate.sh [OUT_ROOT]
#
# Writes, under OUT_ROOT (default: the repository root):
#   clients/python/watchword/auth/     __init__.py, v1/__init__.py, and in v1/ for each proto:
#                                      *_pb2.py, *_pb2.pyi, *_pb2_grpc.py, *_pb2_grpc.pyi
#   clients/python/watchword/_sync/    the blocking client, from the asyncio one (unasync)
#   clients/typescript/src/gen/        watchword/auth/v1/*_pb.ts (protoc-gen-es v2)
#   examples/bloggy/bloggy/            the demo's code from examples/bloggy/protos/ (Python
#                                      only; the same four files per proto as above)
# The trees are replaced as a whole, so nothing stale survives; they hold generated code only.
# buf (with buf.gen.yaml) runs every plugin it can; the *_pb2_grpc.py files come from
# grpcio-tools fed with buf's image, as grpcio-tools has no standalone plugin binary.
# The output depends only on the protos and the pinned tools: no timestamps, no paths.
# Needs: .venv (make install) and clients/typescript/node_modules (npm ci in clients/typescript).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_root="${1:-$root}"
mkdir -p "$out_root"
out_root="$(cd "$out_root" && pwd)"

buf="$root/clients/typescript/node_modules/.bin/buf"
python="$root/.venv/bin/python"

die() { echo "generate.sh: $*" >&2; exit 1; }
[[ -x "$buf" && -x "$root/clients/typescript/node_modules/.bin/protoc-gen-es" ]] ||
  die "buf/protoc-gen-es missing: run 'npm ci' in clients/typescript"
[[ -x "$python" && -x "$root/.venv/bin/protoc-gen-mypy" && -x "$root/.venv/bin/protoc-gen-mypy_grpc" ]] ||
  die "the venv or mypy-protobuf is missing: create .venv and install the dev dependencies"
"$python" -c 'import grpc_tools.protoc' 2>/dev/null ||
  die "grpcio-tools is missing from .venv"

# Generate into a staging directory first, so a failure leaves the output trees untouched.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cd "$root"  # buf.gen.yaml's plugin and protoc paths are relative to the repository root.
"$buf" generate -o "$stage"

"$buf" build -o "$stage/image.binpb"
mapfile -t protos < <("$buf" ls-files --format import | LC_ALL=C sort)
(( ${#protos[@]} > 0 )) || die "no .proto files found"
"$python" -m grpc_tools.protoc \
  --descriptor_set_in="$stage/image.binpb" \
  --grpc_python_out="$stage/clients/python" \
  "${protos[@]}"

py_pkg="$stage/clients/python/watchword/auth"
[[ -d "$py_pkg/v1" ]] || die "no Python code was generated in watchword/auth/v1"
: > "$py_pkg/__init__.py"
: > "$py_pkg/v1/__init__.py"

# Replace the output trees as a whole.
install_tree() {  # install_tree STAGED_DIR DEST_DIR
  rm -rf "$2"
  mkdir -p "$(dirname "$2")"
  cp -R "$1" "$2"
}
install_tree "$py_pkg" "$out_root/clients/python/watchword/auth"

# The blocking Python client, from the asyncio one (hand-written): see the script.
"$python" "$root/tools/unasync_client.py" "$stage/unasync"
install_tree "$stage/unasync/clients/python/watchword/_sync" "$out_root/clients/python/watchword/_sync"
install_tree "$stage/clients/typescript/src/gen" "$out_root/clients/typescript/src/gen"

# The bloggy demo (examples/bloggy) has its own protos, outside the buf module. They are
# mapped to the import path examples/bloggy/ so the generated modules import each other
# as examples.bloggy.bloggy.v1, the package they live in, with no rewriting afterwards.
demo_protos="examples/bloggy/protos"
mapfile -t demo < <(
  cd "$demo_protos" && find . -name '*.proto' | sed 's|^\./|examples/bloggy/|' | LC_ALL=C sort
)
(( ${#demo[@]} > 0 )) || die "no .proto files found in $demo_protos"
mkdir -p "$stage/demo"
"$python" -m grpc_tools.protoc \
  --proto_path="examples/bloggy=$demo_protos" \
  --plugin=protoc-gen-mypy="$root/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$root/.venv/bin/protoc-gen-mypy_grpc" \
  --python_out="$stage/demo" \
  --grpc_python_out="$stage/demo" \
  --mypy_out=quiet:"$stage/demo" \
  --mypy_grpc_out=quiet:"$stage/demo" \
  "${demo[@]}"
demo_pkg="$stage/demo/examples/bloggy/bloggy"
[[ -d "$demo_pkg/v1" ]] || die "no Python code was generated in examples/bloggy/bloggy/v1"
: > "$demo_pkg/__init__.py"
: > "$demo_pkg/v1/__init__.py"
install_tree "$demo_pkg" "$out_root/examples/bloggy/bloggy"
