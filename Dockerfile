# One image for every mode of pgbackup:
#   schedule  (default) Supercronic runs `pgbackup run` on BACKUP_SCHEDULE: docker compose
#   run       one backup, then exit: what Kubernetes CronJobs execute
#   operator  `pgbackup-operator` (set the container command)
# The logic lives in the Python package and scripts that the test suite exercises; this file
# only installs and copies.

# Supercronic, built from source at a pinned version; the Go checksum database verifies it.
FROM golang:1.26-bookworm AS supercronic
ARG SUPERCRONIC_VERSION=v0.2.48
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" \
      "github.com/aptible/supercronic@${SUPERCRONIC_VERSION}"

# pgbackup and its dependencies as wheels, so the final stage needs no compiler.
FROM python:3.12-slim-bookworm AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY backup_job ./backup_job
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim-bookworm
# pg_dump 18 (the newest major) from the PostgreSQL project's apt repository, which Debian's
# postgresql-common sets up, so every supported server version can be dumped.
ARG PG_MAJOR=18
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
COPY --from=supercronic /out/supercronic /usr/local/bin/supercronic
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/pgbackup-*.whl
# Any uid, group root: the image runs as 10001:0, and a cluster that assigns its own uid
# (OpenShift's restricted-v2: one from the namespace's range, no passwd entry) keeps GID 0.
# So what the job may write is group root's: /tmp (HOME and temporary files; the pods mount
# an emptyDir there) and /backups, a mount point for `file://` destinations, which a new
# named volume copies (root:root 0775). Nothing else is written; /app is read-only.
RUN useradd --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin pgbackup \
 && mkdir /backups \
 && chgrp 0 /backups \
 && chmod g=u /backups
WORKDIR /app
COPY crontab /app/crontab
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BACKUP_CRONTAB=/app/crontab
USER 10001:0
# Healthy while PID 1 is Supercronic (or `pgbackup schedule` still running its start-up
# backup before it execs Supercronic). Kubernetes ignores this and probes the operator itself.
HEALTHCHECK --interval=1m --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import sys; c = open('/proc/1/cmdline', 'rb').read(); sys.exit(b'supercronic' not in c and b'schedule' not in c)"]
ENTRYPOINT ["pgbackup"]
CMD ["schedule"]
