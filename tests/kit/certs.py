"""A throwaway PKI for TLS tests, made with the ``openssl`` command: a CA, a server certificate
for 127.0.0.1 and a client certificate whose CN is the PostgreSQL role it authenticates
(``hostssl ... cert``). EC P-256 keys, valid for two days.

The fixtures (import them into a test module) give a PostgreSQL 18 that admits ``TLS_ROLE``
only over TLS with that certificate, and refuses it a plain connection. The embedded
PostgreSQL has no TLS support, so server and client programs come from the OpenSSL build of
the same major (``devenv.postgres.openssl_bindir``); tests using them are marked slow.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devenv.postgres import Cluster, ServerTLS, openssl_bindir

TLS_ROLE = "backup_tls"  # the client certificate's CN


@dataclass(frozen=True)
class Pki:
    """The files of one throwaway PKI."""

    ca: Path
    server: ServerTLS
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make test certificates (apt-get install openssl)"
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _signed(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a CA-signed certificate: ``name``.key, ``name``.crt."""
    _openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=directory,
    )
    (directory / f"{name}.ext").write_text(extensions + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=directory,
    )
    return directory / f"{name}.crt", directory / f"{name}.key"


def make_pki(directory: Path, client_cn: str) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate for ``client_cn``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=pgbackup test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    server_cert, server_key = _signed(
        directory, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
    )
    client_cert, client_key = _signed(directory, "client", f"/CN={client_cn}", "extendedKeyUsage=clientAuth")
    return Pki(directory / "ca.crt", ServerTLS(server_cert, server_key, directory / "ca.crt"), client_cert, client_key)


@pytest.fixture(scope="module")
def tls_bindir() -> Path:
    return openssl_bindir()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_cn=TLS_ROLE)


@pytest.fixture(scope="module")
def tls_pg(tls_bindir: Path, pki: Pki) -> Iterator[Cluster]:
    """A PostgreSQL 18 where ``TLS_ROLE`` (a superuser) gets in only with its client certificate."""
    hba = [f"hostssl all {TLS_ROLE} 127.0.0.1/32 cert", f"host all {TLS_ROLE} 127.0.0.1/32 reject"]
    with Cluster(tls_bindir, tls=pki.server, hba=hba) as cluster:
        cluster.sql(f"CREATE ROLE {TLS_ROLE} LOGIN SUPERUSER")
        yield cluster
