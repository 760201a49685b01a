import { defineConfig } from 'vitest/config';

// Three layers, kept apart so the fast one stays fast:
//  unit   - pure logic, no root, no kernel (seconds)
//  netns  - real kernel: namespaces, links, nftables (root)
//  docker - the real Docker engine driving the tsnet daemon (root, slow)
// `make test` runs them one after the other (scripts/run-tests.sh); test-reporter/summary.ts
// counts each run for its closing line `tests: N passed, N failed, N skipped`.
export default defineConfig({
  test: {
    reporters: ['default', './test-reporter/summary.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{architecture,cli,core,daemon,drivers,firewall,ipam,lab,native,plugin-api,runtime,store,cni,test-reporter}/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'netns',
          include: ['netns-tests/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'docker',
          include: ['docker-tests/**/*.test.ts'],
          // stops a dockerd the harness started, after the last file
          globalSetup: ['./docker-tests/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
