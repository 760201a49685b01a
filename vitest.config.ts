import { defineConfig } from 'vitest/config';

// Three layers, kept apart so the fast one stays fast:
//  unit   - pure logic, no root, no kernel (seconds)
//  netns  - real kernel: namespaces, links, nftables (root)
//  docker - the real Docker engine driving the tsnet daemon (root, slow)
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{cli,daemon,drivers,firewall,ipam,native,plugin-api,store,cni}/**/*.test.ts'],
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
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
