"""Pulumi entry point (`main: infra/` in Pulumi.yaml): one customer stack from `sovstack:customer`."""

from sovstack.infra.program import main

main()
