# distq: one command to try it (make demo), one to test it (make test).
SHELL := /bin/bash
GO ?= go
BIN := bin
TOOLS := $(BIN)/tools
FUZZTIME ?= 3s
LONGFUZZ ?= 2m

.PHONY: all build demo test vet unit fuzz-short fuzz proto proto-check proto-python proto-python-check test-python tools images cluster test-cluster clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## demo: a master and two slaves on loopback square 1,000 numbers, then stop.
demo: build
	./scripts/demo.sh 1000

## test: everything CI runs (no Docker needed).
test: proto-check vet unit test-python fuzz-short

vet: tidy-check
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd bench/logbench && $(GO) vet ./...

## tidy-check: fail when a go.mod or go.sum (root, bench/, bench/logbench/, tools/) is not tidy.
.PHONY: tidy-check
tidy-check:
	@for m in . bench bench/logbench tools; do (cd $$m && $(GO) mod tidy -diff >/dev/null) || { echo "$$m/go.mod is not tidy; run 'go mod tidy' there:"; (cd $$m && $(GO) mod tidy -diff); exit 1; }; done; echo "go.mod: tidy (., bench, bench/logbench, tools)"

# The benchmark tools are their own modules (bench/go.mod, bench/logbench/go.mod):
# ./... stops at them.
unit: build
	$(GO) test -race -count=1 -timeout 25m ./...
	cd bench && $(GO) test -race -count=1 ./...
	cd bench/logbench && $(GO) test -race -count=1 -timeout 10m ./...

# Every fuzz target for a few seconds each; `make fuzz` runs them longer.
fuzz-short:
	@./scripts/fuzz.sh $(FUZZTIME)

fuzz:
	@./scripts/fuzz.sh $(LONGFUZZ)

## proto: regenerate the Go code of proto/ with the pinned tools (tools/go.mod),
## and the Python stubs of clients/python with Debian's protoc (scripts/python-proto.sh).
tools:
	cd tools && $(GO) build -o ../$(TOOLS)/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

proto: tools
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(TOOLS)/buf lint
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(TOOLS)/buf generate
	./scripts/python-proto.sh

## proto-check: fail when the committed generated code is stale.
proto-check: tools
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(TOOLS)/buf lint && \
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(TOOLS)/buf generate -o $$tmp && \
	if diff -r -q $$tmp/proto proto --exclude='*.proto' >/dev/null; then echo "proto: generated code is up to date"; \
	else echo "proto: generated code is stale; run 'make proto' and commit"; diff -r $$tmp/proto proto --exclude='*.proto' | head -40; exit 1; fi
	@$(MAKE) --no-print-directory proto-python-check

proto-python:
	./scripts/python-proto.sh

## proto-python-check: fail when the committed Python stubs are stale.
proto-python-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	./scripts/python-proto.sh $$tmp && \
	if diff -r -q $$tmp clients/python/distq/_proto --exclude=__pycache__ >/dev/null; then echo "proto: Python stubs are up to date"; \
	else echo "proto: Python stubs are stale; run 'make proto' and commit"; diff -r $$tmp clients/python/distq/_proto --exclude=__pycache__ | head -40; exit 1; fi

## test-python: the Python package's unit tests, and its tests against the
## real binaries of make build (Debian's python3, python3-grpcio, python3-protobuf).
## PYTHON: the first python3 on PATH that imports grpc and protobuf (a python3
## of one's own, first on PATH, often has neither).
PYTHON ?= $(shell for p in $$(which -a python3); do $$p -c 'import grpc, google.protobuf' 2>/dev/null && { echo $$p; break; }; done)
test-python: build
	@test -n "$(PYTHON)" || { echo "test-python: no python3 on PATH imports grpc and protobuf; install python3-grpcio and python3-protobuf"; exit 1; }
	cd clients/python && DISTQ_BIN="$(CURDIR)/$(BIN)" $(PYTHON) -m unittest discover -v -s tests -t .

## images: static binaries and the FROM scratch images distq-master, distq-slave, distq-producer.
images:
	./scripts/images.sh

## cluster: the docker-compose demo cluster (a master producing, 3 slaves),
## run to the end and torn down.
cluster: images
	./scripts/cluster.sh

## test-cluster: fault tests across containers (needs Docker; not part of `make test`).
test-cluster:
	./scripts/test-cluster.sh

clean:
	rm -rf $(BIN)

## bench: measure the real binaries (no -race) and the Go package against Python's
## recipe; table on stdout, bench/results/bench.json and bench.png. bench-quick: small sizes.
.PHONY: bench bench-quick bench-tool
BENCH_FLAGS ?=

bench-tool: build
	cd bench && $(GO) build -o ../$(BIN)/distq-bench ./cmd/distq-bench

bench: bench-tool
	./$(BIN)/distq-bench -bin $(BIN) -out bench/results $(BENCH_FLAGS)

bench-quick: bench-tool
	./$(BIN)/distq-bench -bin $(BIN) -out bench/results -quick $(BENCH_FLAGS)

## bench-log: the log engines of issue 9 on this machine's disk (docs/durable-engine.md):
## table on stdout, bench/results/logbench.json and logbench.txt; about 10 minutes.
## LOGBENCH_FLAGS='-quick' for a smoke run, '-dir DIR' to measure another disk.
.PHONY: bench-log
LOGBENCH_FLAGS ?=

bench-log:
	cd bench/logbench && $(GO) build -o ../../$(BIN)/distq-logbench ./cmd/distq-logbench
	./$(BIN)/distq-logbench -out bench/results $(LOGBENCH_FLAGS)
