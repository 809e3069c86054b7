"""Pulumi shell of the audit sink: the object-locked bucket (per backend) and the Fluent Bit shippers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes

from sovstack.components.builders.audit_sink import (
    AuditSinkArgs,
    build_audit_bucket,
    build_audit_sink,
    validate_audit_sink_args,
)
from sovstack.components.kubernetes_objects import register_objects


class AuditSink(pulumi.ComponentResource):
    """A write-once audit bucket (object lock COMPLIANCE, versioning) and the shippers that fill it.

    Attributes: `bucket` (the bucket resource, None for `existing`), `lock` (what sets the default
    retention: Scaleway's BucketLockConfiguration, MinIO's retention Job; None for OVH, whose Storage
    carries its own rule, and for `existing`), `versioning` (MinIO's S3BucketVersioning, else None),
    `objects` (Kubernetes resources, the MinIO Job included). Outputs: `bucket_name`, `endpoint`.
    """

    bucket: pulumi.CustomResource | None
    lock: pulumi.CustomResource | None
    versioning: pulumi.CustomResource | None
    objects: list[pulumi.CustomResource]

    def __init__(
        self,
        name: str,
        args: AuditSinkArgs,
        *,
        provider: pulumi_kubernetes.Provider | None,
        cloud_provider: pulumi.ProviderResource | None = None,
        minio_credentials: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None,
        needs: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`cloud_provider`: the cluster's Scaleway or OVHcloud provider (scaleway and ovh backends).
        For `minio`, the component makes its own provider for the site's MinIO at `args.endpoint`, with
        `minio_credentials` (user, password; secret config) or, if None, MINIO_USER/MINIO_PASSWORD.
        `needs`: what the shippers wait for besides the bucket (the ExternalSecrets of their credentials)."""
        # Before anything is registered, the component itself included (args may come from model_construct).
        validate_audit_sink_args(args)
        super().__init__("sovstack:audit:AuditSink", name, None, opts)
        spec = build_audit_bucket(args)
        manifests = build_audit_sink(args)
        if args.backend == "minio":
            cloud_provider = self._minio_provider(name, args, minio_credentials)
        # An audit bucket outlives the stack: `pulumi destroy` must neither fail on nor delete it.
        keep = pulumi.ResourceOptions(
            parent=self, provider=cloud_provider, protect=True, retain_on_delete=True
        )
        self.bucket, self.lock, self.versioning = None, None, None
        if args.backend == "scaleway":
            self.bucket, self.lock = self._scaleway(name, args, keep)
        elif args.backend == "ovh":
            self.bucket = self._ovh(name, args, keep)
        elif args.backend == "minio":
            self.bucket, self.versioning = self._minio(name, args, keep)
        ready: list[pulumi.Resource] = [r for r in (self.bucket, self.lock, self.versioning) if r is not None]
        ready += list(needs or [])

        self.objects = []
        if args.backend == "minio":
            # The retention Job runs first; shippers only start once the default retention is set.
            job, manifests = manifests[:1], manifests[1:]
            self.objects += register_objects(
                job, owner=name, parent=self, provider=provider, depends_on=ready
            )
            self.lock = self.objects[0]
            ready = [self.lock]
        self.objects += register_objects(
            manifests, owner=name, parent=self, provider=provider, depends_on=ready
        )

        # Resolved from the bucket resource where there is one, so consumers wait for the bucket.
        name_output = getattr(self.bucket, "bucket" if args.backend == "minio" else "name", None)
        self.bucket_name: pulumi.Output[str] = pulumi.Output.from_input(name_output or str(spec["name"]))
        self.endpoint = pulumi.Output.from_input(args.endpoint)
        self.register_outputs({"bucket_name": self.bucket_name, "endpoint": self.endpoint})

    @staticmethod
    def _scaleway(
        name: str, args: AuditSinkArgs, keep: pulumi.ResourceOptions
    ) -> tuple[pulumi.CustomResource, pulumi.CustomResource]:
        from pulumiverse_scaleway import object as scw_object

        bucket = scw_object.Bucket(
            f"{name}-bucket",
            name=args.bucket,
            region=args.s3_region,
            project_id=args.project_id,
            object_lock_enabled=True,
            versioning={"enabled": True},
            opts=keep,
        )
        lock = scw_object.BucketLockConfiguration(
            f"{name}-lock",
            bucket=bucket.name,
            region=args.s3_region,
            project_id=args.project_id,
            rule={"default_retention": {"mode": "COMPLIANCE", "days": args.retention_days}},
            opts=keep,
        )
        return bucket, lock

    @staticmethod
    def _ovh(name: str, args: AuditSinkArgs, keep: pulumi.ResourceOptions) -> pulumi.CustomResource:
        import pulumi_ovh

        # Values from the OVH API schema: cloud.storage.ObjectLockStatusEnum (disabled|enabled),
        # ObjectLockModeEnum (compliance|governance), VersioningStatusEnum (disabled|enabled|suspended).
        object_lock: Any = {
            "status": "enabled",
            "rule": {"mode": "compliance", "period": f"P{args.retention_days}D"},
        }
        return pulumi_ovh.cloudproject.Storage(
            f"{name}-bucket",
            service_name=args.service_name,
            region_name=str(args.region_name),
            name=args.bucket,
            object_lock=object_lock,
            versioning={"status": "enabled"},
            opts=keep,
        )

    def _minio_provider(
        self, name: str, args: AuditSinkArgs, credentials: tuple[pulumi.Input[str], pulumi.Input[str]] | None
    ) -> pulumi.ProviderResource:
        import pulumi_minio

        endpoint = urlparse(args.endpoint)
        user, password = credentials if credentials is not None else (None, None)
        return pulumi_minio.Provider(
            f"{name}-minio",
            minio_server=endpoint.netloc,
            minio_ssl=endpoint.scheme == "https",
            minio_region=args.s3_region,
            minio_user=user,
            minio_password=password,
            opts=pulumi.ResourceOptions(parent=self),
        )

    @staticmethod
    def _minio(
        name: str, args: AuditSinkArgs, keep: pulumi.ResourceOptions
    ) -> tuple[pulumi.CustomResource, pulumi.CustomResource]:
        import pulumi_minio

        # pulumi-minio 0.17 has object locking and versioning but no default-retention resource: the
        # COMPLIANCE default is set by the retention Job (build_minio_retention_job).
        bucket = pulumi_minio.S3Bucket(f"{name}-bucket", bucket=args.bucket, object_locking=True, opts=keep)
        versioning = pulumi_minio.S3BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.bucket,
            versioning_configuration={"status": "Enabled"},
            opts=keep,
        )
        return bucket, versioning
