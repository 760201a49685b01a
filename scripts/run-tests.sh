#!/usr/bin/env bash
# Runs the named vitest projects in order (unit netns docker), each to the end even when an
# earlier one failed, then prints one summary line for all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
files=()
for project in "$@"; do
  echo "=== vitest project: $project"
  npx vitest run --project "$project" --passWithNoTests \
    --reporter=default --reporter=json --outputFile.json="$reports/$project.json"
  files+=("$reports/$project.json")
done
node scripts/summarize-tests.mjs "${files[@]}"
