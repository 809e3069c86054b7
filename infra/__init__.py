"""The sovstack application: customer spec, composition, the Pulumi program and the CLI."""
