/**
 * /install-ca.ps1 as the running proxy serves it. No PowerShell runs on this machine
 * (Debian has no package for it), so this is the strongest check we can make: the
 * script's two decisions are read out of the served text and evaluated here on the
 * same bytes as the sh installer, which runs for real.
 *  - normalising the fingerprint the user typed: each step of ConvertTo-ColonHex is
 *    parsed (an unknown step fails the test) and replayed with the same regular
 *    expressions, against install-ca.sh's colon_hex run by sh, on a table of spellings;
 *  - fingerprinting the served bundle: its PEM pattern, base64 and SHA-256 of the DER,
 *    against openssl and Node on the same /ca.crt bytes, during a rotation (two CAs).
 * The rest is asserted as text: the cmdlets and stores, and that refusal comes first.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installerOneLiner } from '../src/trust/one-liners.js';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { readCA, runCLI, startProxy, tempDir, type Proxy } from './helpers/processes.js';

const tmp = tempDir('install-ca-ps1');
let proxy: Proxy;
let ca: string;
let ps1: string;
let sh: string;

beforeAll(async () => {
  proxy = await startProxy({ backend: 'http://127.0.0.1:9', tlsDir: join(tmp.path, 'tls') });
  ca = readCA(proxy);
  ps1 = (await httpsGet(`${proxy.origin}/install-ca.ps1`, { ca })).body;
  sh = (await httpsGet(`${proxy.origin}/install-ca.sh`, { ca })).body;
});
afterAll(async () => {
  await proxy.stop();
  tmp.remove();
});

/** A .NET pattern as JS: `\z` is the very end; `$` (no Multiline) also matches before a final \n. */
function dotnetRegex(pattern: string, flags: string): RegExp {
  const js = pattern.replace(/\\z|\$/g, (m) => (m === '\\z' ? '$' : '(?=\\n?$)'));
  return new RegExp(js, flags);
}
/** A .NET replacement string as JS: $0 is the whole match. */
const dotnetReplacement = (r: string) => r.replace(/\$0/g, '$$&');
/** The body of a single-quoted PowerShell string. */
const unquote = (s: string) => s.replace(/''/g, "'");

/** The statements of `function NAME(...) { … }` in the served script, one per line. */
function functionBody(name: string): string[] {
  const match = new RegExp(`^function ${name}\\([^)]*\\) \\{\\n([\\s\\S]*?)\\n\\}$`, 'm').exec(ps1);
  if (!match?.[1]) throw new Error(`install-ca.ps1 has no function ${name}`);
  return match[1].split('\n').map((l) => l.trim());
}

const Q = "'((?:[^']|'')*)'";
/** ConvertTo-ColonHex, replayed step by step from its text. */
function ps1ColonHex(text: string): string {
  let hex = text;
  for (const line of functionBody('ConvertTo-ColonHex')) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^\\$hex = \\$(?:Text|hex) -replace ${Q}, ${Q}$`).exec(line))) {
      // -replace is case-insensitive and replaces every match.
      hex = hex.replace(dotnetRegex(unquote(m[1]!), 'gi'), dotnetReplacement(unquote(m[2]!)));
    } else if (line === '$hex = $hex.ToUpperInvariant()') {
      hex = hex.toUpperCase();
    } else if (
      (m = new RegExp(
        `^if \\(\\$hex\\.Length -ne (\\d+) -or \\$hex -cmatch ${Q}\\) \\{ return '' \\}$`,
      ).exec(line))
    ) {
      // -cmatch: case-sensitive, anywhere in the string.
      if (hex.length !== Number(m[1]) || dotnetRegex(unquote(m[2]!), '').test(hex)) return '';
    } else if ((m = new RegExp(`^return \\$hex -replace ${Q}, ${Q}$`).exec(line))) {
      return hex.replace(dotnetRegex(unquote(m[1]!), 'gi'), dotnetReplacement(unquote(m[2]!)));
    } else {
      throw new Error(`ConvertTo-ColonHex: a step this test does not know: ${line}`);
    }
  }
  throw new Error('ConvertTo-ColonHex: no return');
}

/** install-ca.sh's colon_hex, cut from the served script and run by sh. */
function shColonHex(text: string): string {
  const fn = /^colon_hex\(\) \{\n[\s\S]*?\n\}$/m.exec(sh)?.[0];
  if (!fn) throw new Error('install-ca.sh has no colon_hex');
  const run = spawnSync('sh', ['-c', `${fn}\ncolon_hex "$1"`, 'sh', text], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout;
}

describe('/install-ca.ps1', () => {
  it("normalises a typed fingerprint exactly as install-ca.sh's colon_hex does", () => {
    const fp = new X509Certificate(ca).fingerprint256;
    const bare = fp.replace(/:/g, '');
    const spellings = [
      fp,
      fp.toLowerCase(),
      bare,
      bare.toLowerCase(),
      fp.replace(/:/g, ' '),
      ` ${fp} `,
      `sha256 Fingerprint=${fp}`,
      `SHA256=${bare.toLowerCase()}`,
      `a=b=${fp}`,
      `${fp}\n`,
      `${fp}\t`,
      fp.slice(3),
      `${fp}:00`,
      bare.replace(/^./, 'g'),
      fp.replace(/:/g, '-'),
      `${bare.slice(0, 10)}ＡＢ${bare.slice(12)}`,
      '',
      '=',
    ];
    const table = spellings.map((s) => [s, shColonHex(s), ps1ColonHex(s)]);
    for (const [spelling, bySh, byPs1] of table) {
      expect(byPs1, `ps1 vs sh on ${JSON.stringify(spelling)}`).toBe(bySh);
    }
    // The table exercises both answers: not every spelling is refused, nor accepted.
    expect(table.filter(([, bySh]) => bySh === fp).length).toBe(9);
    expect(table.filter(([, bySh]) => bySh === '').length).toBe(9);
  });

  it('fingerprints each served certificate as SHA-256 of its DER, as openssl does, during a rotation', async () => {
    expect(runCLI(['ca', 'rotate'], { RTP_TLS_DIR: proxy.tlsDir }).status).toBe(0);
    const bundle = await eventually('the proxy to serve both CAs at /ca.crt', async () => {
      const body = (await httpsGet(`${proxy.origin}/ca.crt`, { ca })).body;
      return body.match(/BEGIN CERTIFICATE/g)?.length === 2 && body;
    });
    const pattern = unquote(/^\$pattern = '((?:[^']|'')*)'$/m.exec(ps1)?.[1] ?? '');
    expect(functionBody('Get-Sha256Fingerprint')).toEqual([
      '$sha = [Security.Cryptography.SHA256]::Create()',
      "return [BitConverter]::ToString($sha.ComputeHash($Certificate.RawData)) -replace '-', ':'",
    ]);
    // [regex]::Matches (case-sensitive), [Convert]::FromBase64String, SHA256 over RawData
    // (the DER), BitConverter's AB-CD-… with - turned into :.
    const byPs1 = [...bundle.matchAll(dotnetRegex(pattern, 'g'))].map((m) =>
      createHash('sha256')
        .update(Buffer.from(m[1]!, 'base64'))
        .digest('hex')
        .toUpperCase()
        .replace(/..(?!$)/g, '$&:'),
    );
    const files = bundle.split(/(?<=-----END CERTIFICATE-----\r?\n)/).filter((c) => c.trim());
    const byOpenSSL = files.map((pem, i) => {
      const file = join(tmp.path, `served-${i}.pem`);
      writeFileSync(file, pem);
      const out = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', file], {
        encoding: 'utf8',
      }).stdout;
      return out.trim().replace(/^.*=/, '');
    });
    expect(byPs1).toHaveLength(2);
    expect(byPs1).toEqual(byOpenSSL);
    expect(byPs1).toEqual(files.map((pem) => new X509Certificate(pem).fingerprint256));
  });

  it('imports into LocalMachine\\Root when elevated, else CurrentUser\\Root; refuses before importing', () => {
    const elevated = ps1.indexOf(
      'Import-Certificate -FilePath $file -CertStoreLocation Cert:\\LocalMachine\\Root',
    );
    const user = ps1.indexOf(
      'Import-Certificate -FilePath $file -CertStoreLocation Cert:\\CurrentUser\\Root',
    );
    expect(elevated).toBeGreaterThan(0);
    expect(user).toBeGreaterThan(elevated);
    expect(ps1.slice(0, elevated)).toMatch(
      /\$elevated = \$principal\.IsInRole\(\[Security\.Principal\.WindowsBuiltInRole\]::Administrator\)[\s\S]*if \(\$elevated\) \{\s*$/,
    );
    expect(ps1.slice(elevated, user)).toMatch(/\} else \{\s*$/);
    // Every given fingerprint must be served, or nothing is imported.
    const refusal = ps1.indexOf("Stop-Install 'Nothing was installed.'");
    expect(refusal).toBeGreaterThan(0);
    expect(refusal).toBeLessThan(elevated);
    expect(ps1.slice(0, refusal)).toMatch(
      /\$missing = @\(\$wanted \| Where-Object \{ \$seen -notcontains \$_ \}\)\nif \(\$missing\.Count -gt 0\) \{/,
    );
    expect(functionBody('Stop-Install')).toContain('exit $Code');
    expect(ps1).toMatch(/Restart Docker Desktop/);
  });

  it('is for this address, matches the one-liner, and balances its brackets', () => {
    expect(ps1).toContain(`[string]$Registry = '127.0.0.1:${proxy.port}'`);
    const fp = new X509Certificate(ca).fingerprint256;
    const oneLiner = installerOneLiner('windows', `127.0.0.1:${proxy.port}`, fp);
    expect(oneLiner).toContain(`DownloadString('${proxy.origin}/install-ca.ps1')`);
    expect(oneLiner).toContain(`-Fingerprint '${fp}'`);
    expect(ps1).toMatch(/^param\(\n\s+\[string\[\]\]\$Fingerprint = @\(\),/m);
    expect(ps1).not.toMatch(/@[A-Z][A-Z0-9_]*@|%\{|`/);
    // WebClient.DownloadString decodes with the ANSI code page: ASCII reads the same in all.
    expect(ps1).toMatch(/^[\x09\x0a\x20-\x7e]*$/);
    // Outside single-quoted strings, every ( [ { closes in order.
    const code = ps1.replace(/'(?:[^']|'')*'/g, "''").replace(/#.*$/gm, '');
    const open: string[] = [];
    for (const c of code) {
      if ('([{'.includes(c)) open.push(c);
      else if (')]}'.includes(c)) expect(open.pop()).toBe('([{'[')]}'.indexOf(c)]);
    }
    expect(open).toEqual([]);
  });
});
