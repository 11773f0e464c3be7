"""The pods a PgBackup's (and a PgRestore's) jobs run: command, environment (``env``),
certificates and hardening.

The pod is locked down as the restricted Pod Security Standard asks: non-root (no fixed ids:
the image's numeric user, or the uid the cluster assigns, see ``RUN_AS``),
read-only root filesystem with an ``emptyDir`` at ``/tmp``, no capabilities, seccomp
``RuntimeDefault``, no privilege escalation, and no service-account token unless a
``serviceAccountName`` is given (for IRSA-style cloud identity; each job may have its own:
the ``account`` of ``_pod_spec``). Certificates, decryption identities, a GCS key and the
signing key are Secret volumes, read-only; the signing key only in backup pods. Every env value and command
word is made literal here, once (``literal``): no CR string reaches the kubelet's ``$(VAR)``
expansion.

Every function reads the typed spec (``spec``); the pass-through fields of ``spec.pod``
(resources, tolerations, affinity...) are copied into each pod (``spec.plain``), so no two
rendered objects share a dict.
"""

from __future__ import annotations

import copy

from backup_job.core import settings as job_settings
from backup_job.core.termination import KUBERNETES_PATH

from . import podrules
from .api import Body
from .env import (
    SOURCE_ENDPOINT,
    Endpoint,
    connection_env,
    destination_env,
    destination_mount,
    identity_mount,
    plain_env,
    pod_env,
    render_env,
    render_prune_env,
    render_verify_env,
    restore_identity,
    signing_key_mount,
    trust_env,
    verify_target,
)
from .literal import literal_env, literal_words
from .spec import PgBackupSpec, PgRestoreSpec, Server, plain
from .spec.pgbackup import Retention, Verify

# Who the pods run as: no fixed uid, gid or fsGroup. The image's ``USER 10001:0`` applies, or
# the uid a cluster assigns (OpenShift's restricted-v2 picks one from the namespace's range,
# with GID 0 and an fsGroup); ``spec.pod.securityContext`` / ``containerSecurityContext`` set
# ids where a policy wants them (only those: ``podrules`` keeps the rest at the baseline).
RUN_AS: Body = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_RUN_AS: Body = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def _tls_volumes(pg: Server, endpoint: Endpoint = SOURCE_ENDPOINT) -> tuple[list[Body], list[Body]]:
    """The server's CA and client certificate Secrets, mounted read-only. Mode 0440: the kubelet
    makes the files root's, group root (or the fsGroup), so the pod's GID 0 (or fsGroup) reads
    them under any uid, and libpq accepts a root-owned key of 0640 or less."""
    volumes: list[Body] = []
    mounts: list[Body] = []
    for kind, ref in (("ca", pg.tls.ca_secret_ref), ("client", pg.tls.client_cert_secret_ref)):
        if ref is not None:
            name = f"{endpoint.volume_prefix}-{kind}"
            volumes.append({"name": name, "secret": {"secretName": ref.name, "defaultMode": 0o440}})
            mounts.append({"name": name, "mountPath": f"{endpoint.tls_root}/{kind}", "readOnly": True})
    return volumes, mounts


def _pod_spec(
    spec: PgBackupSpec,
    default_image: str,
    command: list[str],
    env: list[Body],
    tls: tuple[list[Body], list[Body]],
    account: str | None = None,
) -> Body:
    """The hardened pod; ``account``: the job's own ServiceAccount, else ``spec.pod``'s."""
    pod = spec.pod
    podrules.check(pod)
    tls_volumes, tls_mounts = tls
    container: Body = {
        "name": "pgbackup",
        "image": pod.image or default_image,
        "command": literal_words(command),
        "env": literal_env(env),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *tls_mounts],
        "terminationMessagePath": KUBERNETES_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(podrules.container_security_context(pod, CONTAINER_RUN_AS)),
    }
    for key, given in (
        ("imagePullPolicy", pod.image_pull_policy),
        ("resources", pod.resources),
        ("envFrom", pod.env_from),
    ):
        if given:
            container[key] = plain(given)
    account = account or pod.service_account_name
    pod_spec: Body = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": bool(account),
        "securityContext": copy.deepcopy(podrules.pod_security_context(pod, RUN_AS)),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *tls_volumes],
    }
    if account:
        pod_spec["serviceAccountName"] = account
    for key, given in (
        ("nodeSelector", pod.node_selector),
        ("tolerations", pod.tolerations),
        ("affinity", pod.affinity),
        ("imagePullSecrets", pod.image_pull_secrets),
        ("priorityClassName", pod.priority_class_name),
    ):
        if given:
            pod_spec[key] = plain(given)
    return pod_spec


def render_pod_spec(spec: PgBackupSpec, default_image: str) -> Body:
    """The backup pod: ``pgbackup run`` against ``spec.postgres``; the only pod that gets the
    signing key (every shard of an Indexed Job shares this template)."""
    volumes, mounts = _tls_volumes(spec.postgres)
    key_volumes, key_mounts, _env = signing_key_mount(spec)
    store_volumes, store_mounts = destination_mount(spec)
    return _pod_spec(
        spec,
        default_image,
        ["pgbackup", "run"],
        render_env(spec),
        (volumes + store_volumes + key_volumes, mounts + store_mounts + key_mounts),
    )


def render_verify_pod_spec(spec: PgBackupSpec, verify: Verify, default_image: str) -> Body:
    """The verify pod: ``pgbackup verify``, mounting only the target server's certificates and,
    for sealed backups, the decryption identity."""
    volumes, mounts = _tls_volumes(*verify_target(spec, verify))
    identity_volumes, identity_mounts, _env = identity_mount(spec)
    store_volumes, store_mounts = destination_mount(spec, verify.credentials_secret_ref)
    return _pod_spec(
        spec,
        default_image,
        ["pgbackup", "verify"],
        render_verify_env(spec, verify),
        (volumes + store_volumes + identity_volumes, mounts + store_mounts + identity_mounts),
        verify.service_account_name,
    )


def render_prune_pod_spec(spec: PgBackupSpec, retention: Retention, default_image: str) -> Body:
    """The prune pod: ``pgbackup prune`` with the retention's own credentials and account."""
    return _pod_spec(
        spec,
        default_image,
        ["pgbackup", "prune"],
        render_prune_env(spec, retention),
        destination_mount(spec, retention.credentials_secret_ref),
        retention.service_account_name,
    )


def render_list_pod_spec(spec: PgBackupSpec, default_image: str, command: list[str]) -> Body:
    """The listing pod (``pgbackup list``, on a user's request): no PostgreSQL server, the
    destination read with the drills' identity (``spec.verify``'s credentials and account, else
    the backup's), as a PgRestore without its own reads it."""
    verify = spec.verify or Verify()
    credentials = verify.credentials_secret_ref
    env = [*destination_env(spec, credentials), *trust_env(spec), *pod_env(spec)]
    return _pod_spec(
        spec, default_image, command, env, destination_mount(spec, credentials), verify.service_account_name
    )


def render_restore_pod_spec(restore: PgRestoreSpec, spec: PgBackupSpec, default_image: str, command: list[str]) -> Body:
    """The restore pod of a PgRestore (``restore``, its spec) from its PgBackup's ``spec``: the
    same hardened pod, into ``restore.target.server`` or else the backup server, reading with
    ``restore_identity``."""
    server = restore.target.server or spec.postgres
    credentials, account, decryption = restore_identity(restore, spec)
    identity_volumes, identity_mounts, identity_env = identity_mount(spec, decryption) if decryption else ([], [], [])
    settings = plain_env({job_settings.PGAPPNAME: "pgbackup", job_settings.TERMINATION_LOG: KUBERNETES_PATH})
    env = [
        *connection_env(server, SOURCE_ENDPOINT),
        *destination_env(spec, credentials),
        *settings,
        *identity_env,
        *trust_env(spec),
        *pod_env(spec),
    ]
    volumes, mounts = _tls_volumes(server)
    store_volumes, store_mounts = destination_mount(spec, credentials)
    return _pod_spec(
        spec,
        default_image,
        command,
        env,
        (volumes + store_volumes + identity_volumes, mounts + store_mounts + identity_mounts),
        account,
    )
