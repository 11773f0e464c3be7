"""Azure Blob and GCS destinations as the operator renders them: the URL each job reads, the
credentials each job gets (its own Secret, else the destination's, else the pod's workload
identity), and the pod rules that keep a spec's own variables from replacing them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pgbackup_operator import render, restores
from pgbackup_operator.api import RenderError

AZURE_KEYS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN")
IDENTITY_LABEL = "azure.workload.identity/use"
BASE: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgBackup",
    "metadata": {"name": "prod", "namespace": "db", "uid": "u-1", "generation": 1},
    "spec": {
        "schedule": "30 2 * * *",
        "postgres": {"host": "pg.db.svc", "user": "backup", "passwordSecretRef": {"name": "pg"}},
    },
}
RESTORE: dict[str, Any] = {
    "apiVersion": "pgbackup.io/v1alpha1",
    "kind": "PgRestore",
    "metadata": {"name": "back", "namespace": "db", "uid": "r-1", "generation": 1},
    "spec": {"backupRef": {"name": "prod"}, "database": "orders"},
}


def body(destination: dict[str, Any], **spec: Any) -> dict[str, Any]:
    result = copy.deepcopy(BASE)
    result["spec"].update(destination=destination, **spec)
    return result


def every_job(owner: dict[str, Any], **restore_spec: Any) -> dict[str, dict[str, Any]]:
    """Each job's pod template (metadata and spec), by component: backup, verify, prune, restore."""
    rendered = render.render_all(owner, "img:1")
    templates = {
        component: cronjob["spec"]["jobTemplate"]["spec"]["template"]
        for component, cronjob in rendered.items()
        if cronjob is not None
    }
    restore = copy.deepcopy(RESTORE)
    restore["spec"].update(restore_spec)
    templates["restore"] = restores.render_restore_job(restore, owner, "img:1")["spec"]["template"]
    return templates


def env(template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in template["spec"]["containers"][0]["env"]}


def secret_of(template: dict[str, Any], name: str) -> str:
    return str(env(template)[name]["secretKeyRef"]["name"])


PER_JOB = {
    "retention": {"schedule": "@daily", "last": 7, "credentialsSecretRef": {"name": "prune-creds"}},
    "verify": {"schedule": "@weekly", "onBackupServer": True, "credentialsSecretRef": {"name": "read-creds"}},
}
WANTED = {"backup": "write-creds", "prune": "prune-creds", "verify": "read-creds", "restore": "restore-creds"}
DRILL = {"backup": "write-creds", "prune": "prune-creds", "verify": "read-creds", "restore": "read-creds"}


def test_azure_renders_its_url_and_each_job_s_own_secret_as_optional_keys() -> None:
    azure = {
        "account": "acct01",
        "container": "pg-backups",
        "prefix": "/prod/",
        "credentialsSecretRef": {"name": "write-creds"},
    }
    templates = every_job(body({"azure": azure}, **PER_JOB), credentialsSecretRef={"name": "restore-creds"})
    assert sorted(templates) == sorted(WANTED)
    for component, template in templates.items():
        variables = env(template)
        assert variables["BACKUP_DESTINATION"] == "azure://acct01/pg-backups/prod", component
        for key in AZURE_KEYS:  # the Secret holds one of them: the others stay unset, the pod starts
            assert variables[key] == {"secretKeyRef": {"name": WANTED[component], "key": key, "optional": True}}, (
                component
            )
        assert not [name for name in variables if name.startswith("AWS_")], component
        assert IDENTITY_LABEL not in template["metadata"]["labels"], component


def test_azure_without_a_secret_opts_the_pods_into_workload_identity_unless_a_job_has_its_own() -> None:
    azure = {"account": "acct01", "container": "pg-backups"}
    templates = every_job(body({"azure": azure}, **PER_JOB))
    assert env(templates["backup"])["BACKUP_DESTINATION"] == "azure://acct01/pg-backups"
    assert templates["backup"]["metadata"]["labels"][IDENTITY_LABEL] == "true"
    assert not [name for name in env(templates["backup"]) if name.startswith("AZURE_")]
    for component in ("prune", "verify", "restore"):  # their own Secrets (a restore's: the drill's), no identity
        assert IDENTITY_LABEL not in templates[component]["metadata"]["labels"], component
        assert secret_of(templates[component], "AZURE_STORAGE_KEY") == DRILL[component]
    bare = every_job(body({"azure": azure}, verify={"schedule": "@weekly", "onBackupServer": True}))
    assert all(t["metadata"]["labels"][IDENTITY_LABEL] == "true" for t in bare.values())


def test_gcs_mounts_each_job_s_key_read_only_and_points_the_sdk_at_it() -> None:
    gcs = {"bucket": "my.pg_backups-1", "prefix": "prod", "credentialsSecretRef": {"name": "write-creds"}}
    templates = every_job(body({"gcs": gcs}, **PER_JOB), credentialsSecretRef={"name": "restore-creds"})
    for component, template in templates.items():
        variables = env(template)
        assert variables["BACKUP_DESTINATION"] == "gs://my.pg_backups-1/prod", component
        assert variables["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/pgbackup/gcs/key.json", component
        [volume] = [v for v in template["spec"]["volumes"] if v["name"] == "gcs-credentials"]
        assert volume["secret"] == {
            "secretName": WANTED[component],
            "defaultMode": 0o440,
            "items": [{"key": "key.json", "path": "key.json"}],
        }, component
        [mount] = [m for m in template["spec"]["containers"][0]["volumeMounts"] if m["name"] == "gcs-credentials"]
        assert mount == {"name": "gcs-credentials", "mountPath": "/etc/pgbackup/gcs", "readOnly": True}, component
        assert not [name for name in variables if name.startswith(("AWS_", "AZURE_"))], component
        assert IDENTITY_LABEL not in template["metadata"]["labels"], component


def test_gcs_without_a_secret_leaves_the_sdk_its_own_credentials() -> None:
    templates = every_job(body({"gcs": {"bucket": "pg-backups"}}, verify=PER_JOB["verify"]))
    backup = templates["backup"]
    assert env(backup)["BACKUP_DESTINATION"] == "gs://pg-backups"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env(backup)
    assert [v["name"] for v in backup["spec"]["volumes"]] == ["tmp"]
    assert env(templates["verify"])["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/pgbackup/gcs/key.json"
    assert all(IDENTITY_LABEL not in t["metadata"]["labels"] for t in templates.values())


@pytest.mark.parametrize(
    "destination",
    [
        {},
        {"s3": {"bucket": "b1b"}, "gcs": {"bucket": "b2b"}},
        {"azure": {"account": "a1a", "container": "c1c"}, "gcs": {"bucket": "b2b"}},
    ],
    ids=["none", "s3-and-gcs", "azure-and-gcs"],
)
def test_a_destination_of_no_kind_or_of_two_renders_nothing(destination: dict[str, Any]) -> None:
    with pytest.raises(RenderError, match=r"^spec.destination: set exactly one of s3, azure and gcs"):
        render.render_all(body(destination))


@pytest.mark.parametrize(
    "name",
    [
        "AZURE_STORAGE_KEY",
        "AZURE_CLIENT_ID",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "STORAGE_EMULATOR_HOST",
        "API_ENDPOINT_OVERRIDE",
    ],
)
def test_a_spec_s_own_env_cannot_replace_the_store_s_credentials_or_endpoint(name: str) -> None:
    owner = body(
        {"azure": {"account": "acct01", "container": "pg-backups"}}, pod={"env": [{"name": name, "value": "x"}]}
    )
    with pytest.raises(RenderError, match=rf"^spec.pod.env\[0\].name: '{name}' is set by the operator") as caught:
        render.render_all(owner)
    assert caught.value.reason == "PodNotAllowed"


# One name of each family that loads code or moves TLS trust, in each program the image runs.
LOADERS = (
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONWARNINGS",
    "OPENSSL_CONF",
    "OPENSSL_MODULES",
    "KRB5_CONFIG",
    "GSS_MECH_CONFIG",
    "GCONV_PATH",
    "PATH",
    "NODE_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSLKEYLOGFILE",
)


def _identity_pod_with_a_file_of_the_author_s() -> tuple[dict[str, Any], str]:
    """A PgBackup whose pods carry Azure's workload identity and mount the CA Secret its author
    names, and the path of that file in the pods."""
    owner = body({"azure": {"account": "acct01", "container": "pg-backups"}})
    owner["spec"]["postgres"].update(sslMode="verify-full", tls={"caSecretRef": {"name": "authors-ca"}})
    backup = every_job(owner)["backup"]
    assert backup["metadata"]["labels"][IDENTITY_LABEL] == "true"
    return owner, str(env(backup)["PGSSLROOTCERT"])


@pytest.mark.parametrize("name", LOADERS)
def test_a_plain_env_value_cannot_load_the_author_s_file_or_trust_the_author_s_ca(name: str) -> None:
    """The attack: LD_PRELOAD (or a CA bundle, a Python path...) naming the mounted CA file, whose
    bytes the author chose, in a pod holding an identity the author lacks. Neither the CronJobs
    nor a restore of this PgBackup render."""
    owner, authors_file = _identity_pod_with_a_file_of_the_author_s()
    owner["spec"]["pod"] = {"env": [{"name": "TZ", "value": "UTC"}, {"name": name, "value": authors_file}]}
    refused = rf"^spec.pod.env\[1\].name: '{name}' changes which code the job's programs load or which certificates"
    with pytest.raises(RenderError, match=refused) as caught:
        render.render_all(owner, "img:1")
    assert caught.value.reason == "PodNotAllowed" and "spec.pod.image" in str(caught.value)
    with pytest.raises(RenderError, match=refused):
        restores.render_restore_job(copy.deepcopy(RESTORE), owner, "img:1")


def test_proxy_variables_still_reach_every_pod() -> None:
    """A proxy sees no token while TLS verification holds, so authors may still set one."""
    owner, _ = _identity_pod_with_a_file_of_the_author_s()
    proxy = {"HTTPS_PROXY": "http://proxy.db.svc:3128", "NO_PROXY": ".svc,.cluster.local"}
    owner["spec"]["pod"] = {"env": [{"name": key, "value": value} for key, value in proxy.items()]}
    for component, template in every_job(owner).items():
        assert proxy.items() <= env(template).items(), component


ALLOWLIST = "PGBACKUP_ALLOWED_BLOB_ENDPOINTS"
ENDPOINT_VARIABLE = {"azure": "BACKUP_AZURE_ENDPOINT", "gcs": "BACKUP_GCS_ENDPOINT"}
PLACES = {"azure": {"account": "acct01", "container": "pg-backups"}, "gcs": {"bucket": "pg-backups"}}


@pytest.mark.parametrize("kind", sorted(PLACES))
@pytest.mark.parametrize("allowlist", ["", "https://blob.core.chinacloudapi.cn"])
def test_an_endpoint_the_allowlist_lacks_renders_no_job(
    monkeypatch: pytest.MonkeyPatch, kind: str, allowlist: str
) -> None:
    """The attack: a spec sends the jobs' Azure or Google credentials to its author's host."""
    monkeypatch.setenv(ALLOWLIST, allowlist)
    owner = body({kind: {**PLACES[kind], "endpoint": "https://attacker.example"}}, **PER_JOB)
    with pytest.raises(RenderError) as caught:
        render.render_all(owner, "img:1")
    assert caught.value.reason == "EndpointNotAllowed"
    assert f"spec.destination.{kind}.endpoint" in str(caught.value)
    assert ALLOWLIST in str(caught.value) and "destinations.allowedEndpoints" in str(caught.value)
    with pytest.raises(RenderError) as restore:  # a PgRestore renders its job from the PgBackup
        restores.render_restore_job(copy.deepcopy(RESTORE), owner, "img:1")
    assert restore.value.reason == "EndpointNotAllowed"


@pytest.mark.parametrize("kind", sorted(PLACES))
def test_an_allowed_endpoint_reaches_every_job(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Compared without its trailing slash; rendered as the job's endpoint variable."""
    monkeypatch.setenv(ALLOWLIST, "https://other.example, https://private.example/")
    templates = every_job(body({kind: {**PLACES[kind], "endpoint": "https://private.example"}}, **PER_JOB))
    assert sorted(templates) == sorted(WANTED)
    for template in templates.values():
        assert env(template)[ENDPOINT_VARIABLE[kind]] == "https://private.example"


def test_no_endpoint_renders_no_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOWLIST, raising=False)
    for kind in PLACES:
        for template in every_job(body({kind: PLACES[kind]}, **PER_JOB)).values():
            assert not set(ENDPOINT_VARIABLE.values()) & set(env(template))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("http://blob.example", "https:// URL with a host"),
        ("blob.example", "https:// URL with a host"),
        ("https://user:pw@blob.example", "user, query or fragment"),
        ("https://blob.example/?sv=1&sig=pw", "user, query or fragment"),
        ("https://blob.example/#pw", "user, query or fragment"),
    ],
)
def test_the_allowlist_holds_only_plain_https_urls(entry: str, problem: str) -> None:
    from backup_job.core.errors import ConfigError
    from backup_job.core.settings import OPERATOR_ALLOWED_ENDPOINTS

    with pytest.raises(ConfigError, match=rf"^configuration error: {ALLOWLIST}\b.*{problem}") as caught:
        OPERATOR_ALLOWED_ENDPOINTS.read({ALLOWLIST: f"https://fine.example/, {entry}"})
    assert "pw" not in str(caught.value)  # a user's password or a SAS token's signature is never shown
