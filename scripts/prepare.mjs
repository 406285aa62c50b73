// Builds dist/ wherever this package is prepared from source, so that every way of
// getting the command gives a working one:
//   npm ci                   TypeScript is a dev dependency: build
//   npm ci --omit=dev        no compiler: fetch the dev dependencies, build, prune them again
//   npm install -g .         npm links a fresh clone and installs nothing into it: install
//                            its dependencies, build (the command then runs from the clone)
//   npm pack                 build, so the tarball carries dist/
//   npm start (--start)      build when TypeScript is there, else run the dist/ already built
// Installs from a tarball or the registry never run this: they carry dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const forStart = process.argv.includes('--start');
const built = existsSync(join(root, 'dist', 'cli.js'));
const npm = process.env.npm_execpath;
const say = (text) => process.stderr.write(`registry-tls-proxy: ${text}\n`);

// The outer npm's settings reach scripts as npm_config_*; an inner npm ci must not be
// global (npm install -g) or leave dev dependencies out (--omit=dev) too.
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) => !/^npm_config_(global|location|prefix|omit|include|production)$/i.test(key),
  ),
);

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function typescriptCompiler() {
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

let tsc = typescriptCompiler();
if (tsc) {
  run(process.execPath, [tsc, '-p', 'tsconfig.build.json']);
} else if (!built && !forStart && npm) {
  const omitDev = (process.env.npm_config_omit ?? '').split(/[\s,]+/).includes('dev');
  say(
    'dist/ is not built and TypeScript is not installed: installing the dev dependencies to build it',
  );
  run(process.execPath, [
    npm,
    'ci',
    '--ignore-scripts',
    '--include=dev',
    '--no-audit',
    '--no-fund',
  ]);
  tsc = typescriptCompiler();
  if (!tsc) {
    say(
      'TypeScript is still missing after npm ci; run "npm ci" with dev dependencies, then "npm run build"',
    );
    process.exit(1);
  }
  run(process.execPath, [tsc, '-p', 'tsconfig.build.json']);
  // Leave node_modules as asked: production dependencies only.
  if (omitDev)
    run(process.execPath, [
      npm,
      'prune',
      '--omit=dev',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
    ]);
} else if (!built) {
  say(
    'dist/ is not built and TypeScript is not installed: run "npm ci" (it builds), then try again',
  );
  process.exit(1);
}
