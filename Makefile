# The few commands people run. `make help` lists them.
GO      ?= go
CONFIG  ?= config.example.yaml
FUZZTIME ?= 60s
SOAK    ?= 10m
BENCHTIME ?= 1s
SCALE_USERS ?= 10000 100000

.PHONY: help run test race vet bench bench-watch bench-webhook bench-e2e bench-scale fuzz soak sdk-test build docker deploy-test

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

run: ## Run the bridge on its embedded default (NATS and Graph emulator in-process).
	$(GO) run ./cmd/presence-bridge --config $(CONFIG)

test: ## Run the tests (the README's command).
	$(GO) test ./...

race: ## Run vet and the tests with the race detector, as CI does.
	bash .ci/run

vet: ## Run go vet.
	$(GO) vet ./...

bench: ## Run every benchmark but bench-watch's and bench-webhook's long ones for BENCHTIME (default 1s); BENCHMARKS.md says what each measures.
	$(GO) test -run='^$$' -bench=. -skip='^Benchmark(WatchChangeToNATS|WatchMemory|LookupPaced|WatchChangeToWebhook|QueuedMemory)$$' -benchmem -benchtime=$(BENCHTIME) ./...

bench-watch: ## Run the Teams watch and lookup benchmarks (issue 21) once each, a few minutes; BENCHMARKS.md has the figures.
	$(GO) test -run='^$$' -bench='^Benchmark(WatchChangeToNATS|WatchMemory|LookupPaced|LookupPacedApart)$$' -benchtime=1x -timeout 45m ./bridge/
	$(GO) test -run='^$$' -bench='^BenchmarkLongPollMemory$$' -benchtime=1x ./bridge/lookup/

bench-webhook: ## Run the webhook output benchmarks (issue 22): throughput at 20 ms, 100,000 queued, Teams change to receiver; about 2 minutes.
	$(GO) test -run='^$$' -bench='^BenchmarkQueuedMemory$$' -benchtime=1x ./outputs/webhook/
	$(GO) test -run='^$$' -bench='^BenchmarkThroughput$$' -benchtime=10000x ./outputs/webhook/
	$(GO) test -run='^$$' -bench='^BenchmarkWatchChangeToWebhook$$' -benchtime=1x -timeout 30m ./bridge/

bench-e2e: ## Compare the bridge with a bare Gin+JetStream handler from outside (issue 10's acceptance).
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(GO) build -o "$$dir/presence-bridge" ./cmd/presence-bridge && \
	$(GO) build -o "$$dir/presence-load" ./cmd/presence-load && \
	"$$dir/presence-load" e2e --bridge "$$dir/presence-bridge" --config cmd/presence-load/bridge.yaml \
	  --revision "$$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo +changes)"

bench-scale: ## Issue 23's scale run: SCALE_USERS people (default 10000 and 100000) through the bridge, the emulator a process of its own; minutes each.
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(GO) build -o "$$dir/presence-bridge" ./cmd/presence-bridge && \
	$(GO) build -o "$$dir/presence-load" ./cmd/presence-load && \
	for n in $(SCALE_USERS); do \
	  "$$dir/presence-load" scale --bridge "$$dir/presence-bridge" --config cmd/presence-load/bridge.yaml --users $$n \
	    --revision "$$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo +changes)" || exit 1; \
	done

fuzz: ## Run every fuzz target for FUZZTIME each.
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

soak: ## Run the soak and chaos test for SOAK (default 10m) against two restarting bridges.
	$(GO) test -tags soak -run Soak -count=1 -v -timeout 60m ./bridge/ -soak.duration=$(SOAK)

sdk-test: ## Drive the Graph emulator with the official Microsoft Graph SDK for Go (slow to compile).
	$(GO) test -tags msgraphsdk -run TestOfficialSDK -count=1 ./graphclient/emulator/

# The version and revision `presence-bridge --version` prints; without
# them the binary reads Go's embedded build information.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)

build: ## Build a static binary stamped with VERSION and REVISION (from git).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)' -o presence-bridge ./cmd/presence-bridge

docker: ## Build the container image, labelled with the version.
	docker build --build-arg VERSION="$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
	  --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  --build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" -t presence-bridge .

deploy-test: ## Run deploy/'s tests: the compose topology on loopback, the image, the unit, dashboards and alerts.
	$(GO) test -count=1 -v ./deploy/
