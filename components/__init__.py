"""Reusable sovstack Pulumi components, their pure manifest builders, and the catalogs they check against."""
