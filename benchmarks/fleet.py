"""Synthetic customer fleets for the benchmarks: N stacks rendered from the `sovstack new` templates.

Customer i is `cust-<i:05d>`; it takes template i mod T (T templates, sorted) and, within that template,
the next place (provider and region) the template accepts, so a fleet mixes Scaleway, OVHcloud, Talos
and existing clusters. The places are the templates' own (stacks/templates/places.yaml), kept only
when a probe stack from that place passes every `sovstack validate` check: nothing here lists regions.

Generating is not timed by the benchmarks, but should stay quick. Each (template, place) is rendered
once for a placeholder name that is then replaced by the customer's. The full check (`check_stack_file`, what `sovstack validate`
runs, ~10 ms) runs on the written files of a sample (every place's first customer, then one in
`sample_every`) unless `validate="all"`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from sovstack.infra.newstack import (
    NewStackError,
    check_stack_file,
    list_templates,
    render_template,
    resolve_variables,
    template_places,
    templates_dir,
)

#: Stands for the customer's name in a cached render; the templates only ever concatenate the name.
SENTINEL = "sovstack-fleet-sentinel"

Validate = Literal["all", "sample", "none"]


@dataclass(frozen=True)
class Customer:
    """One synthetic stack: its name and what it was rendered from."""

    name: str
    template: str
    provider: str
    region: str

    @property
    def backend(self) -> str:
        return self.provider


def customer_name(index: int) -> str:
    return f"cust-{index:05d}"


def _render(customer: Customer) -> str:
    variables, _ = resolve_variables(customer.template, customer.provider, customer.region, ())
    command = f"python -m benchmarks.fleet ({customer.template}, {customer.provider} at {customer.region})"
    return render_template(customer.template, customer.name, variables, command)


@cache
def _rendered_with_sentinel(template: str, provider: str, region: str) -> str:
    """The template rendered once per place, for a placeholder name."""
    return _render(Customer(SENTINEL, template, provider, region))


def stack_text(customer: Customer) -> str:
    """The stack file `sovstack new` would write for this customer (minus its command comment)."""
    text = _rendered_with_sentinel(customer.template, customer.provider, customer.region)
    return text.replace(SENTINEL, customer.name)


def _check(path: Path) -> None:
    """Every check `sovstack validate` runs; NewStackError with its lines when one fails."""
    check_stack_file(path, path)


@cache
def valid_places(template: str) -> tuple[tuple[str, str], ...]:
    """The template's places whose rendered stack passes every check (probed once per process)."""
    accepted: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="sovstack-probe-") as folder:
        for provider, region in template_places(template):
            path = Path(folder) / f"Pulumi.probe-{provider}-{region.lower()}.yaml"
            path.write_text(_render(Customer("cust-probe", template, provider, region)), encoding="utf-8")
            try:
                _check(path)
            except NewStackError:
                continue
            accepted.append((provider, region))
    return tuple(accepted)


def plan_fleet(count: int) -> Iterator[Customer]:
    """The first `count` customers: templates round-robin, each cycling over its valid places."""
    templates = [t for t in list_templates() if valid_places(t)]
    if not templates:
        raise RuntimeError(f"no template in {templates_dir()} renders a valid stack")
    for index in range(count):
        template = templates[index % len(templates)]
        places = valid_places(template)
        provider, region = places[(index // len(templates)) % len(places)]
        yield Customer(customer_name(index), template, provider, region)


def generate_fleet(
    count: int, folder: Path, validate: Validate = "sample", sample_every: int = 25
) -> list[Customer]:
    """Write `folder/Pulumi.cust-NNNNN.yaml` for `count` customers; NewStackError if a checked one fails.

    `validate`: "all" checks every stack, "sample" every place's first customer and one in
    `sample_every`, "none" nothing (the places themselves are always probed once).
    """
    folder.mkdir(parents=True, exist_ok=True)
    customers = list(plan_fleet(count))
    seen: set[tuple[str, str, str]] = set()
    for index, customer in enumerate(customers):
        path = folder / f"Pulumi.{customer.name}.yaml"
        path.write_text(stack_text(customer), encoding="utf-8")
        kind = (customer.template, customer.provider, customer.region)
        if validate == "all" or (validate == "sample" and (kind not in seen or index % sample_every == 0)):
            _check(path)
        seen.add(kind)
    return customers


def _main() -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Write a synthetic fleet of stacks (for benchmarks).")
    parser.add_argument("count", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--validate", choices=("all", "sample", "none"), default="sample")
    args = parser.parse_args()
    start = time.perf_counter()
    customers = generate_fleet(args.count, args.folder, args.validate)
    backends = sorted({c.backend for c in customers})
    print(
        f"wrote {len(customers)} stacks to {args.folder} in {time.perf_counter() - start:.1f} s "
        f"(backends: {', '.join(backends)})"
    )


if __name__ == "__main__":
    _main()
