"""infra/residency_check.py: the rules see every image a node or pod pulls, in every example."""

from __future__ import annotations

import pytest

from sovstack.infra.pipeline import load_stack
from sovstack.infra.report import build_report
from sovstack.infra.residency_check import evaluate, manifest_images
from sovstack.infra.stackfile import list_stacks, stack_name

EXAMPLES = [stack_name(p) for p in list_stacks()]


def test_manifest_images_walks_init_containers_jobs_and_cronjobs() -> None:
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "c"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n"},
            "spec": {
                "template": {"spec": {"initContainers": [{"image": "a"}], "containers": [{"image": "b"}]}}
            },
        },
        {
            "kind": "Job",
            "metadata": {"name": "j", "namespace": "n"},
            "spec": {"template": {"spec": {"containers": [{"image": "c"}]}}},
        },
        {
            "kind": "CronJob",
            "metadata": {"name": "k", "namespace": "n"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "d"}]}}}}},
        },
    ]
    assert manifest_images(objects) == [
        ("Deployment/n/d.initContainers[0].image", "a"),
        ("Deployment/n/d.containers[0].image", "b"),
        ("Job/n/j.containers[0].image", "c"),
        ("CronJob/n/k.containers[0].image", "d"),
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_image_the_manifests_pull_is_checked_and_listed(example: str) -> None:
    loaded = load_stack(example)
    composition = loaded.composed()
    pulled = {image for _, image in manifest_images(composition.kubernetes_objects())}
    assert pulled, "no image found: the walk is broken"
    findings = evaluate(loaded.spec)
    for rule in ("image.registry", "image.pinned"):
        checked = {f.observed for f in findings if f.rule == rule}
        assert pulled <= checked, f"{rule} never saw {sorted(pulled - checked)}"
    assert pulled <= set(build_report(loaded)["inventory"]["images"])
