#!/usr/bin/env bash
# Runs vitest projects one after the other, each to its end even when an earlier one failed, and
# ends with ONE line summed over all of them (and nothing after it):
#   tests: N passed, N failed, N skipped
# Exit status 1 when anything failed.
#
#   scripts/run-tests.sh [--prepare "MAKE_TARGETS"] [--typecheck] PROJECT...
#
# --prepare runs `make MAKE_TARGETS` first (installing, building); --typecheck type-checks
# everything, tests included. A failing step counts as one failure, as does a project that ends
# without results, reports results under another project's name, runs no test at all, or exits
# non-zero with no failed test: a broken run never looks green. The counts come from
# test-reporter/summary.ts (wired in vitest.config.ts) through TSNET_SUMMARY_FILE; each layer's
# counts are printed before the total line.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare=
typecheck=
projects=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=$2; shift 2 ;;
    --typecheck) typecheck=1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) projects+=("$1"); shift ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
skipped=0
problems=()
layer_lines=()

step_failed() {
  failed=$((failed + 1))
  problems+=("$1")
  echo "FAILED: $1" >&2
}

if [ -n "$prepare" ]; then
  # shellcheck disable=SC2086 # a list of targets
  make -s --no-print-directory $prepare || step_failed "make $prepare"
fi

if [ -n "$typecheck" ]; then
  echo "=== typecheck (tsconfig.check.json)"
  node_modules/.bin/tsc -p tsconfig.check.json || step_failed "typecheck: tsc -p tsconfig.check.json"
fi

for project in "${projects[@]}"; do
  echo "=== vitest project: $project"
  counts="$work/$project.counts"
  TSNET_SUMMARY_FILE="$counts" node_modules/.bin/vitest run --project "$project"
  code=$?
  if [ ! -s "$counts" ]; then
    step_failed "vitest project $project ended without results (exit $code)"
    layer_lines+=("$project: no results")
    continue
  fi
  read -r names p f s <"$counts"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  layer_lines+=("$project: $p passed, $f failed, $s skipped")
  if [ "$names" != "$project" ]; then
    step_failed "vitest project $project reported results for '$names'"
  elif [ $((p + f + s)) -eq 0 ]; then
    step_failed "vitest project $project ran no test"
  elif [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then
    step_failed "vitest project $project exited $code with no failed test"
  fi
done

# A dockerd the docker harness started is stopped by the docker project's globalSetup teardown;
# this is the backstop for a vitest that died before it ran.
marker=${TSNET_TEST_DOCKERD_MARKER:-/run/tsnet-tests/dockerd.pid}
if [ -f "$marker" ]; then
  pid=$(head -n 1 "$marker")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    echo "stopping the dockerd the tests started (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$marker"
fi

echo
if [ ${#layer_lines[@]} -gt 0 ]; then
  echo "per layer:"
  printf '  %s\n' "${layer_lines[@]}"
fi
if [ ${#problems[@]} -gt 0 ]; then
  echo "failures outside test cases (each counted once):"
  printf '  %s\n' "${problems[@]}"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
