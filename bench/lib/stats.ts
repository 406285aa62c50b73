/** Medians: robust to the odd round that a neighbour's work on the shared cores slowed down. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * The median over rounds of proxy ÷ nginx, each ratio taken within one round
 * (the two ran side by side, so drift in the machine's load cancels).
 */
export function pairedRatio<T extends { round: number }>(
  nginx: readonly T[],
  proxy: readonly T[],
  metric: (sample: T) => number,
): number | null {
  const ratios: number[] = [];
  for (const p of proxy) {
    const n = nginx.find((sample) => sample.round === p.round);
    if (n === undefined) continue;
    const denominator = metric(n);
    if (denominator > 0) ratios.push(metric(p) / denominator);
  }
  return median(ratios);
}
