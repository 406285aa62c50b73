/**
 * A brought-your-own certificate as an operator gets one from a private CA,
 * built with openssl: root → intermediate → leaf (SANs 127.0.0.1, localhost),
 * each a set of files in one directory.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BYOChain {
  /** The path of a file of the chain: `root.crt`, `int.crt`, `TAG.key`, `TAG-fullchain.crt`… */
  file(name: string): string;
  /** A new root and intermediate, and a leaf `TAG` valid for 20 days. */
  build(tag: string): void;
  /** A leaf `TAG` signed by the current intermediate, valid for `days` from now (negative: expired). */
  issueLeaf(tag: string, days: number): void;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

export function byoChain(dir: string): BYOChain {
  const d = (name: string) => join(dir, name);
  const key = (n: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', d(n)]);
  const issueLeaf = (tag: string, days: number) => {
    key(`${tag}.key`);
    openssl(['req', '-new', '-key', d(`${tag}.key`), '-subj', `/CN=${tag}`, '-out', d('leaf.csr')]);
    openssl([
      ...['x509', '-req', '-in', d('leaf.csr'), '-CA', d('int.crt'), '-CAkey', d('int.key')],
      ...[
        '-CAcreateserial',
        '-days',
        String(days),
        '-extfile',
        d('leaf.ext'),
        '-out',
        d(`${tag}.crt`),
      ],
    ]);
    writeFileSync(
      d(`${tag}-fullchain.crt`),
      readFileSync(d(`${tag}.crt`), 'utf8') + readFileSync(d('int.crt'), 'utf8'),
    );
  };
  const build = (tag: string) => {
    writeFileSync(
      d('ca.ext'),
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
    );
    writeFileSync(
      d('leaf.ext'),
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
    );
    key('root.key');
    openssl([
      ...['req', '-x509', '-new', '-key', d('root.key'), '-subj', '/CN=BYO Root', '-days', '30'],
      ...['-out', d('root.crt'), '-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign'],
    ]);
    key('int.key');
    openssl([
      'req',
      '-new',
      '-key',
      d('int.key'),
      '-subj',
      '/CN=BYO Intermediate',
      '-out',
      d('int.csr'),
    ]);
    openssl([
      ...['x509', '-req', '-in', d('int.csr'), '-CA', d('root.crt'), '-CAkey', d('root.key')],
      ...['-CAcreateserial', '-days', '30', '-extfile', d('ca.ext'), '-out', d('int.crt')],
    ]);
    issueLeaf(tag, 20);
  };
  return { file: d, build, issueLeaf };
}
