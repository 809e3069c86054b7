"""Entry point the Pulumi CLI runs for `--policy-pack policies`: builds the pack and serves it.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks forever, so nothing may
import this module (tests use `policies.rules`).
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from sovstack.policies.rules import POLICIES

PolicyPack(
    name="sovstack-residency",
    description="Residency, image, exposure, GPU placement and audit-lock rules for sovstack stacks.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
