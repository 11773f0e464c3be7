#!/usr/bin/env bash
# Debian's PostgreSQL 15 server binaries, for the version-skew tests. Only the binaries are
# wanted: no cluster is created and nothing is started (the tests start their own servers).
set -euo pipefail
[ -x /usr/lib/postgresql/15/bin/postgres ] && exit 0
echo "== installing Debian's postgresql-15 (version-skew tests)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
[ -x /usr/lib/postgresql/15/bin/postgres ] || { echo "postgresql-15 did not install" >&2; exit 1; }
