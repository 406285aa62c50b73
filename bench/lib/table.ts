/** The results as text: the terminal table, the Markdown table, and the notes that explain both. */
import type { Row } from './rows.js';

/** How to read the table; printed under it and kept in the JSON. */
export const NOTES: readonly string[] = [
  'Medians over rounds; proxy ÷ nginx is the median of per-round ratios (the two ran back to back, order swapped every round).',
  "CPU = utime + stime from /proc/PID/stat, summed over each server's processes: nginx master + workers, the proxy (+ its cluster workers if RTP_WORKERS > 1).",
  'Both log every request: nginx access_log on, the proxy at its default level (info); "log level warn" rows run a second proxy without request logs.',
  'hey and openssl s_time do not verify certificates; every target was verified against the proxy CA before measuring (Node https, curl --cacert, s_client -verify_return_error).',
  'Latency from hey, in 0.1 ms steps; "added" = percentile minus direct-to-registry in the same round.',
  "Certificates: the proxy serves its default (ECDSA P-256, with RSA-2048 beside it for clients without ECDSA); nginx serves the proxy's RSA-2048 certificate, as the registry docs' recipe does. s_time offers ECDSA, so it gets ECDSA from the proxy.",
];

export function formatValue(value: number | boolean | null): string {
  if (value === null) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'NO';
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function formatRatio(ratio: number | null): string {
  return ratio === null ? '—' : `${ratio.toFixed(2)}×`;
}

function formatTarget(row: Row): string {
  if (row.target === null) return '';
  return `${row.target} ${row.pass === null ? '' : row.pass ? 'pass' : 'FAIL'}`.trim();
}

/** The table for the terminal: sections as headings, aligned columns. */
export function renderTable(rows: readonly Row[]): string {
  const header = ['metric', 'unit', 'direct', 'nginx', 'proxy', 'proxy÷nginx', 'target'];
  const body = rows.map((r) => [
    `  ${r.label}`,
    r.unit,
    formatValue(r.direct),
    formatValue(r.nginx),
    formatValue(r.proxy),
    formatRatio(r.ratio),
    formatTarget(r),
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((cells) => (cells[i] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w)))];
  let section = '';
  rows.forEach((row, i) => {
    if (row.section !== section) {
      section = row.section;
      out.push(section);
    }
    out.push(line(body[i] ?? []));
  });
  return out.join('\n');
}

/** The same table in Markdown, for RESULTS.md and the README. */
export function renderMarkdownTable(rows: readonly Row[]): string {
  const out = [
    '| metric | direct | nginx | proxy | proxy ÷ nginx | target |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ];
  let section = '';
  for (const row of rows) {
    if (row.section !== section) {
      section = row.section;
      out.push(`| **${section}** | | | | | |`);
    }
    out.push(
      `| ${row.label} (${row.unit}) | ${formatValue(row.direct)} | ${formatValue(row.nginx)} | ` +
        `${formatValue(row.proxy)} | ${formatRatio(row.ratio)} | ${formatTarget(row)} |`,
    );
  }
  return out.join('\n');
}
