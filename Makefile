# The two commands of the README: `make up` and `make test`, both as root.

# sudo often drops /usr/local/go/bin from PATH; find go anyway. A machine
# without a Go that builds this module gets one in /usr/local/go (SPEC §7).
GO ?= $(shell scripts/install-go.sh --print)
# The gofmt of that go's toolchain, for the same reason.
GOFMT ?= $(shell $(GO) env GOROOT 2>/dev/null)/bin/gofmt
BIN := bin/emulator
# Every package but the integration tests in test/, with the race detector.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test$$')

.PHONY: all go build up down test deps check unit bench-smoke fuzz-smoke fuzz integration integration-race race-smoke clean bench graph soak

all: build

build: go
	$(GO) build -o $(BIN) ./cmd/emulator

# A Go that builds the module: scripts/install-go.sh installs one if need be.
go:
	GO=$(GO) scripts/install-go.sh

# Build, then bring up the default lab in the foreground (Ctrl-C tears it down).
up: build
	./$(BIN) up

down: build
	./$(BIN) down

# Install missing tools, check formatting and vet, then run every test.
test: deps build check unit bench-smoke fuzz-smoke integration race-smoke

deps:
	scripts/install-deps.sh

# A gofmt that cannot run fails the check: an empty list from it would
# pass every file unseen.
check:
	@out=$$($(GOFMT) -l $$(find . -name '*.go' -not -path './bin/*')) || \
		{ echo "make check: $(GOFMT) failed (set GOFMT=/path/to/gofmt)"; exit 1; }; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

# Each micro-benchmark briefly, so none can rot; `make bench` measures.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime=100x $(UNIT_PKGS)

# Fuzz targets as package:target; go test -fuzz takes one target of one
# package per run. RELIABILITY.md says what each checks.
FUZZ_TARGETS = ./dataplane/header:FuzzParseIPv4 ./dataplane:FuzzForward ./nat:FuzzTranslate \
	./nat:FuzzTranslateICMPError ./dataplane/nsg:FuzzCheck ./topology:FuzzParse \
	./cmd/emulator/internal/services/frontend:FuzzFTPSession ./cmd/emulator/internal/services/dns:FuzzAnswer
FUZZTIME ?= 5m

# Each fuzz target for 10 s, so none can rot; `make fuzz` hunts.
fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s

# Each fuzz target for FUZZTIME (5m by default). A failing input is written
# to the package's testdata/fuzz/TARGET/ and fails the run; commit it as a
# regression seed once fixed.
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

# The side-by-side benchmark of issue 6 (root, under 15 minutes): direct veth,
# kernel router with nftables SNAT, and the emulator; writes BENCHMARKS.md.
bench: build
	GO=$(GO) scripts/bench/bench.sh

# Real labs, real namespaces, real curl/nc/ping: needs root.
integration: build
	EMULATOR=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 20m ./test/...

# The integration tests against an emulator built with the race detector
# (root). Its reports go to bin/race/, and any report fails the target. The
# whole suite took 708 s this way against 278 s without -race, so `make
# test` runs only RACE_SMOKE's tests (race-smoke): those that drive the
# dataplane's goroutines against each other (queues, apply while flows run,
# capture, pool exhaustion), about 70 s with -race.
RACE_RUN ?= .*
RACE_SMOKE = TestOutboundThroughManyQueues|TestUDPThroughSNATInOrder|TestNSGApplyKeepsOpenSession|TestApplyScalesASE|TestSNATPoolExhaustion|TestCapture|TestObserveNSG|TestQueueFullDropsShown|TestMoveApp
# The binary is named emulator, as the tests expect to read in the commands
# its messages give ("emulator down --name ..."). The whole suite took 31
# minutes under the race detector on a 2-CPU VM (2026-12-07); the timeout
# leaves room for a slower machine.
integration-race:
	rm -rf bin/race && mkdir -p bin/race
	$(GO) build -race -o bin/race/emulator ./cmd/emulator
	GORACE=log_path=$(CURDIR)/bin/race/report EMULATOR=$(CURDIR)/bin/race/emulator \
		$(GO) test -count=1 -p 1 -timeout 60m -run '^($(RACE_RUN))$$' ./test/...
	@if ls bin/race/report.* >/dev/null 2>&1; then cat bin/race/report.*; exit 1; fi

race-smoke:
	$(MAKE) --no-print-directory integration-race RACE_RUN='$(RACE_SMOKE)'

# The README's drawing of the default lab (needs graphviz: make deps).
graph: build
	./$(BIN) graph --format dot | dot -Tsvg > scripts/graph/default-lab.svg

# The long soak of issue 10 (root): ten minutes of mixed load with NSG
# changes, then its table of RSS, goroutines, flows and drops. SOAK=30m
# runs longer; `make test` runs a one-minute soak.
SOAK ?= 10m
soak: build
	EMULATOR=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 2h ./test/ -soak $(SOAK)

clean:
	rm -rf bin
