#!/usr/bin/env bash
# Regenerates Sources/QForgeGraph/ONNX/onnx.pb.swift from proto/onnx.proto.
#
# Needs `protoc` (Debian: protobuf-compiler) and protoc-gen-swift 1.39.0, the version of the
# swift-protobuf runtime Package.swift names. Give the plugin as PROTOC_GEN_SWIFT=/path, or
# let this script build it from swift-protobuf's tag 1.39.0 in a scratch directory (outside the
# repository; SWIFT_PROTOBUF_GIT overrides where it is cloned from). Builds never run this:
# the generated file is committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=1.39.0
command -v protoc >/dev/null || { echo "generate-onnx-proto: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2; exit 1; }

plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
    scratch="${TMPDIR:-/tmp}/qforge-swift-protobuf-$version"
    if [ ! -x "$scratch/.build/release/protoc-gen-swift" ]; then
        rm -rf "$scratch"
        git -c advice.detachedHead=false clone --quiet --branch "$version" "${SWIFT_PROTOBUF_GIT:-https://github.com/apple/swift-protobuf.git}" "$scratch"
        (cd "$scratch" && swift build -c release --product protoc-gen-swift)
    fi
    plugin="$scratch/.build/release/protoc-gen-swift"
fi
found="$("$plugin" --version 2>&1 || true)"
case "$found" in
    *"$version"*) ;;
    *) echo "generate-onnx-proto: $plugin reports '$found', expected $version (the runtime Package.swift uses)" >&2; exit 1 ;;
esac

protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
       --swift_out=Sources/QForgeGraph/ONNX -I proto proto/onnx.proto
echo "generated Sources/QForgeGraph/ONNX/onnx.pb.swift with $found"
