"""What ``spec.pod`` may change in the pods the operator renders, checked at reconcile.

A PgBackup's author need not be allowed to create pods, yet the operator creates pods for
them. Three layers keep a custom resource from becoming an arbitrary pod:

1. The CRD accepts only the identity fields of the security contexts (``runAsUser``,
   ``runAsGroup``, ``fsGroup``, ``supplementalGroups``, the seccomp profile); the API server
   drops anything else, and refuses uid 0 and ``Unconfined``.
2. The admission policy (``deploy/admission-policy.yaml``) asks the API server whether the
   author may read each Secret the resource names, and may create pods when it sets a field
   that shapes the pod (image, accounts, env from Secrets, tolerations, annotations...).
3. This module, for clusters where (1) is an older CRD or (2) is not installed: it refuses,
   naming the field, what it can judge without reading a Secret or asking about the author's
   rights: security-context values other than the restricted baseline, environment variables
   whose names steer the job (``BACKUP_*``, ``PG*``, the stores' ``AWS_*``, ``AZURE_*``, ``GOOGLE_*``,
   and the GCS library's endpoints ``STORAGE_EMULATOR_HOST`` and ``API_ENDPOINT_OVERRIDE``, which
   would take the pod's Google token elsewhere), environment variables whose names change which
   code the pod's programs load or which certificates their TLS trusts (``LOADER_ENV_PREFIXES``,
   ``LOADER_ENV_NAMES``: the pod mounts files whose bytes the author chooses, a CA Secret or a
   key file, so ``LD_PRELOAD`` naming one would run the author's code under the pod's
   identities), and annotations or labels that
   grant an identity or lift a confinement (``iam.amazonaws.com/``, AppArmor and seccomp
   annotations, ``openshift.io/``...). The renderer then builds the contexts from the identity
   fields alone (``pod.py``), so whatever slips past, the baseline holds.

A security context that is not an object at all is refused earlier, as the typed spec is read
(``spec.pgbackup.PodSettings``), under this module's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api import Body, RenderError
from .spec import PodSettings

REASON = "PodNotAllowed"

POD_IDENTITY = ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups", "seccompProfile")
CONTAINER_IDENTITY = ("runAsUser", "runAsGroup", "seccompProfile")
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")

# The restricted baseline: the values a spec may repeat (older manifests do), never change.
POD_BASELINE: Body = {"runAsNonRoot": True}
CONTAINER_BASELINE: Body = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}

RESERVED_ENV_PREFIXES = (
    "BACKUP_",
    "PG",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "STORAGE_EMULATOR_HOST",
    "API_ENDPOINT_OVERRIDE",
)
# Names that load code or choose whom TLS trusts, in what the image runs (python, pg_dump,
# pg_dumpall and psql over libpq, supercronic): no author may set them, whatever their rights,
# since the pod's identities (its ServiceAccount, a workload identity) are not theirs. A
# different program belongs in a different image (spec.pod.image), which needs pod-create rights.
LOADER_ENV_PREFIXES = (
    "LD_",  # glibc's loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT load shared objects
    "PYTHON",  # PYTHONPATH, PYTHONHOME, PYTHONWARNINGS, PYTHONSTARTUP import modules
    "OPENSSL_",  # OPENSSL_CONF, OPENSSL_ENGINES, OPENSSL_MODULES load engines and providers
    "KRB5",  # libpq's GSSAPI: KRB5_CONFIG names plugin modules, KRB5CCNAME another principal
)
LOADER_ENV_NAMES = (
    "PATH",  # which pg_dump, psql or python runs
    "GCONV_PATH",  # glibc's iconv loads the modules it lists
    "GSS_MECH_CONFIG",  # GSSAPI mechanisms are shared objects loaded from this list
    "NODE_OPTIONS",  # --require for any Node program a later image may carry
    "SSL_CERT_FILE",  # OpenSSL's and Go's CA bundle: python's ssl, libpq, supercronic
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",  # requests (Google auth, notifications) trusts this bundle instead
    "CURL_CA_BUNDLE",  # requests reads it too
    "SSLKEYLOGFILE",  # python's ssl writes every session key there: TLS readable by its reader
)
# Annotations and labels that give a pod a cloud identity, an SCC or a looser confinement.
RESERVED_METADATA_PREFIXES = (
    "iam.amazonaws.com/",
    "eks.amazonaws.com/",
    "iam.gke.io/",
    "azure.workload.identity/",
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
    "openshift.io/",
    "security.openshift.io/",
    "pgbackup.io/",
)


def check(pod: PodSettings, field: str = "spec.pod") -> None:
    """Refuse (``RenderError``, naming the field) what no author may ask of the pods."""
    _check_context(pod.security_context or {}, f"{field}.securityContext", POD_IDENTITY, POD_BASELINE)
    _check_context(
        pod.container_security_context or {},
        f"{field}.containerSecurityContext",
        CONTAINER_IDENTITY,
        CONTAINER_BASELINE,
    )
    for index, variable in enumerate(pod.env):
        name = str(variable.get("name", ""))
        if name.startswith(RESERVED_ENV_PREFIXES):
            raise RenderError(
                f"{field}.env[{index}].name: {name!r} is set by the operator or steers the job's "
                f"connections and credentials (BACKUP_*, PG*, AWS_*, AZURE_*, GOOGLE_*, "
                f"STORAGE_EMULATOR_HOST): use this resource's fields",
                REASON,
            )
        if name.startswith(LOADER_ENV_PREFIXES) or name in LOADER_ENV_NAMES:
            raise RenderError(
                f"{field}.env[{index}].name: {name!r} changes which code the job's programs load or "
                f"which certificates their TLS trusts (LD_*, PYTHON*, OPENSSL_*, KRB5*, PATH, "
                f"SSL_CERT_FILE, REQUESTS_CA_BUNDLE...): remove it; a different program needs a "
                f"different image (spec.pod.image)",
                REASON,
            )
    for kind, given in (("podAnnotations", pod.pod_annotations), ("podLabels", pod.pod_labels)):
        for key in given:
            if str(key).startswith(RESERVED_METADATA_PREFIXES):
                raise RenderError(
                    f"{field}.{kind}[{key!r}]: this prefix grants a cloud identity, a security "
                    f"context constraint or a looser confinement; a ServiceAccount "
                    f"(spec.pod.serviceAccountName) is the way to an identity",
                    REASON,
                )


def _check_context(given: Mapping[str, Any], field: str, identity: tuple[str, ...], baseline: Body) -> None:
    for key, value in given.items():
        if key in identity:
            _check_identity(key, value, f"{field}.{key}")
        elif key in baseline and value == baseline[key]:
            continue
        else:
            allowed = ", ".join(identity)
            raise RenderError(
                f"{field}.{key}: only {allowed} may be set; the rest is fixed to the restricted Pod Security Standard",
                REASON,
            )


def _check_identity(key: str, value: Any, field: str) -> None:
    if key == "runAsUser" and value == 0:
        raise RenderError(f"{field}: 0 is root; the pods run as non-root (leave it out for the image's 10001)", REASON)
    if key == "seccompProfile":
        kind = (value or {}).get("type") if isinstance(value, dict) else None
        if kind not in SECCOMP_TYPES:
            raise RenderError(f"{field}.type: {kind!r}; only RuntimeDefault or Localhost", REASON)


def pod_security_context(pod: PodSettings, defaults: Body) -> Body:
    """The pod's securityContext: ``defaults`` (the baseline) with the spec's identity fields,
    nothing else of the spec's."""
    given = pod.security_context or {}
    return {**defaults, **{key: given[key] for key in POD_IDENTITY if key in given}}


def container_security_context(pod: PodSettings, defaults: Body) -> Body:
    """The container's securityContext: the baseline with the spec's identity fields."""
    given = pod.container_security_context or {}
    return {**defaults, **{key: given[key] for key in CONTAINER_IDENTITY if key in given}}
