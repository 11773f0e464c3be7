#!/usr/bin/env bash
# Debian's pigz, zstd, gzip and age: the shell one-liners bench/compare.py compares pgbackup
# against, and the reference tools the interop tests read our objects with (gunzip, zstd -dc,
# age -d). Nothing happens when all of them are already on PATH.
set -euo pipefail
missing=()
for tool in pigz zstd gzip age; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "== installing Debian's ${missing[*]} (benchmark one-liners, interop tests)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool did not install" >&2; exit 1; }
done
