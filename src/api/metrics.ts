/**
 * Prometheus metrics in the text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 * Counters and histograms are kept here; gauges are read at scrape time.
 */
import type { RunnerMetrics } from '../jobs/runner.ts';

type Labels = Record<string, string>;

interface Histogram {
  help: string;
  buckets: number[];
  series: Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>;
}

export class Metrics implements RunnerMetrics {
  private readonly counters = new Map<string, { help: string; series: Map<string, { labels: Labels; value: number }> }>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly gauges = new Map<string, { help: string; read: () => Promise<{ labels: Labels; value: number }[]> }>();

  constructor() {
    this.defineCounter('atelier_http_requests_total', 'HTTP requests by route and status');
    this.defineCounter('atelier_jobs_total', 'finished jobs by endpoint and final state');
    this.defineCounter('atelier_webhook_deliveries_total', 'webhook delivery attempts by outcome');
    this.defineHistogram('atelier_job_duration_seconds', 'time from start to end of a job run', [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]);
    this.defineHistogram('atelier_job_wait_seconds', 'time a job waited in the queue', [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900]);
    this.defineHistogram('atelier_step_duration_seconds', 'time per denoising step', [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60]);
    this.defineHistogram('atelier_http_request_duration_seconds', 'HTTP request handling time', [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]);
  }

  defineCounter(name: string, help: string): void {
    this.counters.set(name, { help, series: new Map() });
  }

  defineHistogram(name: string, help: string, buckets: number[]): void {
    this.histograms.set(name, { help, buckets, series: new Map() });
  }

  defineGauge(name: string, help: string, read: () => Promise<{ labels: Labels; value: number }[]>): void {
    this.gauges.set(name, { help, read });
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const c = this.counters.get(name);
    if (!c) throw new Error(`metrics: counter ${name} is not defined`);
    const key = labelKey(labels);
    const s = c.series.get(key) ?? { labels, value: 0 };
    s.value += by;
    c.series.set(key, s);
  }

  observe(name: string, value: number, labels: Labels = {}): void {
    const h = this.histograms.get(name);
    if (!h) throw new Error(`metrics: histogram ${name} is not defined`);
    const key = labelKey(labels);
    const s = h.series.get(key) ?? { labels, counts: h.buckets.map(() => 0), sum: 0, count: 0 };
    h.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
    h.series.set(key, s);
  }

  jobWaited(endpoint: string, seconds: number): void {
    this.observe('atelier_job_wait_seconds', seconds, { endpoint });
  }

  stepTook(seconds: number): void {
    this.observe('atelier_step_duration_seconds', seconds);
  }

  jobFinished(endpoint: string, seconds: number, outcome: string): void {
    this.observe('atelier_job_duration_seconds', seconds, { endpoint });
    this.inc('atelier_jobs_total', { endpoint, state: outcome });
  }

  async render(): Promise<string> {
    const out: string[] = [];
    for (const [name, g] of this.gauges) {
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`);
      for (const s of await g.read()) out.push(`${name}${fmtLabels(s.labels)} ${s.value}`);
    }
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const s of c.series.values()) out.push(`${name}${fmtLabels(s.labels)} ${s.value}`);
    }
    for (const [name, h] of this.histograms) {
      out.push(`# HELP ${name} ${h.help}`, `# TYPE ${name} histogram`);
      for (const s of h.series.values()) {
        h.buckets.forEach((b, i) => out.push(`${name}_bucket${fmtLabels({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
        out.push(`${name}_bucket${fmtLabels({ ...s.labels, le: '+Inf' })} ${s.count}`);
        out.push(`${name}_sum${fmtLabels(s.labels)} ${s.sum}`, `${name}_count${fmtLabels(s.labels)} ${s.count}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function fmtLabels(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k]!)}"`).join(',')}}`;
}
