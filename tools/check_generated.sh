#!/usr/bin/env bash
# Fail when the committed generated code differs from what the protos and pinned tools give
# (CI runs this; fix with `make generate`, i.e. tools/generate.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT

"$root/tools/generate.sh" "$fresh"

stale=0
for tree in clients/python/watchword/auth clients/python/watchword/_sync clients/typescript/src/gen \
  examples/bloggy/bloggy; do
  if [[ ! -d "$root/$tree" ]]; then
    echo "check_generated: $tree is missing" >&2
    stale=1
  elif ! diff -r -x __pycache__ -x '*.pyc' "$fresh/$tree" "$root/$tree" >&2; then
    stale=1
  fi
done

if (( stale )); then
  echo "check_generated: generated code is stale: run make generate" >&2
  exit 1
fi
echo "check_generated: generated code is up to date"
