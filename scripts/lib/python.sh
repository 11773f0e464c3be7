# Sourced by scripts/lib/bootstrap.sh and scripts/lock: pick_python prints a Python 3.11+ on
# PATH, the newest first (a pyenv shim that names a version not selected fails its check and
# is passed over).
pick_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "pgbackup needs Python 3.11 or newer on PATH" >&2
  return 1
}
