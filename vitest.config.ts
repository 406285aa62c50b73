import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Tests beside the code that still need more than Node: they check our output with the
 * tools users have (openssl, curl, wget, busybox, shellcheck), or start the built CLI
 * from dist/. They run with the end-to-end files, after the build.
 */
const NEEDS_TOOLS_OR_BUILD = [
  'src/pki/client-cert.test.ts', // openssl x509, openssl verify
  'src/pki/inspect.test.ts', // openssl makes the chains under inspection
  'src/pki/issue.test.ts', // openssl verify
  'src/pki/issue-key-types.test.ts', // openssl verify, openssl x509 -text
  'src/pki/rotation.test.ts', // another process runs dist/pki/rotation.js
  'src/tls/failures.test.ts', // openssl s_client and curl as failing clients
  'src/trust/installer-script.test.ts', // curl, wget, openssl, busybox, shellcheck
  'src/trust/instructions.test.ts', // shellcheck
];

/**
 * Files that measure the proxy under load (latency under 400 slow clients, memory after
 * 1,000 aborts, RSS across 1,000 reloads). Run beside other end-to-end files on two cores,
 * they measure the neighbours: CI saw the proxy's own answer at p95 3.8 s under slow read
 * while another file ran, where it is ~100 ms alone. They run after everything else, one
 * at a time.
 */
const MEASURES_LOAD = [
  'test/slow-clients.test.ts',
  'test/load.test.ts',
  'test/reload-memory.test.ts',
];

/**
 * The deployments on real docker engines: the image built from the Dockerfile, run as
 * the Kubernetes pod, the compose file and the swarm stack. The image carries its own
 * Node, so the suite's second pass on the image's Node (test/run-on-image-node.sh)
 * would build and run the very same image again: this project runs once, in the first.
 */
const DEPLOYS = ['test/deploy-docker.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // End-to-end files start registries and proxies; two cores take two at a time.
    maxWorkers: 2,
    projects: [
      {
        // `npm run test:unit`: pure logic, in seconds, with nothing but Node and npm ci.
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/helpers/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...NEEDS_TOOLS_OR_BUILD],
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/*.test.ts', ...NEEDS_TOOLS_OR_BUILD],
          exclude: [...configDefaults.exclude, ...MEASURES_LOAD, ...DEPLOYS],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'deploy',
          include: DEPLOYS,
          globalSetup: ['test/helpers/global-setup.ts'],
          // Builds an image and waits for HEALTHCHECKs (30 s intervals) and swarm tasks.
          testTimeout: 900_000,
          hookTimeout: 900_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'load',
          include: MEASURES_LOAD,
          globalSetup: ['test/helpers/global-setup.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
