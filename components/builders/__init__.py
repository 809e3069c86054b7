"""Pure builders: component args in, manifest and resource descriptions out. No Pulumi import here."""
