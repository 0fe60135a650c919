# sitefleet build, test and benchmark entry points.
GO       ?= go
BIN      ?= bin/sitefleet
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build test test-cluster test-containers images bench-image fuzz-short test-short vet fmt-check bench demo demo-stop clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sitefleet

# test runs every test: vet, formatting, and the whole suite with the race
# detector against a real embedded etcd and the real nginx binary.
test: vet fmt-check
	@scripts/need-nginx.sh
	$(GO) test -race -count=1 -timeout 15m ./...

# test-cluster runs only the multi-process fault suite: a three-member etcd,
# three node processes and loopback proxies that cut and restore links.
# `make test` runs it too.
test-cluster:
	@scripts/need-nginx.sh
	$(GO) test -count=1 -timeout 10m -v ./test/cluster/

# fuzz-short runs every fuzz target briefly (FUZZTIME each); CI runs it.
# A count (Nx), not a duration: Go 1.26's fuzzing coordinator can fail a
# duration-bounded run with a spurious "context deadline exceeded" when
# the machine is busy (golang/go#75804, fixed in Go 1.27).
# Targets whose name ends in Nginx run the real nginx once per input
# (~40 ms each) and get FUZZTIME_NGINX instead.
FUZZTIME ?= 3000x
FUZZTIME_NGINX ?= 300x
fuzz-short:
	@set -e; for pkg in $$(go list ./...); do \
	  dir=$$(go list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    n=$(FUZZTIME); case $$t in *Nginx) n=$(FUZZTIME_NGINX);; esac; \
	    echo "fuzz $$pkg $$t ($$n)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $$n $$pkg; \
	  done; \
	done

test-short:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# bench prints the figures the design asks for; see docs/benchmarks.md.
bench:
	@scripts/need-nginx.sh
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "make bench needs wrk: sudo apt-get install -y wrk" >&2; exit 1; }
	@command -v rsync >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq rsync >/dev/null; } || \
	  { echo "make bench needs rsync (the deploy baseline): sudo apt-get install -y rsync" >&2; exit 1; }
	$(GO) test -run '^$$' -bench . -benchtime 3x -count 1 -timeout 30m ./webserver/
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 1 -timeout 30m ./deploy/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./internal/daemon/
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 40m ./test/cluster/
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then $(MAKE) bench-image; \
	  else echo "note: no Docker engine here: bench-image (TLS handshakes inside the node image) did not run"; fi

# bench-image measures TLS handshakes through the generated config
# against bare nginx inside the node image itself (its nginx, its
# non-root user); see docs/benchmarks.md.
bench-image: images
	$(GO) test -c -o bin/webserver.test ./webserver
	docker run --rm --tmpfs /tmp:rw,size=2g,mode=1777 -v $(CURDIR)/bin/webserver.test:/webserver.test:ro -w /tmp \
	  --entrypoint /webserver.test sitefleet:test -test.run '^$$' -test.bench BenchmarkTLSHandshakes -test.benchtime 9x

# images builds the sitefleet image (and the images it starts from)
# without a registry; test-containers runs the webserver tests against the
# image's nginx (1.30), then the example Compose fleet from the image under
# bounded load while nodes and etcd members stop, die and return.
images:
	scripts/images.sh test

test-containers: images
	$(GO) test -c -o bin/webserver.test ./webserver
	docker run --rm --tmpfs /tmp:rw,size=2g -v $(CURDIR)/bin/webserver.test:/webserver.test:ro -w /tmp \
	  sitefleet/nginx-test:sid /webserver.test -test.timeout 10m
	$(GO) test -tags containers -count=1 -timeout 30m -v ./test/containers/

# demo builds sitefleet and starts one node in the background, serving a
# demo site; demo-stop stops it.
demo:
	@scripts/demo.sh

demo-stop:
	@scripts/demo.sh stop

clean:
	rm -rf bin
