# The relay's build. `make help` lists the targets.
GO       ?= go
PKGS     ?= ./...
# The load-test suite is a module of its own (loadtest/go.mod, like natscli
# beside nats-server), which the root's ./... does not reach: test and vet
# run LOADTEST_PKGS there too (empty: none).
LOADTEST_PKGS ?= ./...
FUZZTIME ?= 20s

.PHONY: help run cluster test stress jstest check fmt vet bench fuzz build static image clean loadtest

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## run the relay on embedded defaults (:8443, dev CA in ./relay-state)
	$(GO) run ./cmd/relay

# gotestsum runs go test and, at the end, lists every skipped test with its
# reason: a skip is never silent, with or without -v.
GOTESTSUM = $(GO) tool gotestsum --format pkgname-and-test-fails --format-icons text --format-hide-empty-pkg
GOTEST    = $(GOTESTSUM) --
# The root's gotestsum on the loadtest module: go test -C must come first,
# so gotestsum is given the whole command.
LOADTEST_GOTEST = $(GOTESTSUM) --raw-command -- $(GO) test -C loadtest -json

# make cluster: a NATS server (go tool nats-server, from go.mod) and three
# relay nodes on loopback sharing one development CA; Ctrl-C stops them all.
NATS_PORT ?= 4222

cluster: ## a NATS server and three relay nodes (:8443 :8444 :8445, admin :9443..:9445); Ctrl-C stops all
	$(GO) build -o bin/ ./cmd/relay
	@bash -c 'trap "trap - INT TERM EXIT; kill 0 2>/dev/null" INT TERM EXIT; \
	  $(GO) tool nats-server -a 127.0.0.1 -p $(NATS_PORT) & \
	  for i in 0 1 2; do \
	    bin/relay --listen :844$$((3+i)) --admin 127.0.0.1:944$$((3+i)) --nats nats://127.0.0.1:$(NATS_PORT) \
	      --nats-name node$$i --state-dir ./relay-state & \
	    [ $$i = 0 ] && for t in $$(seq 50); do [ -s relay-state/server-key.pem ] && break; sleep 0.1; done; \
	  done; \
	  echo; echo "cluster: NATS on 127.0.0.1:$(NATS_PORT); relays on :8443 :8444 :8445 (HTTPS + QUIC), admin on 127.0.0.1:9443..9445"; \
	  echo "cluster: go run ./cmd/device --relay localhost:8443,localhost:8444,localhost:8445 --ca relay-state/ca.pem"; \
	  echo "cluster: a webhook to any node reaches a device on any node; Ctrl-C stops everything"; \
	  wait'

test: fmt vet checkdeps jstest ## every test: Go (race detector, real Chromium) and the page's JS; lists skips
	$(GOTEST) -race -shuffle=on -count=1 -timeout 10m $(PKGS)
	$(if $(LOADTEST_PKGS),$(LOADTEST_GOTEST) -race -shuffle=on -count=1 -timeout 10m $(LOADTEST_PKGS))

# The session layer's stress run (issue 8): every package whose tests drive
# real QUIC sessions, ten times over, under the race detector.
STRESS ?= ./transport ./session ./server ./device ./mqtt

stress: ## STRESS packages -race -count=10 (slow; not part of make test)
	$(GOTEST) -race -shuffle=on -count=10 -timeout 60m $(STRESS)

jstest: ## the device page's JavaScript unit tests (node --test, no npm packages)
	node --test --test-timeout=60000 web/static/

check: test ## gofmt, go vet and the tests (same as test)

# What the tests run besides Go, from Debian: Chromium and chromedriver for
# the browser test (web/browser_test.go, which fails, never skips, without
# them), node for the page's JavaScript tests (jstest), podman to build the
# image and systemd-analyze to check the units (deploy/, which skip loudly
# without them), the mosquitto broker that the MQTT tests check the
# simulated clocks and the relay against (internal/mosquittotest, which
# fails without it), and its clients mosquitto_sub and mosquitto_pub, for
# watching a broker from outside. make test installs nothing: checkdeps
# names what is missing, and make testdeps (which .ci/run calls) installs it.
TESTDEPS = /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver \
           podman:podman systemd-analyze:systemd node:nodejs \
           /usr/sbin/mosquitto:mosquitto mosquitto_sub:mosquitto-clients

.PHONY: testdeps checkdeps
checkdeps: ## fail, naming them, if the tools the tests need are missing (make testdeps installs them)
	@missing=; for d in $(TESTDEPS); do command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make test needs the Debian packages$$missing: run 'make testdeps' (apt-get, as root or with sudo) first" >&2; exit 1; \
	fi

testdeps: ## install what the tests need from Debian (Chromium, chromedriver, node, podman, systemd-analyze, mosquitto)
	@missing=; for d in $(TESTDEPS); do command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "testdeps: missing$$missing and there is no apt-get: install them by hand" >&2; exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "testdeps: missing$$missing; as root, run:" >&2; \
	  echo "  apt-get update && apt-get install -y$$missing" >&2; exit 1; \
	fi; \
	echo "testdeps: installing$$missing with apt-get"; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing

fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet, the root's and the loadtest module's
	$(GO) vet $(PKGS)
	$(if $(LOADTEST_PKGS),$(GO) vet -C loadtest $(LOADTEST_PKGS))

bench: ## in-process benchmarks (router, hot path); compare runs with benchstat
	$(GO) test -run '^$$' -bench . -benchmem -count=6 ./router ./bench | tee bench.out

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# make loadtest SCENARIO=capacity DEVICES=10000 RATE=1000 DURATION=10s OUT=dir;
# scenarios: fanin hot storm churn slow capacity idle cluster soak fleet mqttstorm
# (the registry in loadtest/scenario.go; bin/loadtest --help). Other flags from the environment: LOADTEST_FLOORS=1
# (relay vs bare floor servers), LOADTEST_PIN=1 (servers and generator on
# CPUs of their own). make passes DEVICES, RATE and DURATION, which the fleet
# scenario defaults itself (20,000 devices, one webhook each per 10 min, 5 min):
# run bin/loadtest --scenario fleet for those.
SCENARIO ?= fanin
DEVICES  ?= 2000
RATE     ?= 2000
DURATION ?= 30s
OUT      ?= ./loadtest-out

loadtest: ## load test a relay process: SCENARIO DEVICES RATE (webhooks/s) DURATION OUT
	$(GO) build -o bin/ ./cmd/relay
	$(GO) build -C loadtest -o $(CURDIR)/bin/ ./cmd/loadtest
	bin/loadtest --relay-bin bin/relay --scenario $(SCENARIO) --devices $(DEVICES) \
	  --rate $(RATE) --duration $(DURATION) --out $(OUT)

build: ## build relay and device into ./bin
	$(GO) build -buildvcs=auto -o bin/ ./cmd/...

# Static binaries for the image and for copying to a server: no libc, no
# loader (CGO off), paths trimmed; nats-server from go.mod for compose.yaml.
STATIC ?= bin/static

static: ## static relay, device and nats-server (CGO off) into STATIC (./bin/static)
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags=-s -o $(STATIC)/ ./cmd/relay ./cmd/device
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $(STATIC)/ github.com/nats-io/nats-server/v2
	mkdir -p $(STATIC)/state

# The image is FROM scratch: nothing is pulled. podman if it is installed,
# else docker if its daemon answers.
IMAGE ?= pixelrelay/relay

image: ## the FROM scratch container image IMAGE (Containerfile) with podman or docker
	$(MAKE) static STATIC=bin/static
	@if command -v podman >/dev/null 2>&1; then engine=podman; \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; \
	else echo "image: neither podman nor a running docker was found; install one (apt-get install podman)," >&2; \
	  echo "  or copy bin/static/relay and bin/static/device to the server as they are" >&2; exit 1; fi; \
	echo "image: building $(IMAGE) with $$engine"; \
	$$engine build -f Containerfile -t $(IMAGE) --label org.opencontainers.image.version=$$(bin/static/relay --version | awk '{print $$2}') .

clean: ## remove build output
	rm -rf bin bench.out
