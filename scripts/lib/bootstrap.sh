# Sourced by scripts/demo, scripts/test and scripts/sync-chart: a Python virtualenv holding
# exactly requirements/test.txt (the hashed lock: runtime + test dependencies, pip and the
# build backend) and pgbackup itself, editable. Two steps, as in the image:
#   pip install --require-hashes -r requirements/test.txt
#   pip install --no-deps --no-build-isolation -e .
# The virtualenv is made anew whenever the lock, pyproject.toml or the Python changes, so it
# never keeps a package the lock has dropped. pip's own cache (outside the repo) makes that
# take seconds on a warm machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PGBACKUP_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements/test.txt"
STAMP="$VENV/.pgbackup-installed"
source "$ROOT/scripts/lib/python.sh"

PYTHON="$(pick_python)"
want="$(cat "$LOCK" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "== preparing $VENV (Python $(echo "$want" | cut -d' ' -f2), requirements/test.txt from PyPI)"
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    echo "$VENV is not a virtualenv; set PGBACKUP_VENV to a new directory" >&2
    exit 1
  fi
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  log="$(mktemp)"
  if ! { "$VENV/bin/python" -m pip install --require-hashes --only-binary :all: -r "$LOCK" &&
         "$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e "$ROOT"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "installing the Python dependencies failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
