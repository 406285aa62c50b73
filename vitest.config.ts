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
  'src/pki/rotation.test.ts', // another process runs dist/pki/rotation.js
  'src/tls/failures.test.ts', // openssl s_client and curl as failing clients
  'src/trust/installer-script.test.ts', // curl, wget, openssl, busybox, shellcheck
  'src/trust/instructions.test.ts', // shellcheck
];

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
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
