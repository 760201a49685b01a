# The two commands: `make up` (install, build, start) and `make test` (everything, tested).
SHELL := /bin/bash
.DEFAULT_GOAL := up
.PHONY: up down test unit build deps test-deps clean bench

SOURCES := $(shell find cli daemon drivers firewall ipam native plugin-api store bench docker-tests -name '*.ts' ! -name '*.test.ts' 2>/dev/null)

up: deps build
	@scripts/daemon.sh start

down:
	@scripts/daemon.sh stop

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# dist/.built marks a complete build; scripts/daemon.sh restarts a daemon older than it
dist/.built: node_modules/.package-lock.json tsconfig.json $(SOURCES)
	npx tsc -p tsconfig.json
	@touch $@

build: dist/.built

unit: node_modules/.package-lock.json
	@scripts/run-tests.sh unit

test: test-deps build
	@npx tsc -p tsconfig.check.json
	@scripts/run-tests.sh unit netns docker

bench: test-deps build
	@for b in dist/bench/*.js; do [ -e "$$b" ] || continue; echo "=== $$b"; node "$$b" || exit 1; done

clean:
	rm -rf dist
