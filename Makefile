# ironlb — bare-metal load balancer for Kubernetes.
# `make help` lists the targets.

K8S_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.7.3

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
BENCHSTAT := $(BIN)/benchstat
KUBEBUILDER_ASSETS := $(BIN)/k8s/$(K8S_VERSION)
KUBECTL := $(KUBEBUILDER_ASSETS)/kubectl
GO_TEST_FLAGS ?=

export KUBEBUILDER_ASSETS

# The end-to-end tests need root (network namespaces). As root, `make test`
# and `make test-e2e` turn a missing lab prerequisite into a failure; as
# another user they skip and say why.
E2E_REQUIRED := $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash -o pipefail

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
		/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: demo
demo: build controlplane ## Run ironlb on its built-in lab (root); KEEP=1 leaves the lab up, NODES=n sets its size.
	@hack/demo.sh

.PHONY: demo-down
demo-down: ## Tear down a lab left up by `make demo KEEP=1`, and anything a crashed lab left behind.
	go build -o $(BIN)/lab ./e2etest/cmd/lab
	$(BIN)/lab down

##@ Development

.PHONY: generate
generate: tools controlplane ## Generate deepcopy code, CRDs, RBAC and manifests/install.yaml.
	CONTROLLER_GEN=$(CONTROLLER_GEN) KUBECTL=$(KUBECTL) hack/generate.sh

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet and check formatting.
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [[ -n $$unformatted ]]; then echo "not gofmt-ed (run make fmt):"; echo "$$unformatted"; exit 1; fi

.PHONY: build
build: ## Build bin/controller and bin/speaker.
	go build -o $(BIN)/controller ./controller
	go build -o $(BIN)/speaker ./speaker

##@ Testing

.PHONY: test
test: vet tools controlplane build ## Run every test: unit, integration (real API server) and end to end (root), race detector on.
	IRONLB_REQUIRE_ENVTEST=1 IRONLB_REQUIRE_E2E=$(E2E_REQUIRED) CONTROLLER_GEN=$(CONTROLLER_GEN) go test -race -count=1 -timeout 30m $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Run the unit tests only (no API server, no root).
	go test -race -short $(GO_TEST_FLAGS) ./...

.PHONY: test-integration
test-integration: tools controlplane ## Run the tests against a real kube-apiserver and etcd.
	IRONLB_REQUIRE_ENVTEST=1 CONTROLLER_GEN=$(CONTROLLER_GEN) go test -race -count=1 $(GO_TEST_FLAGS) ./api/... ./manifests/... ./controller/... ./speaker/...

.PHONY: test-e2e
test-e2e: controlplane build ## Run the end-to-end tests: the lab in network namespaces (needs root).
	IRONLB_REQUIRE_ENVTEST=1 IRONLB_REQUIRE_E2E=$(E2E_REQUIRED) go test -race -count=1 -timeout 30m $(GO_TEST_FLAGS) ./e2etest/...

.PHONY: bench
bench: bench-micro bench-scale bench-e2e ## Run every benchmark and print medians.

.PHONY: bench-micro
bench-micro: tools ## Run the in-process benchmarks (allocator, ARP and NDP answers as root, ...) five times; print medians.
	go test -run '^$$' -skip 'AtScale|BGP|L2Failover|L2GracefulStop|L2FirstGARP|L2TenThousand' -bench . -benchmem -count 5 $(GO_TEST_FLAGS) ./... | tee bench-micro.out
	$(BENCHSTAT) bench-micro.out

.PHONY: bench-e2e
bench-e2e: tools controlplane build ## Run the lab benchmarks (layer-2 failover, graceful stop and first gratuitous ARP, 10,000 layer-2 Services, BGP route latency, 10,000 routes; root) three times; print medians.
	IRONLB_REQUIRE_E2E=$(E2E_REQUIRED) go test -run '^$$' -bench 'BGP|L2Failover|L2GracefulStop|L2FirstGARP|L2TenThousand' -benchtime 1x -count 3 -timeout 240m $(GO_TEST_FLAGS) ./e2etest/ | tee bench-e2e.out
	$(BENCHSTAT) bench-e2e.out

.PHONY: bench-scale
bench-scale: tools controlplane build ## Run the real-API-server benchmarks (10,000 Services) three times; print medians.
	IRONLB_REQUIRE_ENVTEST=1 go test -run '^$$' -bench 'AtScale' -benchtime 1x -count 3 -timeout 90m $(GO_TEST_FLAGS) ./... | tee bench-scale.out
	$(BENCHSTAT) bench-scale.out

##@ Dependencies

.PHONY: tools
tools: $(CONTROLLER_GEN) $(BENCHSTAT) ## Build the pinned code generators and benchstat into bin/.

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

$(BENCHSTAT): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(BENCHSTAT) golang.org/x/perf/cmd/benchstat

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl into bin/k8s/$(K8S_VERSION) (cached by version).
	@K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/controlplane/build.sh
