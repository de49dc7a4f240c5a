import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real libp2p nodes, worker pools and child processes;
    // two cores cannot run many of those side by side without timing noise.
    maxWorkers: 2,
    reporters: ['default'],
  },
})
