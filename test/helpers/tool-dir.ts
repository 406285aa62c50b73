/**
 * A PATH directory for running an installer script with exactly the tools a platform
 * has: links to the real ones (or to busybox applets), and stand-ins (small sh scripts)
 * for what this machine cannot run, such as macOS's `security`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The real path of `tool`; throws naming the package when it is missing. */
export function which(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${tool} is needed by this test: apt-get install -y ${tool}`);
  return found;
}

export function toolDir(
  dir: string,
  opts: { tools?: string[]; busybox?: string[]; standIns?: Record<string, string> },
): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of opts.tools ?? []) symlinkSync(which(tool), join(dir, tool));
  for (const applet of opts.busybox ?? []) symlinkSync(which('busybox'), join(dir, applet));
  for (const [name, script] of Object.entries(opts.standIns ?? {})) {
    writeFileSync(join(dir, name), `#!/bin/sh\n${script}`, { mode: 0o755 });
  }
  return dir;
}

/** Runs `command` to its end with only `env`; async, so a server in this process can answer it. */
export function runToEnd(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
