# Sourced by scripts/install.sh and scripts/plugin.sh: what a copy of tsnet that runs outside the
# clone holds. copy_product DIR puts the built product there (dist/ without the compiled tests
# and benchmarks, bin/, package.json, package-lock.json, README.md, and the node_modules packages
# needed at run time), and fails when a run-time package is missing from node_modules.
# default_version names a build: package.json's version and the git commit, plus a hash of the
# build when the clone has uncommitted changes, so a changed build never reuses a version's name.
# Run from the clone's root, after make build.

default_version() {
  local v
  v="$(node -p 'require("./package.json").version')-g$(git rev-parse --short HEAD)"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    v="$v-dirty.$(find dist bin package.json package-lock.json -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-8)"
  fi
  echo "$v"
}

# The top-level packages npm needs at run time (nested ones come with their parent). npm ls also
# complains about extraneous packages; what matters is checked after the copy.
production_modules() {
  { npm ls --omit=dev --parseable --all 2>/dev/null || true; } | sed "s|^$(pwd)/||" | grep -E '^node_modules/(@[^/]+/)?[^/]+$' | sort -u
}

copy_product() {
  local dest=$1 d dep
  mkdir -p "$dest/dist"
  for d in dist/*/; do
    case "$d" in dist/docker-tests/ | dist/netns-tests/ | dist/test-support/ | dist/bench/) continue ;; esac
    cp -a "$d" "$dest/dist/"
  done
  cp -a bin package.json package-lock.json README.md "$dest/"
  production_modules | xargs cp -a --parents -t "$dest"
  for dep in $(node -p 'Object.keys(require("./package.json").dependencies).join(" ")'); do
    [ -d "$dest/node_modules/$dep" ] || { echo "the run-time package $dep is missing from node_modules: run npm ci" >&2; return 1; }
  done
}
