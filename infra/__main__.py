"""Pulumi entry point (`main: infra/` in Pulumi.yaml): one customer stack from `sovstack:customer`."""

from infra.program import main

main()
