# Sourced by scripts/demo and scripts/test: a Python virtualenv with pgbackup and its test
# extras, created on first use and refreshed when pyproject.toml changes. pip's own cache
# (outside the repo) makes a refresh on a warm machine take seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PGBACKUP_VENV:-$ROOT/.venv}"
STAMP="$VENV/.pgbackup-installed"

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

if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "== preparing $VENV (Python deps from PyPI)"
  "$(pick_python)" -m venv "$VENV"
  log="$(mktemp)"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -e "$ROOT[test]"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "installing the Python dependencies failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
