#!/usr/bin/env bash
# Debian's pigz, zstd, gzip and age: the shell one-liners bench/compare.py compares pgbackup
# against, and the reference tools the interop tests read our objects with (gunzip, zstd -dc,
# age -d). Nothing is installed when all of them are already on PATH. Like postgresql-15, their
# versions float with Debian's archive; the versions in use are printed.
set -euo pipefail
tools=(pigz zstd gzip age)
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian's ${missing[*]} (benchmark one-liners, interop tests)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for tool in "${missing[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool did not install" >&2; exit 1; }
  done
fi
versions=()
for tool in "${tools[@]}"; do
  versions+=("$tool $(dpkg-query --showformat='${Version}' --show "$tool" 2>/dev/null || echo '(not from a package)')")
done
echo "== Debian's $(IFS=,; echo "${versions[*]}" | sed 's/,/, /g')"
