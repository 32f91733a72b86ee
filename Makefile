# Tabby — see README.md. Every target installs what it needs (scripts/install-deps.sh).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/tabbynet/tabby/internal/version.Version=$(VERSION) -X github.com/tabbynet/tabby/internal/version.Commit=$(COMMIT)
BINARIES  := $(notdir $(wildcard cmd/*))
# go test flags; CI passes nothing extra. -p 2 matches the 2-core machines.
TESTFLAGS ?= -count=1 -p 2 -timeout 20m

.PHONY: all deps build test unit vet fmt-check tidy-check generate bench demo clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

# The whole suite: unit, privileged (netns, real kernel; skipped without root
# unless TABBY_REQUIRE_PRIVILEGED=1, which CI sets, makes them fail instead),
# and the end-to-end lab tests under tests/.
test: deps build vet fmt-check tidy-check
	$(GO) test $(TESTFLAGS) ./...

# go.mod must list exactly what the code imports, every module pinned.
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }

# Only the packages that need neither root nor network namespaces to be meaningful.
unit:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Regenerates api/agentpb from agent.proto with generators pinned in tools/go.mod.
generate:
	@./scripts/install-deps.sh --gen
	cd tools && $(GO) build -o ../$(BIN)/tools/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH=$(CURDIR)/$(BIN)/tools:$$PATH protoc --go_out=. --go_opt=module=github.com/tabbynet/tabby \
		--go-grpc_out=. --go-grpc_opt=module=github.com/tabbynet/tabby api/agentpb/agent.proto

bench: deps build
	@./scripts/bench.sh

# A three-node cluster on this machine: network namespaces on a fabric, an FRR
# top-of-rack router, an embedded etcd, calico-node per node, pods through the
# CNI plugin; prints the connectivity matrix and each node's status, then
# tears everything down. DEMO_ARGS='-topology rr -rr 2' / '-topology tor -nodes 4' / '-hold'.
demo: deps build
	@./scripts/demo.sh $(DEMO_ARGS)

clean:
	rm -rf $(BIN)
