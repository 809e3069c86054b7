"""Tests for the customer spec, the stack-file reader and the cross-field checks, without the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sovstack.infra.checks import semantic_problems
from sovstack.infra.pipeline import load_stack
from sovstack.infra.spec import CustomerSpec
from sovstack.infra.stackfile import (
    CUSTOMER_KEY,
    Problem,
    SpecError,
    format_loc,
    parse_spec,
    read_config,
    resolve,
    stack_name,
    stacks_dir,
)
from tests.infra.conftest import EXAMPLES, STACKS_DIR, Customer, example_customer


def spec_of(customer: Customer) -> CustomerSpec:
    return parse_spec({CUSTOMER_KEY: customer}, "f.yaml")


def problems_of(example: str, change: Any) -> list[str]:
    """Lines `path: message` for the example changed by `change(customer)`, spec or semantic."""
    customer = example_customer(example)
    change(customer)
    try:
        spec = spec_of(customer)
    except SpecError as err:
        return [f"{p.path}: {p.message}" for p in err.problems]
    return [f"{format_loc(loc)}: {message}" for loc, message in semantic_problems(spec)]


# --- the examples ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_load_without_problems(example: str) -> None:
    loaded = load_stack(STACKS_DIR / f"Pulumi.{example}.yaml")
    assert loaded.name == example
    assert loaded.spec.name == example
    assert semantic_problems(loaded.spec) == []


def test_camel_case_keys_map_to_snake_case_fields() -> None:
    spec = spec_of(example_customer("industrial-eu"))
    pool = spec.cluster.gpu_pools[0]
    assert (pool.name, pool.gpu_type, pool.node_type, pool.gpus_per_node) == ("h100", "H100", "H100-2-80G", 2)
    assert spec.models[0].served_model_name == "mistral-small-3.1"
    assert spec.models[0].api_key_secret.name == "industrial-eu-api-key"
    assert spec.cluster.location == "fr-par"
    assert (spec.serving_namespace, spec.audit_namespace) == ("industrial-eu-serving", "industrial-eu-audit")
    assert spec.residency.label == "eu"


def test_site_backends_locate_by_site() -> None:
    spec = spec_of(example_customer("research-se"))
    assert spec.cluster.location == "se-sto-dc1"


def test_snake_case_field_names_are_accepted_too() -> None:
    customer = example_customer("gov-fr")
    customer["display_name"] = customer.pop("displayName")
    assert spec_of(customer).display_name == "Administration publique (assistant de rédaction)"


def test_spec_is_frozen() -> None:
    spec = spec_of(example_customer("gov-fr"))
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


def test_defaults() -> None:
    customer = example_customer("gov-fr")
    del customer["network"], customer["registries"]
    for model in customer["models"]:
        for key in ("maxModelLen", "concurrency"):
            model.pop(key)
    spec = spec_of(customer)
    model = spec.models[0]
    assert (model.dtype, model.max_model_len, model.concurrency, model.replicas) == ("bf16", 8192, 8, 1)
    assert model.gpu_memory_utilization == 0.9
    assert model.api_key_secret.key == "api-key"
    assert (spec.network.cni, spec.network.egress, spec.network.public_endpoint) == ("cilium", (), False)
    assert spec.registries.vllm is None
    assert spec.state.secrets_provider == "hashivault://sovstack-gov-fr"
    assert spec.audit.credentials_secret == "audit-s3-credentials"


# --- what pydantic refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c.update(colour="red"),
            "sovstack:customer.colour: unknown key (not part of the spec; see `sovstack schema`)",
        ),
        (
            lambda c: c["cluster"]["gpuPools"][0].update(colour="red"),
            "sovstack:customer.cluster.gpuPools[0].colour: unknown key (not part of the spec; see `sovstack schema`)",
        ),
        (
            lambda c: c["models"][1]["weights"]["s3"].update(region="gra"),
            "sovstack:customer.models[1].weights.s3.region: unknown key (not part of the spec; see `sovstack schema`)",
        ),
        (lambda c: c.pop("audit"), "sovstack:customer.audit: required field is missing"),
        (
            lambda c: c.update(name="Gov_FR"),
            "sovstack:customer.name: 'Gov_FR' is not a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with an alphanumeric, at most 63 characters)",
        ),
        (
            lambda c: c["residency"].update(policy={"countries": ["FR"]}),
            "sovstack:customer.residency: give either profile (with overrides) or policy, not both",
        ),
        (
            lambda c: c["residency"].pop("profile"),
            "sovstack:customer.residency: name a profile or spell out a policy",
        ),
        (
            lambda c: c["models"][0]["weights"].update(pvc={"claimName": "w"}),
            "sovstack:customer.models[0].weights: give exactly one of s3 or pvc",
        ),
        (
            lambda c: c["models"][0].update(custom={"layers": 1}),
            "sovstack:customer.models[0]: give exactly one of model (a catalog id) or custom (the model's figures)",
        ),
        (
            lambda c: c["cluster"].update(provider="aws"),
            "sovstack:customer.cluster.provider: Input should be 'scaleway', 'ovh', 'talos' or 'existing'",
        ),
        (
            lambda c: c["cluster"]["gpuPools"][0].update(gpusPerNode=9),
            "sovstack:customer.cluster.gpuPools[0].gpusPerNode: Input should be less than or equal to 8",
        ),
        (
            lambda c: c["cluster"].update(gpuPools=[]),
            "sovstack:customer.cluster.gpuPools: Tuple should have at least 1 item after validation, not 0",
        ),
    ],
)
def test_spec_refuses_with_exact_path_and_message(change: Any, expected: str) -> None:
    assert problems_of("gov-fr", change) == [expected]


def test_invalid_item_is_not_also_reported_as_too_short() -> None:
    """pydantic counts only the valid items of a tuple; the one real problem is the item's."""
    problems = problems_of("gov-fr", lambda c: c["cluster"]["gpuPools"][0].update(colour="red"))
    assert problems == [
        "sovstack:customer.cluster.gpuPools[0].colour: unknown key (not part of the spec; see `sovstack schema`)"
    ]


def test_kubernetes_version_range() -> None:
    # The spec takes 1.30 to 1.37; whether a provider still creates the version is kubernetes.yaml's
    # business (an existing cluster follows the upstream dates, which know 1.37).
    assert problems_of("airgap-onprem", lambda c: c["cluster"].update(kubernetesVersion="1.37")) == []
    [problem] = problems_of("gov-fr", lambda c: c["cluster"].update(kubernetesVersion="1.27"))
    assert problem == (
        "sovstack:customer.cluster.kubernetesVersion: '1.27' is not supported: sovstack supports Kubernetes "
        '1.30 to 1.37, as a minor ("1.31") or, for Talos, a patch release ("1.32.4")'
    )


# --- cross-field checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "change", "expected"),
    [
        (
            "industrial-eu",
            lambda c: c["cluster"].update(region="de-fra"),
            [
                "sovstack:customer.cluster.region: unknown scaleway region 'de-fra'; known: fr-par, nl-ams, pl-waw"
            ],
        ),
        (
            "industrial-eu",
            lambda c: c["cluster"].update(site="fr-par-dc1"),
            ["sovstack:customer.cluster.site: not used by provider scaleway; give region instead"],
        ),
        (
            "research-se",
            lambda c: c["cluster"].update(site="de-fra-dc1"),
            ["sovstack:customer.cluster.site: unknown site 'de-fra-dc1'; known: fr-par-dc1, se-sto-dc1"],
        ),
        (
            "industrial-eu",
            lambda c: c["cluster"]["gpuPools"][0].update(minNodes=4),
            ["sovstack:customer.cluster.gpuPools[0].maxNodes: 3 is below minNodes 4"],
        ),
        (
            "industrial-eu",
            lambda c: c["cluster"]["gpuPools"][0].update(nodeType="L4-1-24G"),
            [
                "sovstack:customer.cluster.gpuPools[0].nodeType: L4-1-24G has 1x L4, but the pool says "
                "gpuType H100 and gpusPerNode 2"
            ],
        ),
        (
            "industrial-eu",
            lambda c: c["cluster"]["gpuPools"][0].update(zones=["fr-par-1"]),
            [
                "sovstack:customer.cluster.gpuPools[0].gpuType: H100 is not offered in zone fr-par-1 "
                "(offered: none; source: Scaleway docs products-availability)"
            ],
        ),
        # A zone outside the region is no cross-field problem: it is the residency rule zone.in-region
        # (exit 1; tests/infra/test_cli_validate.py test_zone_outside_the_region_is_the_residency_rule_exit_1).
        (
            "gov-fr",
            lambda c: c["cluster"]["systemPool"].update(zones=["GRA9"]),
            [],
        ),
        (
            "gov-fr",
            lambda c: c["models"][1].update(name="mistral-7b"),
            [
                "sovstack:customer.models[0].name: duplicate name 'mistral-7b'",
                "sovstack:customer.models[1].name: duplicate name 'mistral-7b'",
            ],
        ),
        (
            "gov-fr",
            lambda c: c["models"][0].update(pool="h100"),
            ["sovstack:customer.models[0].pool: no GPU pool named 'h100' (pools: l40s)"],
        ),
        (
            "gov-fr",
            lambda c: c["audit"].update(backend="scaleway"),
            [
                "sovstack:customer.audit.backend: a scaleway bucket needs a scaleway cluster (cluster.provider is ovh)"
            ],
        ),
        (
            "gov-fr",
            lambda c: c["audit"].update(region="XX1"),
            [
                "sovstack:customer.audit.region: unknown ovh region 'XX1'; known: AP-SOUTH-MUM, BHS5, DE1, "
                "EU-SOUTH-MIL, EU-WEST-PAR, EU-WEST-RBX, GRA11, GRA7, GRA9, SBG5, SGP1, SYD1, UK1, "
                "US-EAST-VA-1, US-WEST-OR-1, WAW1"
            ],
        ),
        (
            "research-se",
            lambda c: c["audit"].pop("endpoint"),
            ["sovstack:customer.audit.endpoint: required for backend minio"],
        ),
        (
            "gov-fr",
            lambda c: c["network"].update(egress=[]),
            [
                "sovstack:customer.models[0].weights.s3.endpoint: s3.gra.io.cloud.ovh.net is not declared in network.egress",
                "sovstack:customer.models[1].weights.s3.endpoint: s3.gra.io.cloud.ovh.net is not declared in network.egress",
                "sovstack:customer.secrets.externalSecrets.storeEndpoint: vault.fr-par-dc1.sovstack.internal is not "
                "declared in network.egress",
                "sovstack:customer.identity.endpoints.jwt.jwksUri: sso.fr-par-dc1.sovstack.internal is not declared "
                "in network.egress",
                "sovstack:customer.identity.endpoints.rateLimit.redisUrl: redis.fr-par-dc1.sovstack.internal is not "
                "declared in network.egress",
            ],
        ),
        (
            "research-se",
            lambda c: c["cluster"]["talos"]["machines"][3].update(gpuCount=4),
            [
                "sovstack:customer.cluster.talos.machines[3].gpuType: machine has 4x H100-SXM; "
                "pool hgx expects 8x H100-SXM"
            ],
        ),
        (
            "research-se",
            lambda c: c["cluster"]["talos"].update(machines=c["cluster"]["talos"]["machines"][3:]),
            ["sovstack:customer.cluster.talos.machines: at least one machine must have role controlplane"],
        ),
        (
            "airgap-onprem",
            lambda c: c["residency"].update(profile="de-sovereign"),
            [
                "sovstack:customer.residency.profile: unknown profile 'de-sovereign'; "
                "known: airgapped, eu, fr-sovereign, se-sovereign"
            ],
        ),
        (
            "airgap-onprem",
            lambda c: c["residency"]["overrides"].update(countries=None),
            ["sovstack:customer.residency.overrides: countries: Input should be a valid tuple"],
        ),
        (
            "gov-fr",
            lambda c: c["residency"].update(profile=None, policy={"countries": "FR"}),
            ["sovstack:customer.residency.policy: countries: Input should be a valid tuple"],
        ),
    ],
)
def test_cross_field_checks(example: str, change: Any, expected: list[str]) -> None:
    assert problems_of(example, change) == expected


def test_model_too_big_for_its_pool() -> None:
    [problem] = problems_of("gov-fr", lambda c: c["models"][0].update(model="mistral-large-instruct-2411"))
    assert problem.startswith(
        "sovstack:customer.models[0].pool: mistral-large-instruct-2411 (bf16, maxModelLen 16384, concurrency 16) "
        "does not fit pool l40s (2x L40S): needs "
    )
    assert "(short by " in problem
    assert problem.endswith("see `sovstack capacity mistral-large-instruct-2411 --gpu L40S`")


def test_pool_too_small_for_its_replicas() -> None:
    problems = problems_of("gov-fr", lambda c: c["models"][0].update(replicas=8))
    assert len(problems) == 1
    assert problems[0].startswith("sovstack:customer.cluster.gpuPools[0].maxNodes: models on pool l40s need ")
    assert problems[0].endswith("but 2 nodes x 2 GPUs give 4")


# --- reading files --------------------------------------------------------------------------------------


def test_format_loc() -> None:
    assert (
        format_loc(("cluster", "gpuPools", 0, "zones", 1)) == "sovstack:customer.cluster.gpuPools[0].zones[1]"
    )
    assert format_loc(()) == "sovstack:customer"
    assert format_loc(("a", 2), prefix="") == "a[2]"


def test_problem_line_and_dict() -> None:
    problem = Problem("f.yaml", "sovstack:customer.name", "bad")
    assert problem.line() == "f.yaml: sovstack:customer.name: bad"
    assert Problem("f.yaml", "", "empty").line() == "f.yaml: empty"
    assert problem.to_dict() == {"file": "f.yaml", "path": "sovstack:customer.name", "message": "bad"}
    assert str(SpecError([problem, Problem("g", "", "x")])) == "f.yaml: sovstack:customer.name: bad\ng: x"


def test_resolve_names_and_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOVSTACK_STACKS_DIR", str(tmp_path))
    assert stacks_dir() == tmp_path
    assert resolve("gov-fr") == tmp_path / "Pulumi.gov-fr.yaml"
    assert resolve("other/Pulumi.x.yaml") == Path("other/Pulumi.x.yaml")
    assert resolve("stack.yml") == Path("stack.yml")
    assert stack_name(Path("a/Pulumi.gov-fr.yaml")) == "gov-fr"
    assert stack_name(Path("custom.yml")) == "custom"


def test_stacks_dir_defaults_to_the_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SOVSTACK_STACKS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert stacks_dir() == STACKS_DIR


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty; expected a Pulumi stack file with config.sovstack:customer"),
        ("# nothing\n", "file is empty; expected a Pulumi stack file with config.sovstack:customer"),
        ("- a\n", "expected a mapping at the top level, found list"),
        (
            "config:\n  a: [1, 2\n",
            "YAML syntax error: line 3, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "a: b\n\tc: d\n",
            "YAML syntax error: line 2, column 1: found character '\\t' that cannot start any token",
        ),
    ],
)
def test_read_config_refuses_unreadable_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        read_config(path)
    assert err.value.problems == [Problem(str(path), "", message)]


def test_read_config_refuses_a_file_without_config(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("encryptionsalt: abc\n", encoding="utf-8")
    with pytest.raises(SpecError) as err:
        read_config(path)
    assert err.value.problems == [
        Problem(str(path), "config", "missing or not a mapping; a stack file keeps settings there")
    ]


def test_read_config_refuses_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.nope.yaml"
    with pytest.raises(SpecError) as err:
        read_config(path)
    assert str(err.value) == f"{path}: no such stack file (give a stack name under stacks/ or a path)"


def test_read_config_refuses_binary(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\xff\xfe\x00config")
    with pytest.raises(SpecError) as err:
        read_config(path)
    assert err.value.problems[0].message.startswith("cannot read: ")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "required key is missing"),
        ({CUSTOMER_KEY: "x"}, "must be a mapping (the customer spec)"),
    ],
)
def test_parse_spec_needs_the_customer_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(config, "f.yaml")
    assert err.value.problems == [Problem("f.yaml", "config.sovstack:customer", message)]


def test_an_unquoted_kubernetes_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    """YAML reads `kubernetesVersion: 1.30` as the number 1.3: say so, rather than a bare type error."""
    from sovstack.infra.stackfile import SpecError

    source = (Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.gov-fr.yaml").read_text()
    stack = tmp_path / "Pulumi.gov-fr.yaml"
    stack.write_text(source.replace('kubernetesVersion: "1.36"', "kubernetesVersion: 1.30"))
    with pytest.raises(SpecError) as refused:
        load_stack(stack)
    assert [p.line() for p in refused.value.problems] == [
        f'{stack}: sovstack:customer.cluster.kubernetesVersion: write the version in quotes, e.g. "1.31": '
        "YAML read this one as the number 1.3 (a bare 1.30 even becomes 1.3)"
    ]


@pytest.mark.parametrize(
    ("example", "old", "new", "path", "message"),
    [
        (
            "industrial-eu",
            "      bucket: industrial-eu-audit\n",
            "      bucket: industrial-eu-audit\n      region: pl-waw\n",
            "sovstack:customer.audit.region",
            "the audit bucket must be in the cluster's region fr-par, not pl-waw: audit records stay where "
            "the workloads run",
        ),
        (
            "research-se",
            "      endpoint: https://s3.se-sto-dc1.sovstack.internal\n",
            "      endpoint: https://s3.fr-par-dc1.sovstack.internal\n",
            "sovstack:customer.audit.endpoint",
            "s3.fr-par-dc1.sovstack.internal is at operator fr-par-dc1 (Paris, FR, EU), not at the cluster's "
            "se-sto-dc1: audit records stay where the workloads run",
        ),
    ],
)
def test_the_audit_bucket_lives_with_the_cluster(
    tmp_path: Path, example: str, old: str, new: str, path: str, message: str
) -> None:
    """Another region inside the policy is still refused, before any resource exists."""
    from sovstack.infra.stackfile import SpecError

    source = (Path(__file__).resolve().parents[2] / "stacks" / f"Pulumi.{example}.yaml").read_text()
    assert old in source
    stack = tmp_path / f"Pulumi.{example}.yaml"
    stack.write_text(source.replace(old, new))
    with pytest.raises(SpecError) as refused:
        load_stack(stack)
    assert f"{stack}: {path}: {message}" in [p.line() for p in refused.value.problems]


def test_a_repeated_key_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys; a stack file must not lose the first without a word."""
    from sovstack.infra.stackfile import SpecError

    source = (Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.airgap-onprem.yaml").read_text()
    stack = tmp_path / "Pulumi.airgap-onprem.yaml"
    stack.write_text(source.replace("    models:\n", "      gpuOperator: {enabled: false}\n    models:\n", 1))
    with pytest.raises(SpecError) as refused:
        load_stack(stack)
    (problem,) = refused.value.problems
    assert problem.line().startswith(f"{stack}: YAML syntax error: line ")
    assert problem.line().endswith(": found duplicate key 'gpuOperator'")


def test_prometheus_may_scrape_only_when_a_model_asks_for_a_service_monitor() -> None:
    """A ServiceMonitor without an ingress rule for Prometheus would scrape nothing under default-deny."""

    def ingress_namespaces(stack: str) -> list[str]:
        objects = load_stack(stack).composition.kubernetes_objects()
        (policy,) = [
            o
            for o in objects
            if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-serving-ingress"
        ]
        return [
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in policy["spec"]["ingress"][0]["from"]
        ]

    assert ingress_namespaces("industrial-eu") == [
        "gateway",
        "monitoring",
    ]  # mistral-small has serviceMonitor
    assert ingress_namespaces("gov-fr") == ["gateway"]  # no ServiceMonitor: Prometheus stays out


def test_a_routes_gateway_namespace_is_let_in(tmp_path: Path) -> None:

    source = (Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.gov-fr.yaml").read_text()
    # The first model's route moves to a Gateway in a namespace network.gatewayNamespaces does not list.
    stack = tmp_path / "Pulumi.gov-fr.yaml"
    stack.write_text(
        source.replace(
            "gatewayName: assistant, gatewayNamespace: gateway}",
            "gatewayName: public, gatewayNamespace: edge}",
            1,
        )
    )
    objects = load_stack(stack).composition.kubernetes_objects()
    (policy,) = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-serving-ingress"
    ]
    peers = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policy["spec"]["ingress"][0]["from"]
    ]
    assert peers == ["gateway", "edge"]
    assert [o["kind"] for o in objects].count("HTTPRoute") == 2


def test_the_audit_shippers_need_the_api_servers_address() -> None:
    """Without it default-deny egress cuts the event shipper off: the audit trail would silently miss events."""
    problems = problems_of("gov-fr", lambda c: c["network"].pop("apiServerCidrs"))
    assert problems == [
        "sovstack:customer.network.apiServerCidrs: required: the audit shippers read events and pod metadata "
        "from the Kubernetes API, which default-deny egress blocks unless its addresses are given"
    ]


def test_a_models_autoscaling_becomes_a_scaled_object_and_leaves_replicas_to_it(tmp_path: Path) -> None:

    source = (Path(__file__).resolve().parents[2] / "stacks" / "Pulumi.gov-fr.yaml").read_text()
    scaling = "        autoscaling: {minReplicas: 1, maxReplicas: 3, queueTarget: 4}\n"
    stack = tmp_path / "Pulumi.gov-fr.yaml"
    stack.write_text(
        source.replace(
            "        apiKeySecret: {name: gov-fr-api-key}\n",
            "        apiKeySecret: {name: gov-fr-api-key}\n" + scaling,
            1,
        )
    )
    composition = load_stack(stack).composition
    objects = composition.kubernetes_objects()
    (scaled,) = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaled["metadata"]["name"] == "gov-fr-mistral-7b"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    (deployment,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "gov-fr-mistral-7b"
    ]
    assert "replicas" not in deployment["spec"]  # KEDA owns the replica count
    # The quota leaves room for the most replicas KEDA may start: 3 x TP 2, plus mistral-nemo's.
    assert (
        composition.gpu_ceiling()
        == 3 * composition.serving[0].tensor_parallel_size + composition.serving[1].tensor_parallel_size
    )


def test_an_expired_version_stops_new_clusters_but_not_refresh_or_destroy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past Kapsule's 1.36 cut-off, `up` is refused; reading back or tearing down the running cluster is not."""
    from sovstack.infra.stackfile import SpecError

    monkeypatch.setenv("SOVSTACK_TODAY", "2027-07-07")
    stack = tmp_path / "Pulumi.industrial-eu.yaml"
    stack.write_text((STACKS_DIR / "Pulumi.industrial-eu.yaml").read_text())
    with pytest.raises(SpecError) as refused:
        load_stack(stack)
    assert [p.path for p in refused.value.problems] == ["sovstack:customer.cluster.kubernetesVersion"]
    assert load_stack(stack, creating=False).composition is not None


# --- identity -------------------------------------------------------------------------------------------


def test_cluster_identity_needs_an_issuer() -> None:
    problems = problems_of("gov-fr", lambda c: c["identity"].pop("issuerUrl"))
    assert problems == [
        "sovstack:customer.identity: issuerUrl: required when cluster or endpoints.jwt is set"
    ]


def test_the_issuers_key_set_must_be_declared_egress() -> None:
    def drop(customer: dict[str, Any]) -> None:
        customer["network"]["egress"] = [e for e in customer["network"]["egress"] if e["name"] != "sso-par"]

    assert problems_of("gov-fr", drop) == [
        "sovstack:customer.identity.endpoints.jwt.jwksUri: sso.fr-par-dc1.sovstack.internal is not declared in "
        "network.egress"
    ]


def test_the_rate_limit_redis_must_be_declared_egress_unless_in_cluster() -> None:
    def drop(customer: dict[str, Any]) -> None:
        customer["network"]["egress"] = [e for e in customer["network"]["egress"] if e["name"] != "redis-par"]

    assert problems_of("gov-fr", drop) == [
        "sovstack:customer.identity.endpoints.rateLimit.redisUrl: redis.fr-par-dc1.sovstack.internal is not "
        "declared in network.egress"
    ]

    def in_cluster(customer: dict[str, Any]) -> None:
        drop(customer)
        customer["identity"]["endpoints"]["rateLimit"]["redisUrl"] = "redis.gateway.svc.cluster.local:6379"

    assert problems_of("gov-fr", in_cluster) == []


def test_jwt_and_api_keys_together_are_refused() -> None:
    problems = problems_of(
        "gov-fr", lambda c: c["identity"]["endpoints"].update(apiKeys={"secret": "gov-fr-clients"})
    )
    assert problems == [
        "sovstack:customer.identity.endpoints: give exactly one of jwt or apiKeys (Envoy Gateway requires every "
        "configured method to pass)"
    ]


def test_gov_fr_signs_in_through_its_issuer_everywhere() -> None:
    """The example uses OIDC cluster identity, the three roles, and JWTs with a rate limit at its Gateway."""
    composition = load_stack(STACKS_DIR / "Pulumi.gov-fr.yaml").composition
    assert composition.cluster.oidc is not None
    assert composition.cluster.oidc.issuer_url == "https://sso.fr-par-dc1.sovstack.internal/realms/gov-fr"
    kinds = {(o["kind"], o["metadata"]["name"]) for o in composition.kubernetes_objects()}
    assert {
        ("ClusterRoleBinding", "gov-fr-platform-admins"),
        ("RoleBinding", "gov-fr-model-operators"),
        ("ClusterRoleBinding", "gov-fr-auditors"),
        ("RoleBinding", "gov-fr-audit-bucket-readers"),
        ("SecurityPolicy", "assistant-identity"),
        ("BackendTrafficPolicy", "assistant-rate-limit"),
    } <= kinds
    # The Gateway's Envoy reaches the issuer's keys; no workload namespace does.
    assert not [
        o
        for o in composition.kubernetes_objects()
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["name"] in ("allow-egress-sso-par", "allow-egress-redis-par")
    ]
    values = composition.platform_description.release("envoy-gateway").values  # type: ignore[union-attr]
    assert values["config"]["envoyGateway"]["rateLimit"] == {
        "backend": {"type": "Redis", "redis": {"url": "redis.fr-par-dc1.sovstack.internal:6379"}},
        "failClosed": True,
    }
    # The auditors' read-only bucket key and the Bearer value the Gateway injects are synced from the store.
    synced = {(s.namespace, s.name, s.keys) for s in composition.external_secrets.secrets}  # type: ignore[union-attr]
    assert ("gov-fr-audit", "audit-s3-readonly", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")) in synced
    assert ("gov-fr-serving", "gov-fr-api-key-bearer", ("credential",)) in synced
    # Each route hands vLLM its own key through the filter, once the Gateway has checked the JWT.
    (route,) = [
        o
        for o in composition.kubernetes_objects()
        if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "gov-fr-mistral-7b"
    ]
    assert route["spec"]["rules"][0]["filters"] == [
        {
            "type": "ExtensionRef",
            "extensionRef": {
                "group": "gateway.envoyproxy.io",
                "kind": "HTTPRouteFilter",
                "name": "gov-fr-mistral-7b-upstream-key",
            },
        }
    ]
    assert ("HTTPRouteFilter", "gov-fr-mistral-7b-upstream-key") in kinds
