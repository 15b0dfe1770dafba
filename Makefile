# mcpjobs: `make` (or `make help`) lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
IMAGE    ?= mcpjobs:dev
FUZZTIME ?= 1m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z0-9_/-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the binary into bin/mcpjobs
	$(GO) build -ldflags "-X main.buildVersion=$(VERSION)" -o bin/mcpjobs ./cmd/mcpjobs

.PHONY: dev
dev: ## Run everything locally: Redis, simulator, worker, MCP at http://127.0.0.1:8080/mcp
	$(GO) run ./cmd/mcpjobs dev

.PHONY: test
test: ## Run all tests with the race detector (needs redis-server on PATH for real Redis)
	$(GO) test -race -count=1 ./...

.PHONY: test/short
test/short: ## Run the tests in -short mode, without the race detector
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: ## Run every benchmark (mcpjobs bench all: about a minute) and print JSON; see docs/benchmarks.md
	$(GO) run ./cmd/mcpjobs bench all

.PHONY: ci
ci: ## Run what CI runs: gofmt, vet, race tests against redis-server, 50,000 executions per fuzz target
	bash .ci/run

.PHONY: lint
lint: ## gofmt -l, go vet, and staticcheck when it is installed
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null 2>&1; then echo staticcheck ./...; staticcheck ./...; \
	else echo "staticcheck not installed, skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 1m)
	@set -e; for file in $$(grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata '^func Fuzz' . | sort); do \
		dir=./$$(dirname "$${file#./}"); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$file"); do \
			echo "--- $$target in $$dir"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$dir"; \
		done; \
	done

.PHONY: chaos
chaos: ## Run the reliability scenarios: real processes, real Redis, several minutes (docs/reliability.md)
	MCPJOBS_CHAOS=1 $(GO) test -count=1 -v -run . -timeout 30m ./internal/chaos/

.PHONY: conformance
conformance: ## Run the MCP conformance suite's tasks scenarios against the fixtures, one replica and two behind a proxy (needs npm, redis-server; about 1 minute)
	bash internal/conformance/run.sh

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy

.PHONY: docker
docker: ## Build the container image (IMAGE, default mcpjobs:dev)
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: clean
clean: ## Remove bin/ (keeps .mcpjobs/, the Redis data of make dev)
	rm -rf bin
