#!/usr/bin/env bash
# Packs the QA kit (Ingest.Testing) and the platform packages it needs (tools/qa-kit.slnf) into one folder, a local
# NuGet feed:   tools/pack-kit.sh [output-folder] [extra dotnet pack arguments…]   (default: artifacts/packages)
# Every package carries the platform's version (Directory.Build.props). docs/TESTING.md shows how to use the feed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/packages}"; shift || true
dotnet pack tools/qa-kit.slnf -c Release -o "$out" -nologo -v quiet "$@"
ls "$out"/*.nupkg
