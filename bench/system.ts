/**
 * Machine state for the benchmark: peak RSS, available memory, other processes that would disturb a
 * measurement (a second full-size SDXL run would run the 24 GB machine out of memory), and CPU time used by
 * other processes during a phase (so contaminated timings are visible in the report).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';

const GB = 1e9;

/** Peak resident set of this process so far, in GB (10^9 bytes). */
export function peakRssGB(): number {
  return (process.resourceUsage().maxRSS * 1024) / GB;
}

export function currentRssGB(): number {
  return process.memoryUsage().rss / GB;
}

function meminfo(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? (Number(m[1]) * 1024) / GB : NaN;
}

export function memAvailableGB(): number {
  return meminfo('MemAvailable');
}

export function memTotalGB(): number {
  return meminfo('MemTotal');
}

interface Proc {
  pid: number;
  ppid: number;
  rssGB: number;
  args: string;
}

function processes(): Proc[] {
  const r = spawnSync('ps', ['-eo', 'pid=,ppid=,rss=,args='], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), rssGB: (Number(m[3]) * 1024) / GB, args: m[4] }));
}

/** Another benchmark driver (the per-network benches in bench/): it runs full-size cases one after another. */
const OTHER_BENCH = /\bbench\/[\w.-]+\.ts\b/;

/**
 * Processes outside this process's ancestry and descendants that hold more than `minGB` resident, or that
 * run another benchmark script (between its cases such a driver is light, but the next case is not).
 */
export function heavyForeignProcesses(minGB: number): Proc[] {
  const all = processes();
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const ours = new Set([process.pid]);
  for (let p = byPid.get(process.pid); p && p.ppid > 1; p = byPid.get(p.ppid)) ours.add(p.ppid);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => !ours.has(p.pid) && (p.rssGB > minGB || OTHER_BENCH.test(p.args)));
}

/** Busy CPU time of the whole machine in seconds (from /proc/stat, USER_HZ = 100). */
export function machineBusyS(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] ?? 0)) / 100;
}

/** Measures CPU time that processes other than this one used since `start()`. */
export function foreignCpuMeter(): () => { wallS: number; foreignCpuS: number; foreignCores: number } {
  const t0 = performance.now();
  const busy0 = machineBusyS();
  const own0 = process.cpuUsage();
  return () => {
    const wallS = (performance.now() - t0) / 1000;
    const own = process.cpuUsage(own0);
    const foreignCpuS = Math.max(0, machineBusyS() - busy0 - (own.user + own.system) / 1e6);
    return { wallS, foreignCpuS, foreignCores: foreignCpuS / Math.max(wallS, 1e-9) };
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until no other process holds more than `heavyGB` resident, at least `needGB` is available, and the
 * other processes use less than `maxForeignCores` of CPU (the last condition is given up after `cpuWaitS`).
 */
export async function waitForQuietMachine(opts: { needGB: number; heavyGB?: number; maxForeignCores?: number; maxWaitS: number; cpuWaitS?: number; log: (s: string) => void }): Promise<{ waitedS: number; contention: string | null; memoryBlocked: boolean }> {
  const t0 = performance.now();
  const heavyGB = opts.heavyGB ?? 2;
  const maxCores = opts.maxForeignCores ?? 0.3;
  const cpuWaitS = opts.cpuWaitS ?? 300;
  let lastLog = -Infinity;
  let streak = 0;
  for (;;) {
    const waited = (performance.now() - t0) / 1000;
    const heavy = heavyForeignProcesses(heavyGB);
    const avail = memAvailableGB();
    const b0 = machineBusyS();
    await sleep(2000);
    const cores = (machineBusyS() - b0) / 2;
    const memOk = heavy.length === 0 && avail >= opts.needGB;
    const cpuOk = cores < maxCores || waited > cpuWaitS;
    if (!(memOk && cpuOk)) streak = 0;
    if (memOk && cpuOk && ++streak < 2) {
      await sleep(5000); // quiet twice in a row: another driver may be between two of its cases
      continue;
    }
    if (memOk && cpuOk) {
      return { waitedS: waited, contention: cores >= maxCores ? `other processes used ${cores.toFixed(2)} cores when the phase started` : null, memoryBlocked: false };
    }
    if (waited > opts.maxWaitS) {
      return { waitedS: waited, contention: `gave up waiting after ${waited.toFixed(0)} s: ${heavy.map((p) => `pid ${p.pid} ${p.rssGB.toFixed(1)} GB`).join(', ')}; available ${avail.toFixed(1)} GB`, memoryBlocked: !memOk };
    }
    if (waited - lastLog >= 60) {
      lastLog = waited;
      const why = [
        ...heavy.map((p) => `pid ${p.pid} holds ${p.rssGB.toFixed(1)} GB (${p.args.slice(0, 80)})`),
        ...(avail < opts.needGB ? [`only ${avail.toFixed(1)} GB available, need ${opts.needGB}`] : []),
        ...(!cpuOk ? [`other processes use ${cores.toFixed(2)} cores`] : []),
      ];
      opts.log(`waiting for a quiet machine (${waited.toFixed(0)} s so far): ${why.join('; ')}`);
    }
    await sleep(10_000);
  }
}

/**
 * Samples /proc/self/status from a worker thread (onnxruntime's run() blocks the main thread) and keeps the
 * peaks of anonymous memory (allocations, prepacked weight copies) and of file-backed pages (mapped weights,
 * which the kernel can drop and re-read) separately.
 */
export function startRssSampler(intervalMs = 200): { stop(): Promise<{ anonGB: number; fileGB: number; totalGB: number }> } {
  const peaks = new Float64Array(new SharedArrayBuffer(3 * 8));
  const code = `
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const peaks = new Float64Array(workerData);
    const kb = (s, key) => { const m = new RegExp('^' + key + ':\\\\s+(\\\\d+) kB', 'm').exec(s); return m ? Number(m[1]) * 1024 / 1e9 : 0; };
    const tick = () => {
      const s = fs.readFileSync('/proc/self/status', 'utf8');
      const anon = kb(s, 'RssAnon'), file = kb(s, 'RssFile');
      if (anon > peaks[0]) peaks[0] = anon;
      if (file > peaks[1]) peaks[1] = file;
      if (anon + file > peaks[2]) peaks[2] = anon + file;
    };
    tick();
    setInterval(tick, ${intervalMs});`;
  const worker = new Worker(code, { eval: true, workerData: peaks.buffer });
  worker.unref();
  return {
    async stop() {
      await worker.terminate();
      return { anonGB: peaks[0], fileGB: peaks[1], totalGB: peaks[2] };
    },
  };
}
