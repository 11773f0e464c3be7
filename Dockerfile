# One image for every mode of pgbackup:
#   schedule  (default) Supercronic runs `pgbackup run` on BACKUP_SCHEDULE: docker compose
#   run       one backup, then exit: what Kubernetes CronJobs execute
#   operator  `pgbackup-operator` (set the container command)
# The logic lives in the Python package and scripts that the test suite exercises; this file
# only installs and copies.

# Base images are pinned by the digest of their multi-arch index (linux/amd64 and linux/arm64
# among its platforms), so a build next month starts from the same bytes; the tag each digest
# was read from, and when, is in the comment above it (docker-library/repo-info records them).

# Supercronic, built from source at a pinned version; the Go checksum database verifies it.
# Built on the build machine's own platform and cross-compiled for the image's (a static Go
# binary), so a multi-arch build runs no Go compiler under emulation. `go install` puts a
# cross-compiled binary in bin/<os>_<arch>/, a native one in bin/.
# golang:1.26-bookworm (Go 1.26.8), built 2026-09-01
FROM --platform=$BUILDPLATFORM golang@sha256:9fdc884aacc3bec89b20ffc69f4bb369c78210e3e4f600387b5128b12c199f81 AS supercronic
ARG SUPERCRONIC_VERSION=v0.2.48
ARG TARGETOS=linux TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" go install -trimpath -ldflags "-s -w" \
      "github.com/aptible/supercronic@${SUPERCRONIC_VERSION}" \
 && bin="$(go env GOPATH)/bin" \
 && if [ -e "$bin/${TARGETOS}_${TARGETARCH}/supercronic" ]; then bin="$bin/${TARGETOS}_${TARGETARCH}"; fi \
 && install -D "$bin/supercronic" /out/supercronic

# The dependencies exactly as requirements/runtime.txt locks them (every file's hash checked,
# wheels only): pyproject's dependencies with the azure and gcs extras, so the image writes to
# every destination; and pgbackup's own wheel built by the locked setuptools without fetching
# anything else: the final stage installs both from /wheels without reaching an index.
# python:3.12-slim-bookworm (Python 3.12.14), built 2026-09-01
FROM python@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254 AS wheels
ENV PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/runtime.txt ./requirements/
RUN pip download --no-cache-dir --require-hashes --only-binary :all: --dest /wheels -r requirements/runtime.txt \
 && pip install --no-cache-dir --no-index --find-links /wheels --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY backup_job ./backup_job
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-index --no-deps --no-build-isolation --wheel-dir /wheels .

# python:3.12-slim-bookworm (Python 3.12.14), built 2026-09-01
FROM python@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254
# pg_dump 18 (the newest major) from the PostgreSQL project's apt repository, which Debian's
# postgresql-common sets up, so every supported server version can be dumped. Its minor version
# floats on purpose: the repository keeps only current builds (and fixes), so a pinned one
# would stop building at the next point release. The build log names the one installed.
ARG PG_MAJOR=18
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
 && dpkg-query --show "postgresql-client-${PG_MAJOR}" \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
COPY --from=supercronic /out/supercronic /usr/local/bin/supercronic
# What the runtime never loads goes (docs/install.md#the-image lists what stays, and sizes):
# setuptools, which the lock holds only to build pgbackup's wheel in the stage above, and the
# Kubernetes client's asyncio copy (kubernetes.aio, about a quarter of the dependencies'
# bytes), which neither the operator (the synchronous client, with kopf's own aiohttp) nor
# anything it imports uses. The compiled .pyc files stay: the root filesystem is read-only,
# and without them every pod would compile the Kubernetes client again at start.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    --mount=type=bind,from=wheels,source=/src/requirements,target=/requirements \
    PIP_ROOT_USER_ACTION=ignore pip install --no-cache-dir --no-index --find-links /wheels --require-hashes \
      -r /requirements/runtime.txt \
 && PIP_ROOT_USER_ACTION=ignore pip install --no-cache-dir --no-index --no-deps /wheels/pgbackup-*.whl \
 && PIP_ROOT_USER_ACTION=ignore pip uninstall --yes --no-cache-dir setuptools \
 && rm -rf "$(python -c 'print(__import__("sysconfig").get_paths()["purelib"])')/kubernetes/aio"
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
