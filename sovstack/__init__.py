"""sovstack: infrastructure as code for hosting AI models under data-sovereignty rules.

The repository keeps Pulumi's project layout (`components/`, `infra/`, `policies/` at the top); this
package puts them under one name, `sovstack.components`, `sovstack.infra` and `sovstack.policies`,
through the links beside this file, so an installed sovstack adds `sovstack` and nothing else.
"""
