#!/usr/bin/env bash
# Debian's PostgreSQL 15 server binaries, for the version-skew tests. Only the binaries are
# wanted: no cluster is created and nothing is started (the tests start their own servers).
# The version floats on purpose: Debian's archive keeps only the current point release of
# bookworm's postgresql-15, so a pinned one would stop installing at the next update. The
# version installed is printed, so a run's log says what it tested against.
set -euo pipefail
if [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
  echo "== installing Debian's postgresql-15 (version-skew tests)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
  [ -x /usr/lib/postgresql/15/bin/postgres ] || { echo "postgresql-15 did not install" >&2; exit 1; }
fi
echo "== Debian's postgresql-15 $(dpkg-query --showformat='${Version}' --show postgresql-15 2>/dev/null || echo '(not from a package)')"
