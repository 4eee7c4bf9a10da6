# inmailq: `make demo` runs the main job on the embedded database, `make test` runs the tests.
# Both install what they need (libpq-dev, postgresql) on a fresh Debian machine.

SWIFT   ?= swift
BIN     := .build/debug/inmailq
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps test-deps build install test demo chaos bench bench-scale clean

## deps: install libpq's headers, the PostgreSQL server and curl (the demo's) when one is missing
deps:
	@if ! pkg-config --exists libpq 2>/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    || ! command -v curl >/dev/null; then \
		echo "installing libpq-dev, postgresql and curl"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libpq-dev postgresql pkg-config curl >/dev/null; \
	fi

## test-deps: what the tests check against besides: a real PgBouncer, systemd-analyze (the
## units in deploy/systemd), headless Chromium with chromedriver (the console in a real browser)
## and kubernetes-validate from PyPI (deploy/kubernetes, offline schemas)
test-deps: deps
	@if [ ! -x /usr/sbin/pgbouncer ] || ! command -v systemd-analyze >/dev/null \
	    || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing pgbouncer, systemd, chromium and chromium-driver"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq pgbouncer systemd chromium chromium-driver >/dev/null; \
	fi
	@command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate \
		|| python3 -m pip install -q --break-system-packages kubernetes-validate

## build: compile the inmailq executable (debug)
build: deps
	$(SWIFT) build --product inmailq

## install: put the inmailq executable (release build) in $(PREFIX)/bin (default /usr/local)
PREFIX ?= /usr/local
install: deps
	$(SWIFT) build -c release --product inmailq
	install -D -m 755 .build/release/inmailq $(DESTDIR)$(PREFIX)/bin/inmailq

## test: the whole test suite against a private PostgreSQL cluster it starts itself
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## demo: the main job on the embedded database (./.inmailq, or INMAILQ_HOME); it ends by printing
## the console's address and a login, and serves it until Ctrl-C
demo: build
	./scripts/demo.sh $(BIN)

## chaos: the chaos run (not part of `test`; about 3 minutes): workers killed, PostgreSQL crashed,
## a claim and the leader stopped, answers dropped, a worker's network cut; one line of figures
chaos: build
	@command -v jq >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq jq iproute2 >/dev/null; }
	./scripts/chaos.sh $(BIN)

## bench: the queue and send-path benchmarks on throwaway databases of the local cluster
bench: deps
	$(SWIFT) build -c release --product inmailq
	.build/release/inmailq bench queue --jobs 50000 --processes 2 --concurrency 200 --scheduled 1000000
	.build/release/inmailq bench pipeline --contacts 20000 --accounts 100 --processes 2 --concurrency 32
	.build/release/inmailq bench import --rows 100000

## bench-scale: an agency of 100,000 accounts and 10 million contacts built and measured (not part
## of `bench`: about an hour on 2 cores, 25 GB of disk)
bench-scale: deps
	$(SWIFT) build -c release --product inmailq
	.build/release/inmailq bench scale

clean:
	rm -rf .build
