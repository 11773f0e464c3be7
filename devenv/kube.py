"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Built by ``scripts/k8s-build`` (from the Go module proxy, cached outside the repository) and
started here on free loopback ports:

- a self-made CA signs the API server's serving certificate and an admin client certificate
  in ``system:masters``; a separate key pair signs service-account tokens;
- the API server authorizes with RBAC (so the operator's least-privilege role is really
  exercised when it runs with a ServiceAccount token);
- kube-controller-manager runs every controller: CronJobs create Jobs, Jobs create Pods,
  garbage collection deletes owned objects.

There is no kubelet, so Pods stay Pending; tests that need a backup to really run play the
kubelet themselves (see ``tests/kit/kubeenv.py``, ``Kubelet``).

Command line (``scripts/k8s-testenv`` wraps it)::

    python -m devenv.kube up     # start, wait for /readyz, print the kubeconfig path
    python -m devenv.kube down   # stop what `up` started
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

from .postgres import free_port
from .wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE = Path(os.environ.get("PGBACKUP_K8S_STATE", "/tmp/pgbackup-k8s"))


def build() -> Path:
    """The bin directory with etcd, kube-apiserver, kube-controller-manager and kubectl."""
    result = subprocess.run([str(ROOT / "scripts" / "k8s-build")], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError("scripts/k8s-build failed (its output is above)")
    return Path(result.stdout.strip().splitlines()[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> None:
    """CA, API server serving cert, admin client cert, service-account signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    run = lambda *a: _openssl(*a, cwd=directory)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=pgbackup-test-ca",
    )
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("server", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=pgbackup-admin", "client.ext"),
    ):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "30",
            "-extfile",
            ext,
        )
    run("genrsa", "-out", "sa.key", "2048")
    run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")


def write_kubeconfig(path: Path, server: str, pki: Path, user: str = "admin", token: str | None = None) -> Path:
    """A kubeconfig for the admin certificate, or for a bearer token."""
    credentials: dict[str, str] = (
        {"token": token}
        if token is not None
        else {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "pgbackup-test",
        "clusters": [
            {"name": "pgbackup-test", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "pgbackup-test", "context": {"cluster": "pgbackup-test", "user": user}}],
    }
    path.write_text(json.dumps(config, indent=2))
    return path


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, state in one directory."""

    def __init__(self, bindir: Path, state: Path = DEFAULT_STATE) -> None:
        self.bindir = bindir
        self.state = state
        self.pki = state / "pki"
        self.kubeconfig = state / "kubeconfig"
        self.port = 0
        self.server = ""

    def _spawn(self, name: str, argv: list[str]) -> int:
        log = open(self.state / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.state)
        (self.state / f"{name}.pid").write_text(str(proc.pid))
        return proc.pid

    def _ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def up(self, timeout: float = 120, crds: tuple[Path, ...] = ()) -> Path:
        """Start everything; CRDs are installed before the controller manager starts, so its
        garbage collector knows their kinds at once (instead of at its next rediscovery)."""
        if self.state.exists():
            self.down()
        self.state.mkdir(parents=True)
        make_pki(self.pki)
        etcd_client, etcd_peer = free_port(), free_port()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self._spawn(
            "etcd",
            [
                str(self.bindir / "etcd"),
                "--data-dir",
                str(self.state / "etcd"),
                "--name",
                "test",
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_client}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_client}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.bindir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=false",
                "--profiling=false",
            ],
        )
        write_kubeconfig(self.kubeconfig, self.server, pki)
        wait_for(self._ready, timeout=timeout, what="kube-apiserver /readyz")
        for crd in crds:
            self.kubectl("apply", "-f", str(crd))
        if crds:
            self.wait_for_crds()
            self.wait_for_discovery()
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bindir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--controllers=*",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--concurrent-cron-job-syncs=5",
            ],
        )
        (self.state / "server").write_text(self.server)
        return self.kubeconfig

    def wait_for_discovery(self, timeout: float = 60) -> None:
        """Wait until API discovery lists every established CRD's resources.

        Discovery lags a moment behind a CRD's Established condition, and kopf scans
        discovery once at start: an operator started in that gap never sees the resource.
        """

        def listed() -> bool:
            names = self.kubectl("get", "crd", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
            served = self.kubectl("api-resources", "-o", "name", check=False).stdout.split()
            return all(name in served for name in names)

        wait_for(listed, timeout=timeout, what="CRDs in API discovery")

    def down(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            pidfile = self.state / f"{name}.pid"
            if not pidfile.exists():
                continue
            pid = int(pidfile.read_text())
            try:
                os.killpg(pid, signal.SIGTERM)
                wait_for(partial(_stopped, pid), timeout=15, what=f"{name} to stop")
            except ProcessLookupError:
                pass
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(self.state)], check=False)

    def wait_for_crds(self, *names: str, timeout: float = 60) -> None:
        """Until the CRDs ``names`` (all when none) are Established: polled rather than `kubectl
        wait`, which fails at once on a CRD the API server has not given any conditions yet."""

        def established() -> bool:
            listed = self.kubectl("get", "crd", *names, "-o", "json", check=False)
            if listed.returncode:
                return False
            found = json.loads(listed.stdout)
            return all(
                any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in (crd.get("status") or {}).get("conditions") or []
                )
                for crd in (found["items"] if "items" in found else [found])
            )

        wait_for(established, timeout=timeout, what=f"CRDs Established: {', '.join(names) or 'all'}")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this plane; with ``check``, a failure raises with kubectl's own
        words (a bare exit status says nothing about which object or why)."""
        result = subprocess.run(
            [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode:
            raise KubectlFailed(result.returncode, result.args, result.stdout, result.stderr)
        return result


class KubectlFailed(subprocess.CalledProcessError):
    """A kubectl command that failed, shown with what it printed."""

    def __str__(self) -> str:
        said = (self.stderr or self.stdout or "").strip()
        return f"kubectl {' '.join(map(str, self.cmd[2:]))} exited {self.returncode}: {said}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stopped(pid: int) -> bool:
    return not _alive(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A throwaway Kubernetes control plane on loopback.")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help=f"state directory (default {DEFAULT_STATE})")
    args = parser.parse_args(argv)
    if args.action == "down":
        ControlPlane(Path("."), args.state).down()
        print(f"stopped; removed {args.state}")
        return 0
    started = time.monotonic()
    plane = ControlPlane(build(), args.state)
    kubeconfig = plane.up(crds=(ROOT / "deploy" / "crd.yaml", ROOT / "deploy" / "crd-pgrestore.yaml"))
    print(f"control plane ready in {time.monotonic() - started:.1f} s at {plane.server}", file=sys.stderr)
    print(f"export KUBECONFIG={kubeconfig}; kubectl binary: {plane.bindir / 'kubectl'}", file=sys.stderr)
    print(kubeconfig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
