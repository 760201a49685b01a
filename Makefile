# The two commands: `make up` (install, build, start the daemon) and `make test` (install, build,
# run every test layer, one closing summary line). Both are idempotent and need root.
#
#   make up      Debian run-time packages, npm ci, build, /usr/local/bin/tsnet, start the daemon
#   make down    stop the daemon (networks and containers keep working)
#   make install tsnet as a host service: an installed copy and tsnet.service (scripts/install.sh)
#   make uninstall  remove it all, refusing while networks exist unless FORCE=1 (scripts/uninstall.sh)
#   make plugin  tsnet as a managed Docker plugin, built offline from this machine (scripts/plugin.sh)
#   make test    test packages too, build, then unit -> netns -> docker; ends with
#                "tests: N passed, N failed, N skipped"
#   make unit    the fast layer only
#   make build   compile to dist/ when sources changed
#   make clean   remove dist/
SHELL := /bin/bash
.DEFAULT_GOAL := up
.PHONY: up down test unit build deps test-deps node-deps link clean bench install uninstall plugin

# What tsc compiles (tsconfig.json "include"); the tests are not built.
SOURCES := $(shell find core cli daemon drivers firewall ipam lab native plugin-api runtime store cni bench docker-tests netns-tests test-support \
             -name '*.ts' ! -name '*.test.ts' 2>/dev/null)

# where systemd runs and tsnet.service is installed, up refreshes the installed copy and the unit
# runs the daemon; elsewhere up starts a detached daemon from this clone
up: deps build link
	@if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/tsnet.service ]; then scripts/install.sh; else scripts/daemon.sh start; fi

down:
	@scripts/daemon.sh stop

install: deps build
	@scripts/install.sh

uninstall:
	@scripts/uninstall.sh

# dockerd starts a managed plugin itself, before it restores containers; PLUGIN=NAME for another name
plugin: deps build
	@scripts/plugin.sh

deps:
	@scripts/install-deps.sh

# the run-time packages and the test-only ones
test-deps:
	@scripts/install-test-deps.sh

# npm ci only when node_modules is missing or package-lock.json is newer than it
node_modules/.package-lock.json: package-lock.json
	@echo "npm ci (package-lock.json changed or node_modules is missing)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-deps: node_modules/.package-lock.json

# dist/.built marks a complete build; scripts/daemon.sh restarts a daemon older than it
dist/.built: node_modules/.package-lock.json tsconfig.json $(SOURCES)
	@echo "building dist/ (tsc -p tsconfig.json)"
	@node_modules/.bin/tsc -p tsconfig.json
	@touch $@

# the CNI plugin executable: a small C client of the daemon (cni/client/tsnet-cni.c)
dist/cni/tsnet: cni/client/tsnet-cni.c
	@mkdir -p dist/cni
	@echo "building dist/cni/tsnet (gcc)"
	@gcc -O2 -Wall -Wextra -o $@ $<

build: dist/.built dist/cni/tsnet

# the tsnet command on the PATH (unless it is make install's copy), and the CNI plugin where
# runtimes look for plugins
link:
	@[ "$$(readlink /usr/local/bin/tsnet 2>/dev/null)" = "$(CURDIR)/bin/tsnet" ] || \
	 [ "$$(readlink /usr/local/bin/tsnet 2>/dev/null)" = ../lib/tsnet/current/bin/tsnet ] || \
	  { ln -sfn "$(CURDIR)/bin/tsnet" /usr/local/bin/tsnet && echo "linked /usr/local/bin/tsnet -> $(CURDIR)/bin/tsnet"; }
	@cmp -s dist/cni/tsnet /opt/cni/bin/tsnet || \
	  { install -D -m 0755 dist/cni/tsnet /opt/cni/bin/tsnet && echo "installed the CNI plugin /opt/cni/bin/tsnet"; }
	@[ "$$(readlink /usr/lib/cni/tsnet 2>/dev/null)" = /opt/cni/bin/tsnet ] || \
	  { mkdir -p /usr/lib/cni && ln -sfn /opt/cni/bin/tsnet /usr/lib/cni/tsnet && echo "linked /usr/lib/cni/tsnet -> /opt/cni/bin/tsnet"; }

# Everything up does except starting the daemon (the tests start their own), then the tests.
# run-tests.sh does the preparing itself so that even a failed install or build ends with the
# summary line.
test:
	@scripts/run-tests.sh --prepare "test-deps build link" --typecheck unit netns docker

unit:
	@scripts/run-tests.sh --prepare node-deps unit

# each benchmark under the kernel-test lock (one at a time), its result lines collected in
# dist/bench/results.jsonl; bench/summary.ts ends with one table of them all
bench: test-deps build
	@rm -f dist/bench/results.jsonl; failed=""; \
	 for b in dist/bench/*.js; do case "$$b" in */lib.js|*/summary.js) continue;; esac; echo "=== $$b"; \
	   BENCH_RESULTS=dist/bench/results.jsonl flock -o /tmp/tsnet-kernel-tests.lock node "$$b" || failed="$$failed $$b"; done; \
	 BENCH_RESULTS=dist/bench/results.jsonl node dist/bench/summary.js $$failed; [ -z "$$failed" ]

clean:
	rm -rf dist
