"""A model rollout with the real engine: what starting one previews as against a deployed stack.

One stack (a copy of gov-fr as an existing cluster, its first model behind a Gateway route) on a
cluster of its own. Starting a rollout must create the new version's Deployment and Service, update the
route's weights (and the serving namespace's GPU quota, in place, for the new version's GPUs), and
replace or delete nothing: the stable Deployment keeps its URN.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e.conftest import StackFactory
from tests.e2e.harness import E2EStack
from tests.e2e.test_changes import NEVER_REPLACED
from tests.e2e.test_stacks import e2e_customer

pytestmark = pytest.mark.e2e

CANARY = "gov-fr-mistral-7b-canary"


def routed_gov_fr(mirror: str) -> dict[str, Any]:
    customer = e2e_customer("gov-fr", mirror, gpu_nodes=3)  # a third node: room for the new version
    customer["models"][0]["route"] = {
        "hostname": "chat.gov-fr.sovstack.internal",
        "gatewayName": "public",
        "gatewayNamespace": "gov-fr-gateway",
    }
    return customer


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, chart_mirror_url: str) -> E2EStack:
    deployed = make_stack("e2e-rollouts", routed_gov_fr(chart_mirror_url))
    deployed.run("up")
    return deployed


def test_starting_a_rollout_previews_as_the_canary_created_and_the_route_updated(stack: E2EStack) -> None:
    deployed = copy.deepcopy(stack.customer)
    rolling = copy.deepcopy(deployed)
    # The new version: new weights (mistral-7b v0.3 -> a re-quantised copy), 10% of the requests.
    rolling["models"][0]["rollout"] = {
        "weights": {
            "s3": {
                "url": "s3://gov-fr-weights/mistral-7b-v0.3-r2/",
                "endpoint": "https://s3.gra.io.cloud.ovh.net",
                "credentialsSecret": "weights-s3",
            }
        },
        "weight": 10,
    }
    try:
        stack.write(rolling)
        stack.run("preview")
        ops, changed = stack.ops(), stack.changed()
    finally:
        stack.write(deployed)

    assert set(ops) <= {"same", "create", "update"}, ops  # nothing replaced, nothing deleted
    assert ops["create"] == {"kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"}
    assert ops["update"] == {
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "kubernetes:core/v1:ResourceQuota",
    }
    created = [urn for op, urn in changed if op == "create"]
    assert len(created) == 2 and all(urn.endswith(f"/gov-fr-serving/{CANARY}") for urn in created), created
    updated = [urn for op, urn in changed if op == "update"]
    assert any(urn.endswith("::gov-fr-mistral-7b/gov-fr-serving/gov-fr-mistral-7b") for urn in updated), (
        updated
    )
    assert not set(NEVER_REPLACED) & ops.get("replace", set())
