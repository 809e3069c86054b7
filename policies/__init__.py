"""sovstack's CrossGuard policy pack: rules in `policies.rules`, the pack built in `policies/__main__.py` only."""
