# The relay's build. `make help` lists the targets.
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 20s

.PHONY: help run test check fmt vet bench fuzz build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## run the relay on embedded defaults (:8443, dev CA in ./relay-state)
	$(GO) run ./cmd/relay

test: fmt vet ## every test, with the race detector
	$(GO) test -race -shuffle=on -count=1 -timeout 10m $(PKGS)

check: test ## gofmt, go vet and the tests (same as test)

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

build: ## build relay and device into ./bin
	$(GO) build -o bin/ ./cmd/...

clean: ## remove build output
	rm -rf bin bench.out
