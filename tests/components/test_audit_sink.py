from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pulumi
import pytest
import yaml

from sovstack.components import inference_records as records
from sovstack.components.audit_sink import AuditSink
from sovstack.components.builders.audit_sink import (
    AuditSinkArgs,
    audit_data,
    build_audit_bucket,
    build_audit_policy,
    build_audit_sink,
    build_fluent_bit_config,
)
from sovstack.components.kube import image_is_pinned
from tests.components.access_log_sample import envoy_entry
from tests.determinism import assert_same_in_fresh_processes
from tests.k8s_schema import assert_all_valid
from tests.pulumi_mocks import Recorder

DIGEST = "sha256:" + "a" * 64
SECRET_VALUE = "do-not-leak-this-value"


def make_args(**overrides: Any) -> AuditSinkArgs:
    base: dict[str, Any] = {
        "customer": "acme",
        "region": "scw-fr-par",
        "residency_profile": "eu-strict",
        "namespace": "acme-audit",
        "logs_namespace": "acme-audit-logs",
        "serving_namespace": "acme-serving",
        "backend": "scaleway",
        "bucket": "acme-audit-trail",
        "retention_days": 200,
        "endpoint": "https://s3.fr-par.scw.cloud",
        "s3_region": "fr-par",
        "credentials_secret": "audit-s3",
        "fluent_bit_image": f"cr.fluentbit.io/fluent/fluent-bit:4.2.3@{DIGEST}",
    }
    base.update(overrides)
    return AuditSinkArgs(**base)


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def pod_spec(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (controller,) = by_kind(objs, kind)
    return controller["spec"]["template"]["spec"]


# --- args --------------------------------------------------------------------------------------------


def test_default_images_are_pinned_and_sourced() -> None:
    images = audit_data().images
    assert image_is_pinned(images.fluent_bit.image) and images.fluent_bit.source
    assert image_is_pinned(images.mc.image) and images.mc.source
    assert make_args(fluent_bit_image=images.fluent_bit.image).fluent_bit_image.startswith(
        "cr.fluentbit.io/fluent/fluent-bit:"
    )


def test_retention_below_minimum_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"retention_days: 90 is below min_retention_days 180 \(EU AI Act"):
        make_args(retention_days=90)
    with pytest.raises(ValueError, match=r"retention_days: 300 is below min_retention_days 365"):
        make_args(retention_days=300, min_retention_days=365)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fluent_bit_image": "fluent/fluent-bit:4.2.3"}, r"fluent_bit_image: .* is not pinned"),
        ({"endpoint": "http://s3.fr-par.scw.cloud"}, r"endpoint: .* must be an https:// URL"),
        ({"bucket": "Bad_Bucket"}, r"bucket: 'Bad_Bucket' is not a valid S3 bucket name"),
        ({"backend": "ovh"}, r"service_name and region_name: both are required for backend 'ovh'"),
        ({"backend": "minio"}, r"minio_admin_secret: required for backend 'minio'"),
        ({"logs_namespace": "acme-audit"}, r"logs_namespace: must differ from namespace"),
        ({"buffer_size": "10GB"}, r"buffer_size: '10GB' must look like"),
        (
            {"apiserver_audit_log_path": "/etc/kubernetes/audit.log"},
            r"apiserver_audit_log_path: must be under",
        ),
    ],
)
def test_invalid_args_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_args(**overrides)


def test_bucket_description() -> None:
    assert build_audit_bucket(make_args()) == {
        "type": "scaleway:object/bucket:Bucket",
        "name": "acme-audit-trail",
        "region": "fr-par",
        "endpoint": "https://s3.fr-par.scw.cloud",
        "objectLock": {"mode": "COMPLIANCE", "days": 200},
        "versioning": True,
        "managed": True,
    }
    ovh = make_args(
        backend="ovh", service_name="p1", region_name="GRA", endpoint="https://s3.gra.io.cloud.ovh.net"
    )
    assert build_audit_bucket(ovh)["region"] == "GRA"
    assert build_audit_bucket(make_args(backend="existing"))["managed"] is False


# --- Fluent Bit configuration ------------------------------------------------------------------------


def test_fluent_bit_logs_config() -> None:
    args = make_args(apiserver_audit_log_path="/var/log/audit/kube/*.log")
    config = yaml.safe_load(build_fluent_bit_config(args, "logs"))
    service = config["service"]
    assert service["storage.path"] == "/buffer/storage/"
    assert service["storage.sync"] == "full"
    assert service["storage.checksum"] == "on"
    assert service["storage.backlog.mem_limit"] == "50M"
    assert (service["http_server"], service["http_port"], service["health_check"]) == ("on", 2020, "on")
    inputs = config["pipeline"]["inputs"]
    assert [(i["name"], i["path"]) for i in inputs] == [
        ("tail", "/var/log/containers/*_acme-serving_*.log"),
        ("tail", "/var/log/audit/kube/*.log"),
    ]
    assert all(i["storage.type"] == "filesystem" for i in inputs)
    assert [f["name"] for f in config["pipeline"]["filters"]] == ["kubernetes", "record_modifier"]
    assert config["pipeline"]["filters"][0]["k8s-logging.exclude"] == "off"
    (output,) = config["pipeline"]["outputs"]
    assert output == {
        "name": "s3",
        "match": "*",
        "bucket": "acme-audit-trail",
        "region": "fr-par",
        "endpoint": "https://s3.fr-par.scw.cloud",
        "use_put_object": "on",
        "send_content_md5": "true",
        "compression": "gzip",
        "total_file_size": "50M",
        "upload_timeout": "10m",
        "store_dir": "/buffer/s3",
        "store_dir_limit_size": "10G",
        "storage.total_limit_size": "10G",
        # Never "False": out_s3 turns an unlimited limit into a few attempts, then drops the file.
        "retry_limit": 8640,
        "preserve_data_ordering": "true",
        "s3_key_format": "/acme/scw-fr-par/logs/%Y/%m/%d/$TAG/%H%M%S-$UUID.gz",
    }


def test_failed_uploads_are_retried_for_days_with_a_capped_backoff() -> None:
    service = yaml.safe_load(build_fluent_bit_config(make_args()))["service"]
    assert (service["scheduler.base"], service["scheduler.cap"]) == (5, 60)


def test_fluent_bit_events_config() -> None:
    config = yaml.safe_load(build_fluent_bit_config(make_args(), "events"))
    assert [i["name"] for i in config["pipeline"]["inputs"]] == ["kubernetes_events"]
    assert config["pipeline"]["inputs"][0]["storage.type"] == "filesystem"
    assert config["pipeline"]["outputs"][0]["s3_key_format"].startswith("/acme/scw-fr-par/events/")
    # without an audit log path, the logs shipper tails container logs only
    logs = yaml.safe_load(build_fluent_bit_config(make_args(), "logs"))
    assert len(logs["pipeline"]["inputs"]) == 1


def test_config_is_deterministic_and_holds_no_credentials() -> None:
    args = make_args()
    for workload in ("events", "logs"):
        text = build_fluent_bit_config(args, workload)
        assert text == build_fluent_bit_config(make_args(), workload)
        lowered = text.lower()
        assert "aws_access_key_id" not in lowered and "aws_secret_access_key" not in lowered
        assert "secret" not in lowered and "password" not in lowered


# --- Kubernetes objects ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["scaleway", "minio"])
def test_every_manifest_validates_strictly(backend: str) -> None:
    args = make_args(
        backend=backend, minio_admin_secret="minio-admin", apiserver_audit_log_path="/var/log/a/*.log"
    )
    assert assert_all_valid(build_audit_sink(args), "1.31", "1.34") == set()


def test_objects_and_names() -> None:
    objs = build_audit_sink(make_args())
    assert [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "acme-audit", "acme-audit-events"),
        ("ClusterRole", None, "sovstack-acme-audit-events"),
        ("ClusterRoleBinding", None, "sovstack-acme-audit-events"),
        ("ConfigMap", "acme-audit", "acme-audit-events"),
        ("Deployment", "acme-audit", "acme-audit-events"),
        ("ServiceAccount", "acme-audit-logs", "acme-audit-logs"),
        ("ClusterRole", None, "sovstack-acme-audit-logs"),
        ("ClusterRoleBinding", None, "sovstack-acme-audit-logs"),
        ("ConfigMap", "acme-audit-logs", "acme-audit-logs"),
        ("DaemonSet", "acme-audit-logs", "acme-audit-logs"),
    ]


@pytest.mark.slow
def test_objects_are_the_same_in_every_process() -> None:
    assert_same_in_fresh_processes(
        "import json, sys\n"
        "from tests.components.test_audit_sink import make_args\n"
        "from sovstack.components.builders.audit_sink import build_audit_bucket, build_audit_sink\n"
        "for backend in sys.argv[1:]:\n"
        "    extra = {'minio_admin_secret': 'minio-admin'} if backend == 'minio' else {}\n"
        "    args = make_args(backend=backend, **extra)\n"
        "    print(json.dumps([build_audit_bucket(args), *build_audit_sink(args)]))",
        "scaleway",
        "minio",
        "existing",
    )


def test_least_privilege_rbac() -> None:
    roles = {o["metadata"]["name"]: o["rules"] for o in by_kind(build_audit_sink(make_args()), "ClusterRole")}
    assert roles == {
        "sovstack-acme-audit-events": [
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}
        ],
        "sovstack-acme-audit-logs": [
            {"apiGroups": [""], "resources": ["namespaces", "pods"], "verbs": ["get", "list", "watch"]}
        ],
    }


def test_events_deployment_is_fully_restricted() -> None:
    objs = build_audit_sink(make_args())
    (deployment,) = by_kind(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(objs, "Deployment")
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert all("hostPath" not in v for v in spec["volumes"])
    assert {"name": "buffer", "emptyDir": {"sizeLimit": "10G"}} in spec["volumes"]


def test_logs_daemonset_relaxes_only_what_reading_host_logs_needs() -> None:
    objs = build_audit_sink(make_args(apiserver_audit_log_path="/var/log/audit/kube/*.log"))
    spec = pod_spec(objs, "DaemonSet")
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "hostNetwork" not in spec and "hostPID" not in spec
    host_paths = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {
        "buffer": {"path": "/var/lib/sovstack/audit-buffer", "type": "DirectoryOrCreate"},
        "varlog": {"path": "/var/log", "type": "Directory"},
    }
    assert {"name": "varlog", "mountPath": "/var/log", "readOnly": True} in container["volumeMounts"]
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    ]
    no_host_buffer = pod_spec(build_audit_sink(make_args(buffer_host_path=None)), "DaemonSet")
    assert {"name": "buffer", "emptyDir": {"sizeLimit": "10G"}} in no_host_buffer["volumes"]


def test_shipper_containers_pinned_probed_bounded_and_secret_free() -> None:
    args = make_args(backend="minio", minio_admin_secret="minio-admin")
    objs = build_audit_sink(args)
    assert SECRET_VALUE not in str(objs)
    for kind in ("Deployment", "DaemonSet"):
        spec = pod_spec(objs, kind)
        assert spec["automountServiceAccountToken"] is True
        (container,) = spec["containers"]
        assert container["image"] == args.fluent_bit_image
        assert container["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/", "port": "http"}
        assert container["ports"] == [{"name": "http", "containerPort": 2020, "protocol": "TCP"}]
        assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
        assert container["env"] == [
            {"name": k, "valueFrom": {"secretKeyRef": {"name": "audit-s3", "key": k}}}
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
    for sa in by_kind(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_minio_retention_job() -> None:
    objs = build_audit_sink(make_args(backend="minio", minio_admin_secret="minio-admin", retention_days=365))
    job = objs[0]
    assert (job["kind"], job["metadata"]["namespace"], job["metadata"]["name"]) == (
        "Job",
        "acme-audit",
        "acme-audit-retention",
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1].endswith(
        "mc --config-dir /tmp/mc retention set --default COMPLIANCE 365d audit/acme-audit-trail"
    )
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["env"][1:] == [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": "minio-admin", "key": k}}}
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    assert not [o for o in build_audit_sink(make_args()) if o["kind"] == "Job"]


# --- audit policy -------------------------------------------------------------------------------------


def test_audit_policy_never_logs_secret_bodies() -> None:
    policy = build_audit_policy(["acme-serving", "acme-audit"])
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["kind"] == "Policy"
    assert policy["omitStages"] == ["RequestReceived"]
    rules = policy["rules"]
    secret_rules = [
        i
        for i, rule in enumerate(rules)
        if any("secrets" in r.get("resources", []) for r in rule.get("resources", []))
    ]
    (secret_index,) = secret_rules
    assert rules[secret_index]["level"] == "Metadata"
    # every rule that could match a Secret first (no resource filter) logs no body, or comes after it
    for rule in rules[:secret_index]:
        assert rule["level"] == "None" or rule.get("resources")
    writes = rules[secret_index + 1]
    assert writes == {
        "level": "RequestResponse",
        "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        "namespaces": ["acme-audit", "acme-serving"],
    }
    assert rules[-1] == {"level": "Metadata"}
    assert all(r["level"] in ("None", "Metadata") for r in rules[:secret_index])


# --- Pulumi shell under mocks -------------------------------------------------------------------------


def _recorder() -> tuple[list[tuple[str, str, bool | None, bool | None]], pulumi.ResourceOptions]:
    """Parent transformations run under mocks and see each child's options: protect and retain_on_delete
    are not in MockResourceArgs, so this is how a test observes them."""
    seen: list[tuple[str, str, bool | None, bool | None]] = []

    def record(a: pulumi.ResourceTransformationArgs) -> None:
        seen.append((a.type_, a.name, a.opts.protect, a.opts.retain_on_delete))

    return seen, pulumi.ResourceOptions(transformations=[record])


def _cloud(mocks: Any) -> list[Any]:
    return [r for r in mocks.resources if r.custom and not r.typ.startswith("kubernetes:")]


@pulumi.runtime.test
def test_scaleway_bucket_locked_compliance_versioned_protected(mocks: Recorder) -> pulumi.Output[None]:
    seen, opts = _recorder()
    sink = AuditSink("audit", make_args(project_id="proj-1"), provider=None, opts=opts)

    def check(_: object) -> None:
        bucket = mocks.named("audit-bucket")
        assert bucket.typ == "scaleway:object/bucket:Bucket"
        assert bucket.inputs["name"] == "acme-audit-trail"
        assert bucket.inputs["region"] == "fr-par"
        assert bucket.inputs["projectId"] == "proj-1"
        assert bucket.inputs["objectLockEnabled"] is True
        assert bucket.inputs["versioning"] == {"enabled": True}
        lock = mocks.named("audit-lock")
        assert lock.typ == "scaleway:object/bucketLockConfiguration:BucketLockConfiguration"
        assert lock.inputs["region"] == "fr-par"
        assert lock.inputs["bucket"] == "acme-audit-trail"
        retention = lock.inputs["rule"]["defaultRetention"]
        assert retention["mode"] == "COMPLIANCE" and retention["days"] >= 180 and retention["days"] == 200.0
        assert {(t, n): (p, r) for t, n, p, r in seen if not t.startswith(("kubernetes:", "sovstack:"))} == {
            ("scaleway:object/bucket:Bucket", "audit-bucket"): (True, True),
            ("scaleway:object/bucketLockConfiguration:BucketLockConfiguration", "audit-lock"): (True, True),
        }
        assert len([r for r in mocks.resources if r.typ.startswith("kubernetes:")]) == 10

    return pulumi.Output.all(sink.bucket_name, sink.endpoint, *[o.urn for o in sink.objects]).apply(check)


@pulumi.runtime.test
def test_ovh_storage_locked_compliance_versioned_protected(mocks: Recorder) -> pulumi.Output[None]:
    seen, opts = _recorder()
    args = make_args(
        backend="ovh",
        service_name="abc123",
        region_name="GRA",
        s3_region="gra",
        endpoint="https://s3.gra.io.cloud.ovh.net",
    )
    sink = AuditSink("audit", args, provider=None, opts=opts)
    assert sink.lock is None

    def check(values: list[Any]) -> None:
        assert values[:2] == ["acme-audit-trail", "https://s3.gra.io.cloud.ovh.net"]
        (storage,) = _cloud(mocks)
        assert storage.typ == "ovh:CloudProject/storage:Storage" and storage.name == "audit-bucket"
        assert storage.inputs["serviceName"] == "abc123"
        assert storage.inputs["regionName"] == "GRA"
        assert storage.inputs["name"] == "acme-audit-trail"
        assert storage.inputs["objectLock"] == {
            "status": "enabled",
            "rule": {"mode": "compliance", "period": "P200D"},
        }
        assert storage.inputs["versioning"] == {"status": "enabled"}
        assert ("ovh:CloudProject/storage:Storage", "audit-bucket", True, True) in seen

    return pulumi.Output.all(sink.bucket_name, sink.endpoint, *[o.urn for o in sink.objects]).apply(check)


@pulumi.runtime.test
def test_minio_bucket_locked_versioned_with_compliance_job(mocks: Recorder) -> pulumi.Output[None]:
    seen, opts = _recorder()
    args = make_args(
        backend="minio", minio_admin_secret="minio-admin", endpoint="https://minio.site.example:9000"
    )
    sink = AuditSink("audit", args, provider=None, opts=opts)

    def check(_: object) -> None:
        bucket = mocks.named("audit-bucket")
        assert bucket.typ == "minio:index/s3Bucket:S3Bucket"
        assert bucket.inputs["bucket"] == "acme-audit-trail" and bucket.inputs["objectLocking"] is True
        versioning = mocks.named("audit-versioning")
        assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
        job = mocks.named("audit/acme-audit/acme-audit-retention")
        assert job.typ == "kubernetes:batch/v1:Job"
        assert (
            "retention set --default COMPLIANCE 200d audit/acme-audit-trail"
            in (job.inputs["spec"]["template"]["spec"]["containers"][0]["command"][-1])
        )
        flags = {(t, n): (p, r) for t, n, p, r in seen if t.startswith("minio:")}
        assert flags == {
            ("minio:index/s3Bucket:S3Bucket", "audit-bucket"): (True, True),
            ("minio:index/s3BucketVersioning:S3BucketVersioning", "audit-versioning"): (True, True),
        }

    assert sink.lock is sink.objects[0]
    return pulumi.Output.all(sink.bucket_name, *[o.urn for o in sink.objects]).apply(check)


@pulumi.runtime.test
def test_existing_bucket_creates_no_cloud_resource(mocks: Recorder) -> pulumi.Output[None]:
    sink = AuditSink("audit", make_args(backend="existing"), provider=None)
    assert sink.bucket is None and sink.lock is None

    def check(values: list[Any]) -> None:
        assert values[0] == "acme-audit-trail"
        assert _cloud(mocks) == []

    return pulumi.Output.all(sink.bucket_name, *[o.urn for o in sink.objects]).apply(check)


@pulumi.runtime.test
def test_retention_below_minimum_registers_nothing(mocks: Recorder) -> pulumi.Output[None]:
    # model_construct skips pydantic validation, as a caller building args by hand could: the shell
    # must still refuse before registering anything, itself included.
    args = AuditSinkArgs.model_construct(**{**make_args().model_dump(), "retention_days": 30})
    with pytest.raises(ValueError, match=r"retention_days: 30 is below min_retention_days 180"):
        AuditSink("audit", args, provider=None)
    # Registration is asynchronous: a sentinel registered afterwards resolves only once the engine has
    # seen everything before it, so the check below would see a stray registration.
    sentinel = pulumi.CustomResource("test:index:Sentinel", "sentinel", {})

    def check(_: object) -> None:
        assert [r.name for r in mocks.resources] == ["sentinel"]

    return sentinel.urn.apply(check)


# --- inference records ----------------------------------------------------------------------------------
RECORDS = {"gateway_namespaces": ["gateway", "partners-gateway"]}
PIN = "sha256:" + "ab" * 32
#: One line as the gateway's Envoy writes it (tests/components/access_log_sample.py).
ENVOY_ACCESS_LOG_LINE = json.dumps(
    envoy_entry(
        {
            "sovstack.model": "mistral-small-3.1",
            "sovstack.weights_sha256": PIN,
            "sovstack.prompt": {"sha256": "9f" * 32, "bytes": 412.0},
            "sovstack.output": {"sha256": "0c" * 32, "bytes": 1731.0},
        }
    )
)


def _condition_holds(record: dict[str, Any], condition: str) -> bool:
    """Fluent Bit filter_modify's `Key_value_does_not_match KEY REGEX`: the key exists (a null value
    counts) and its value is not a string matching REGEX (a null matches no regex)."""
    kind, key, pattern = condition.split(" ", 2)
    assert kind == "Key_value_does_not_match", condition
    if key not in record:
        return False
    value = record[key]
    return not (isinstance(value, str) and re.search(pattern, value))


def _run_records_pipeline(config: dict[str, Any], log: str) -> dict[str, Any] | None:
    """What the records pipeline's filters do to one container-log line, step by step, in plain Python."""
    (parser,) = config["parsers"]
    assert (parser["format"], parser["time_key"], parser["time_keep"]) == ("json", "start_time", "on")
    record: dict[str, Any] = {"log": log, "stream": "stdout"}
    for step in config["pipeline"]["filters"]:
        if step.get("match") != "records.*":
            continue
        if step["name"] == "parser":
            # reserve_data off: only the parsed keys; Fluent Bit passes an unparsable record on unchanged.
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(record[step["key_name"]])
        elif step["name"] == "grep":
            key, pattern = step["regex"].split(" ", 1)
            if not isinstance(record.get(key), str) or not re.search(pattern, record[key]):
                return None
        elif step["name"] == "modify":
            if not all(_condition_holds(record, condition) for condition in step.get("condition", [])):
                continue
            for rule in step.get("rename", []):
                old, new = rule.split(" ", 1)
                if old in record and new not in record:
                    record[new] = record.pop(old)
            for rule in step.get("add", []):
                key, value = rule.split(" ", 1)
                record.setdefault(key, value)
            for rule in step.get("set", []):
                key, value = rule.split(" ", 1)
                record[key] = value
            for key in step.get("remove", []):
                record.pop(key, None)
        else:
            raise AssertionError(f"unexpected records filter {step['name']}")
    return record


def test_records_pipeline_turns_an_access_log_line_into_a_valid_record() -> None:
    config = yaml.safe_load(build_fluent_bit_config(make_args(inference_records=RECORDS), "logs"))
    record = _run_records_pipeline(config, ENVOY_ACCESS_LOG_LINE)
    assert record is not None
    assert records.record_errors(record) == []
    reference = records.record_from_access_log(
        json.loads(ENVOY_ACCESS_LOG_LINE), customer="acme", region="scw-fr-par"
    )
    assert record == reference
    assert (record["subject"], record["model"], record["weights_digest"]) == (
        "u-4711",
        "mistral-small-3.1",
        PIN,
    )
    assert (record["input_tokens"], record["output_tokens"], record["capture"]) == (21, 318, "digest")
    assert record["prompt"] == {"sha256": "9f" * 32, "bytes": 412}


@pytest.mark.parametrize("capture", [None, "none"])
def test_records_the_content_filter_did_not_fill_say_none_and_carry_no_content(capture: str | None) -> None:
    config = yaml.safe_load(build_fluent_bit_config(make_args(inference_records=RECORDS), "logs"))
    line = json.loads(ENVOY_ACCESS_LOG_LINE)
    line.update({"sovstack.capture": capture, "sovstack.prompt": None, "sovstack.output": None})
    record = _run_records_pipeline(config, json.dumps(line))
    assert record is not None
    assert records.record_errors(record) == []
    assert record["capture"] == "none" and "prompt" not in record and "output" not in record
    assert record == records.record_from_access_log(line, customer="acme", region="scw-fr-par")


def test_full_capture_reads_lines_long_enough_for_two_full_bodies() -> None:
    def tail(capture: str) -> dict[str, Any]:
        args = make_args(inference_records={**RECORDS, "capture": capture})
        return yaml.safe_load(build_fluent_bit_config(args, "logs"))["pipeline"]["inputs"][-1]

    assert (tail("full")["buffer_max_size"], tail("digest")["buffer_max_size"]) == ("8M", "1M")
    assert 2 * records.FULL_TEXT_MAX_BYTES * 3 < 8 * 1024 * 1024  # even if escaping tripled each body


def test_records_pipeline_drops_envoys_own_diagnostics() -> None:
    config = yaml.safe_load(build_fluent_bit_config(make_args(inference_records=RECORDS), "logs"))
    line = "[2026-03-05 10:00:00.123][1][info][main] starting main dispatch loop"
    assert _run_records_pipeline(config, line) is None


def test_records_ship_to_the_records_prefix_with_the_audit_logs_guarantees() -> None:
    args = make_args(inference_records=RECORDS)
    config = yaml.safe_load(build_fluent_bit_config(args, "logs"))
    pipeline = config["pipeline"]
    assert pipeline["inputs"][-1] == {
        "name": "tail",
        "tag": "records.*",
        "path": "/var/log/containers/*_gateway_envoy-*.log,/var/log/containers/*_partners-gateway_envoy-*.log",
        "multiline.parser": "cri",
        "db": "/buffer/tail-records.db",
        "db.locking": "true",
        "read_from_head": "true",
        "mem_buf_limit": "50M",
        "buffer_max_size": "1M",
        "skip_long_lines": "on",
        "storage.type": "filesystem",
    }
    logs_output, records_output = pipeline["outputs"]
    # The audit logs no longer take the records (nor get their customer fields stamped on them).
    assert logs_output["match_regex"] == r"^(kube|audit)\."
    assert "match" not in logs_output
    record_modifier = next(f for f in pipeline["filters"] if f["name"] == "record_modifier")
    assert record_modifier["match_regex"] == r"^(kube|audit)\."
    same = ("bucket", "endpoint", "send_content_md5", "compression", "retry_limit", "upload_timeout")
    assert {k: records_output[k] for k in same} == {k: logs_output[k] for k in same}
    assert records_output["match"] == "records.*"
    assert records_output["s3_key_format"] == "/records/v1/%Y/%m/%d/%H/gateway-$UUID.jsonl.gz"
    assert records_output["store_dir"] == "/buffer/s3-records"
    assert records_output["json_date_key"] == "false"
    assert records_output["storage.total_limit_size"] == "10G"


def test_without_records_the_logs_pipeline_is_unchanged() -> None:
    config = yaml.safe_load(build_fluent_bit_config(make_args(), "logs"))
    assert "parsers" not in config
    assert [o["match"] for o in config["pipeline"]["outputs"]] == ["*"]


def test_records_namespaces_must_be_dns_labels() -> None:
    with pytest.raises(
        ValueError, match=r"inference_records.gateway_namespaces\[1\]: 'Bad_NS' is not a DNS-1123"
    ):
        make_args(inference_records={"gateway_namespaces": ["gateway", "Bad_NS"]})
