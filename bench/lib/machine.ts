/** Where the figures came from: processor, cores, memory, kernel and the versions under test. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { nginxBinary } from './servers.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  loadAverage: string;
  node: string;
  nginx: string;
  registry: string;
  openssl: string;
  curl: string;
  hey: string;
}

export function describeMachine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    node: process.version,
    nginx: firstLine(nginxBinary(), ['-v']).replace(/^nginx version: nginx\//, ''),
    registry: firstLine('docker-registry', ['--version']).split(' ').at(-1) ?? 'unknown',
    openssl: firstLine('openssl', ['version']).split(' ').slice(0, 2).join(' '),
    curl: firstLine('curl', ['--version']).split(' ').slice(0, 2).join(' '),
    hey: packageVersion('hey'),
  };
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}; Node ${m.node}, ` +
    `nginx ${m.nginx}, registry ${m.registry}, ${m.openssl}, ${m.curl}, hey ${m.hey}`
  );
}

/** The first line a command prints, on stdout or (nginx -v) stderr. */
function firstLine(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.split('\n')[0]?.trim() || 'unknown';
}

function packageVersion(name: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', name], {
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
}
