/**
 * A hand-written SVG bar chart (no dependency): one group of horizontal bars per
 * metric, normalised so that nginx = 1, with direct-to-registry where it has a
 * value. Bars past the axis end are cut and labelled with their value.
 */
import type { Row } from './rows.js';

const WIDTH = 980;
const LABEL_WIDTH = 430;
const PLOT_LEFT = LABEL_WIDTH + 20;
const PLOT_WIDTH = WIDTH - PLOT_LEFT - 70;
const BAR_HEIGHT = 11;
const BAR_GAP = 2;
const GROUP_GAP = 14;
const SECTION_HEIGHT = 26;
const TOP = 98;
/** Longest bar drawn, in multiples of nginx. */
const AXIS_CAP = 4;

const COLORS = { direct: '#8b949e', nginx: '#009639', proxy: '#1f6feb' } as const;

interface Bar {
  series: keyof typeof COLORS;
  value: number;
}

export function renderChart(
  rows: readonly Row[],
  title: string,
  subtitles: readonly string[],
): string {
  const charted = rows.filter((r) => r.chart && r.ratio !== null && typeof r.nginx === 'number');
  const barsOf = (row: Row): Bar[] => {
    const bars: Bar[] = [];
    const nginx = row.nginx as number;
    if (row.direct !== null && row.kind !== 'latency' && nginx > 0) {
      bars.push({ series: 'direct', value: row.direct / nginx });
    }
    bars.push({ series: 'nginx', value: 1 }, { series: 'proxy', value: row.ratio as number });
    return bars;
  };
  const longest = Math.max(1.5, ...charted.flatMap((r) => barsOf(r).map((b) => b.value)));
  const axisMax = Math.min(AXIS_CAP, Math.ceil(longest * 2) / 2);
  const x = (value: number) => PLOT_LEFT + (Math.min(value, axisMax) / axisMax) * PLOT_WIDTH;

  const body: string[] = [];
  let y = TOP;
  let section = '';
  for (const row of charted) {
    if (row.section !== section) {
      section = row.section;
      y += 8;
      body.push(text(16, y + 12, section, 'font-weight="bold"'));
      y += SECTION_HEIGHT - 8;
    }
    const bars = barsOf(row);
    const groupHeight = bars.length * (BAR_HEIGHT + BAR_GAP);
    const better = row.better === 'lower' ? 'lower is better' : 'higher is better';
    body.push(text(28, y + groupHeight / 2 - 2, `${row.label} (${row.unit})`));
    body.push(text(28, y + groupHeight / 2 + 11, better, 'fill="#57606a" font-size="10"'));
    bars.forEach((bar, i) => {
      const top = y + i * (BAR_HEIGHT + BAR_GAP);
      const end = x(bar.value);
      body.push(
        `<rect x="${PLOT_LEFT}" y="${top}" width="${(end - PLOT_LEFT).toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS[bar.series]}"/>`,
      );
      // nginx is 1 by definition; its label would only cover the goal line.
      if (bar.series !== 'nginx') {
        const cut = bar.value > axisMax ? ' ▸' : '';
        body.push(
          text(end + 4, top + BAR_HEIGHT - 1, `${bar.value.toFixed(2)}×${cut}`, 'font-size="10"'),
        );
      }
    });
    if (row.target !== null) {
      const goal = Number(/[\d.]+/.exec(row.target)?.[0]);
      if (Number.isFinite(goal)) {
        const gx = x(goal).toFixed(1);
        body.push(
          `<line x1="${gx}" y1="${y - 3}" x2="${gx}" y2="${y + groupHeight + 1}" stroke="#cf222e" stroke-dasharray="3,2"/>`,
          text(x(goal) + 3, y - 4, `goal ${row.target}`, 'fill="#cf222e" font-size="9"'),
        );
      }
    }
    y += groupHeight + GROUP_GAP;
  }
  const height = y + 30;

  const axis: string[] = [];
  for (let tick = 0; tick <= axisMax + 1e-9; tick += 0.5) {
    const tx = x(tick).toFixed(1);
    axis.push(
      `<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${height - 26}" stroke="${tick === 1 ? '#009639' : '#d0d7de'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`,
      text(x(tick) - 8, height - 12, `${tick}×`, 'font-size="10" fill="#57606a"'),
    );
  }
  const legend = (['direct', 'nginx', 'proxy'] as const).map((series, i) => {
    const lx = PLOT_LEFT + i * 150;
    const name = {
      direct: 'direct to registry',
      nginx: 'nginx (= 1)',
      proxy: 'registry-tls-proxy',
    }[series];
    return `<rect x="${lx}" y="64" width="12" height="12" fill="${COLORS[series]}"/>${text(lx + 17, 74, name)}`;
  });

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(16, 24, title, 'font-size="16" font-weight="bold"'),
    ...subtitles.map((line, i) => text(16, 40 + i * 13, line, 'font-size="10" fill="#57606a"')),
    ...legend,
    ...axis,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escapeXML(content)}</text>`;
}

function escapeXML(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}
