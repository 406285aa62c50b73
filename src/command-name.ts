/**
 * The command as the user runs it, for messages that tell them what to run next:
 * `registry-tls-proxy` when started as the installed command (npm install -g, a bin
 * link), `npx registry-tls-proxy` under npx, else `node dist/cli.js` (npm start, a
 * clone, the container image), relative to the working directory where it can be.
 */
import { basename, isAbsolute, relative } from 'node:path';

const BIN = 'registry-tls-proxy';

/**
 * @example commandName('/usr/local/bin/registry-tls-proxy') // → 'registry-tls-proxy'
 * @example commandName('/srv/rtp/dist/cli.js', '/srv/rtp') // → 'node dist/cli.js'
 */
export function commandName(
  script = process.argv[1] ?? '',
  cwd = process.cwd(),
  npmCommand = process.env['npm_command'],
): string {
  // A bin link keeps its own name in argv[1] (the kernel passes the link, not its target).
  if (basename(script) === BIN || script === '') {
    return npmCommand === 'exec' ? `npx ${BIN}` : BIN;
  }
  const fromHere = relative(cwd, script);
  const path = fromHere.startsWith('..') || isAbsolute(fromHere) ? script : fromHere;
  return `node ${/\s/.test(path) ? JSON.stringify(path) : path}`;
}
