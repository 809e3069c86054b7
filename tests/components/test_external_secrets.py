"""ExternalSecrets: the Secrets workloads reference, synced from an in-region store; never a value."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes
import pytest

from sovstack.components.builders.external_secrets import (
    ExternalSecretsArgs,
    SecretToSync,
    build_external_secrets,
)
from sovstack.components.external_secrets import ExternalSecrets
from tests.determinism import assert_same_in_fresh_processes
from tests.pulumi_mocks import Recorder

ARGS = ExternalSecretsArgs(
    customer="acme",
    region="fr-par",
    residency_profile="eu",
    store_name="vault-fr",
    remote_prefix="sovstack/acme",
    secrets=(
        SecretToSync(
            name="weights-s3", namespace="acme-serving", keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ),
        SecretToSync(name="acme-api-key", namespace="acme-serving", keys=("api-key",)),
        SecretToSync(
            name="audit-s3", namespace="acme-audit", keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ),
    ),
)


def test_one_external_secret_per_secret_in_a_stable_order() -> None:
    objects = build_external_secrets(ARGS)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects] == [
        ("acme-audit", "audit-s3"),
        ("acme-serving", "acme-api-key"),
        ("acme-serving", "weights-s3"),
    ]
    api_key = objects[1]
    assert api_key["apiVersion"] == "external-secrets.io/v1"
    assert api_key["spec"] == {
        "refreshInterval": "1h",
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault-fr"},
        "target": {"name": "acme-api-key", "creationPolicy": "Owner", "deletionPolicy": "Retain"},
        "data": [
            {
                "secretKey": "api-key",
                "remoteRef": {"key": "sovstack/acme/acme-api-key", "property": "api-key"},
            }
        ],
    }
    assert api_key["metadata"]["labels"]["sovstack.io/region"] == "fr-par"


@pytest.mark.slow
def test_objects_are_the_same_in_every_process() -> None:
    assert_same_in_fresh_processes(
        "import json\n"
        "from tests.components.test_external_secrets import ARGS\n"
        "from sovstack.components.builders.external_secrets import build_external_secrets\n"
        "print(json.dumps(build_external_secrets(ARGS)))"
    )


def test_a_secret_name_that_is_not_a_dns_label_is_refused() -> None:
    bad = ARGS.model_copy(update={"secrets": (SecretToSync(name="Bad_Name", namespace="n", keys=("k",)),)})
    with pytest.raises(ValueError, match="secrets: 'Bad_Name' is not a DNS-1123 label"):
        build_external_secrets(bad)


@pulumi.runtime.test
def test_the_component_registers_each_object_under_itself_with_the_provider(mocks: Recorder) -> None:
    provider = pulumi_kubernetes.Provider("k8s", kubeconfig="apiVersion: v1")
    component = ExternalSecrets("acme-secrets", ARGS, provider=provider)

    def check(urns: list[str]) -> None:
        registered = mocks.of_type("kubernetes:external-secrets.io/v1:ExternalSecret")
        assert sorted(r.name for r in registered) == [
            "acme-secrets/acme-audit/audit-s3",
            "acme-secrets/acme-serving/acme-api-key",
            "acme-secrets/acme-serving/weights-s3",
        ]
        assert all("sovstack:secrets:ExternalSecrets$" in urn for urn in urns)
        assert all(r.provider and "::k8s::" in r.provider for r in registered)

    return pulumi.Output.all(*[o.urn for o in component.objects]).apply(check)
