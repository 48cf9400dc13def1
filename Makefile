# katrace. `make` builds bin/katrace with Go alone (the BPF objects are
# generated and committed); `make generate` needs clang-16 and libbpf-dev.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/katrace
ARGS     ?=

export CGO_ENABLED := 0

.PHONY: all build run test unit-test e2e-test lint generate check-generate build-arm64 bench perfguard vmtest clean image soak

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/katrace

# Build and start tracing (needs root: uses sudo when not root).
run: build
	@if [ "$$(id -u)" = 0 ]; then ./$(BIN) trace $(ARGS); else sudo ./$(BIN) trace $(ARGS); fi

# Every test: lint, unit tests, and the privileged end-to-end tests (which
# skip, saying why, without root and BTF). One to three failed e2e tests run
# once more and are named as flaky if they pass then (scripts/test.sh).
test: lint
	GO=$(GO) scripts/test.sh

unit-test:
	$(GO) test -count=1 -short ./...

lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

generate:
	$(GO) generate ./...

# CI: the committed BPF objects and Go bindings are what `make generate` makes.
check-generate: generate
	@git diff --exit-code --stat -- tracer sockets bench/primitives || { echo "generated files are stale: run make generate and commit"; exit 1; }

build-arm64:
	GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/katrace-arm64 ./cmd/katrace

clean:
	rm -rf bin

# The privileged tests again, in qemu guests on Debian's 6.1 kernels (see
# vmtest/README.md): on x86 with the strategies this machine's kernel cannot
# run, on arm64 (emulated) with kprobe and with tracepoint in a guest that has
# no kernel config file. A strategy NAME:no-kconfig boots without it. Every
# run goes ahead even after a failure; the summary lists them all.
VMTEST_X86   ?= fentry kprobe
VMTEST_ARM64 ?= kprobe tracepoint:no-kconfig
VMTEST_ARGS  ?= -test.timeout 15m
vmtest:
	$(GO) test -c -o bin/e2e.test ./e2e
	GOARCH=arm64 $(GO) test -c -o bin/e2e-arm64.test ./e2e
	@rm -f bin/vmtest-summary; failed=0; \
	vmtest/run.sh --arch x86 --test-binary bin/e2e.test --summary bin/vmtest-summary \
		$(addprefix --strategy ,$(VMTEST_X86)) -- $(VMTEST_ARGS) || failed=1; \
	vmtest/run.sh --arch arm64 --test-binary bin/e2e-arm64.test --summary bin/vmtest-summary \
		$(addprefix --strategy ,$(VMTEST_ARM64)) -- $(VMTEST_ARGS) || failed=1; \
	echo "vmtest: all runs"; cat bin/vmtest-summary; exit $$failed

# The performance benchmark of issue 6 (needs root; about 6 minutes): Go
# pipeline benchmarks, churn throughput kept in alternating pairs against
# bpftrace, per-program kernel cost, loss, memory, start-up, and the kernel
# primitives of this machine (bench/primitives). BENCHARGS
# passes flags to bench/cmd/katbench (e.g. BENCHARGS='-pairs 3').
BENCHARGS ?=
bench: build
	$(GO) build -o bin/churn ./bench/cmd/churn
	$(GO) build -o bin/idleconns ./bench/cmd/idleconns
	$(GO) run ./bench/cmd/katbench $(BENCHARGS)

# The CI guard of issue 11 (root, about 20 s): a fixed loopback churn with
# the default programs loaded, each program's bpf_stats ns per run net of
# an empty program at the same attach point (cheapest of 3 rounds of churn
# and delayed-ACK timers); fails
# when one costs more than twice its target (docs/PERFORMANCE.md).
perfguard: build
	$(GO) build -o bin/churn ./bench/cmd/churn
	$(GO) build -o bin/idleconns ./bench/cmd/idleconns
	$(GO) run ./bench/cmd/katbench -guard

# An OCI image from scratch holding the static bin/katrace, tagged
# katrace:VERSION and katrace:latest, with podman or else docker
# (docs/deploy.md shows how to run it).
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE            ?= katrace
image: build
	$(CONTAINER_ENGINE) build -f deploy/Containerfile --build-arg VERSION=$(VERSION) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest bin
	@$(CONTAINER_ENGINE) image inspect --format '$(IMAGE):$(VERSION) {{.Size}} bytes' $(IMAGE):$(VERSION)

# katrace under loopback connection churn for SOAK (1 hour by default;
# SOAK=10m for less; needs root): RSS, open fds, records and losses sampled
# over time, printed and written into docs/PERFORMANCE.md's "Soak" section.
SOAK ?= 1h
soak: build
	$(GO) run ./bench/cmd/soak -katrace $(BIN) -duration $(SOAK) -doc docs/PERFORMANCE.md
