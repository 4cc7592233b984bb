#!/usr/bin/env bash
# Build the weir binaries the Packer template uploads, on your machine:
#   deploy/packer/scripts/build-weir.sh [ARCH...]    # ARCH: arm64, amd64 (default both)
# weir needs no cgo, so each is a static cross-compiled binary. -trimpath keeps
# build paths out; the VCS revision goes in by itself (`weir version` shows it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../../.." && pwd)
out="$repo/deploy/packer/build"
mkdir -p "$out"

if [ $# -eq 0 ]; then
  set -- arm64 amd64
fi
for arch in "$@"; do
  case "$arch" in
    arm64 | amd64) ;;
    *)
      echo "build-weir.sh: unknown architecture $arch (arm64 or amd64)" >&2
      exit 2
      ;;
  esac
  (cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -o "$out/weir-linux-$arch" ./cmd/weir)
  echo "$out/weir-linux-$arch"
done
