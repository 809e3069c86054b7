module sovstack.invalid/toolchain/e2e-sources

go 1.26.0

require (
	github.com/argoproj/argo-cd/v3 v3.5.7
	github.com/cilium/cilium v1.20.2
	github.com/envoyproxy/gateway v1.9.1
	github.com/external-secrets/external-secrets v0.16.2
	github.com/fluxcd/helm-controller v1.6.3
	github.com/fluxcd/kustomize-controller v1.9.6
	github.com/fluxcd/source-controller v1.9.6
	github.com/kedacore/charts v2.20.3-0.20260903105638-fe065f4d8938+incompatible
	github.com/kedacore/keda/v2 v2.21.0
	github.com/prometheus-community/helm-charts v0.0.0-20260828105119-ed5d7d9b5933
	github.com/prometheus-operator/prometheus-operator v0.85.0
	sigs.k8s.io/gateway-api v1.6.3
)
