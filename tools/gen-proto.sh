#!/usr/bin/env bash
# Regenerates Sources/TransportProtocol/transport_protocol.pb.swift from the
# .proto next to it.
#
# Why a script: the generated Swift is committed so that ordinary builds and CI
# never need protoc or the Swift plugin. Run this only after editing the .proto.
#
# Needs: `protoc` (Debian package protobuf-compiler). The swift-protobuf plugin
# `protoc-gen-swift` is built once from the same swift-protobuf version the
# package depends on and cached in .build-protoc/ (gitignored); building it
# takes several minutes the first time.
#
# Usage: tools/gen-proto.sh [--plugin-only]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SWIFT_PROTOBUF_VERSION="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
SWIFT_PROTOBUF_URL="${SWIFT_PROTOBUF_URL:-https://github.com/apple/swift-protobuf.git}"
SCRATCH="$ROOT/.build-protoc"
SRC="$SCRATCH/swift-protobuf-$SWIFT_PROTOBUF_VERSION"
PLUGIN="$SCRATCH/build/release/protoc-gen-swift"

if ! command -v protoc >/dev/null 2>&1; then
    echo "gen-proto: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
    exit 1
fi

if [[ ! -x "$PLUGIN" ]]; then
    mkdir -p "$SCRATCH"
    if [[ ! -d "$SRC" ]]; then
        echo "gen-proto: cloning swift-protobuf $SWIFT_PROTOBUF_VERSION" >&2
        git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$SWIFT_PROTOBUF_VERSION" "$SWIFT_PROTOBUF_URL" "$SRC"
    fi
    echo "gen-proto: building protoc-gen-swift (once; takes several minutes)" >&2
    swift build -c release --product protoc-gen-swift \
        --package-path "$SRC" --scratch-path "$SCRATCH/build"
fi

if [[ "${1:-}" == "--plugin-only" ]]; then
    exit 0
fi

OUT="$ROOT/Sources/TransportProtocol"
protoc \
    --plugin=protoc-gen-swift="$PLUGIN" \
    --swift_opt=Visibility=Public \
    --swift_out="$OUT" \
    --proto_path="$OUT" \
    "$OUT/transport_protocol.proto"
echo "gen-proto: wrote $OUT/transport_protocol.pb.swift" >&2
