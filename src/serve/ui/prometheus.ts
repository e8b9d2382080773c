/**
 * The Prometheus text of /metrics read in the browser: samples by name and labels, counters' rates between two
 * scrapes, and histogram quantiles interpolated within buckets as Prometheus' histogram_quantile does.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `match`. */
export function total(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

/** The label values a metric has for `label` (the models that have reported, say). */
export function labelValues(samples: Sample[], name: string, label: string): string[] {
  return [...new Set(samples.filter((s) => s.name === name && s.labels[label] !== undefined).map((s) => s.labels[label]))];
}

/** Cumulative bucket counts of a histogram for the samples matching `match`, by upper bound. */
export function buckets(samples: Sample[], name: string, match: Record<string, string> = {}): [number, number][] {
  const byBound = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const bound = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + s.value);
  }
  return [...byBound.entries()].sort((a, b) => a[0] - b[0]);
}

/** Bucket counts observed between two scrapes (the window's own distribution). */
export function bucketDelta(now: [number, number][], before: [number, number][]): [number, number][] {
  const old = new Map(before);
  return now.map(([bound, count]) => [bound, count - (old.get(bound) ?? 0)]);
}

/** The q-quantile (0..1) of cumulative buckets; null with no observations. Linear within a bucket, like Prometheus. */
export function quantile(q: number, cumulative: [number, number][]): number | null {
  const count = cumulative.at(-1)?.[1] ?? 0;
  if (count <= 0) return null;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, c] of cumulative) {
    if (c >= rank) {
      // Past the last finite bound, Prometheus answers that bound: there is nothing to interpolate towards.
      if (!Number.isFinite(bound)) return lowerBound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / Math.max(c - lowerCount, 1e-12);
    }
    [lowerBound, lowerCount] = [bound, c];
  }
  return lowerBound;
}
