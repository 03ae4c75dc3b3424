# The relay's build. `make help` lists the targets.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 20s

.PHONY: help run cluster test stress jstest check fmt vet bench fuzz build clean loadtest

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## run the relay on embedded defaults (:8443, dev CA in ./relay-state)
	$(GO) run ./cmd/relay

# gotestsum runs go test and, at the end, lists every skipped test with its
# reason: a skip is never silent, with or without -v.
GOTEST   = $(GO) tool gotestsum --format pkgname-and-test-fails --format-icons text --format-hide-empty-pkg --

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

test: fmt vet browser jstest ## every test: Go (race detector, real Chromium) and the page's JS; lists skips
	$(GOTEST) -race -shuffle=on -count=1 -timeout 10m $(PKGS)

# The session layer's stress run (issue 8): every package whose tests drive
# real QUIC sessions, ten times over, under the race detector.
STRESS ?= ./transport ./session ./server ./device

stress: ## STRESS packages -race -count=10 (slow; not part of make test)
	$(GOTEST) -race -shuffle=on -count=10 -timeout 60m $(STRESS)

jstest: ## the device page's JavaScript unit tests (node --test, no npm packages)
	node --test --test-timeout=60000 web/static/

check: test ## gofmt, go vet and the tests (same as test)

# The browser test (web/browser_test.go) drives Debian's Chromium through
# chromedriver, at these paths; it fails, never skips, without them.
.PHONY: browser
browser: ## install Chromium and chromedriver for the browser test
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: /usr/bin/chromium or /usr/bin/chromedriver is missing and there is no apt-get:" >&2; \
	  echo "  install Chromium and a matching chromedriver at those paths by hand" >&2; exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else \
	  echo "browser: /usr/bin/chromium or /usr/bin/chromedriver is missing; as root, run:" >&2; \
	  echo "  apt-get update && apt-get install -y chromium chromium-driver" >&2; exit 1; \
	fi; \
	echo "browser: installing chromium and chromium-driver with apt-get"; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver

fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

bench: ## in-process benchmarks (router, hot path); compare runs with benchstat
	$(GO) test -run '^$$' -bench . -benchmem -count=6 ./router ./bench | tee bench.out

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# make loadtest SCENARIO=capacity DEVICES=10000 RATE=1000 DURATION=10s OUT=dir;
# scenarios: fanin hot storm churn slow capacity idle (bin/loadtest --help).
SCENARIO ?= fanin
DEVICES  ?= 2000
RATE     ?= 2000
DURATION ?= 30s
OUT      ?= ./loadtest-out

loadtest: ## load test a relay process: SCENARIO DEVICES RATE (webhooks/s) DURATION OUT
	$(GO) build -o bin/ ./cmd/relay ./cmd/loadtest
	bin/loadtest --relay-bin bin/relay --scenario $(SCENARIO) --devices $(DEVICES) \
	  --rate $(RATE) --duration $(DURATION) --out $(OUT)

build: ## build relay and device into ./bin
	$(GO) build -o bin/ ./cmd/...

clean: ## remove build output
	rm -rf bin bench.out
