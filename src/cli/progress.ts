/** A one-line progress bar for a terminal (redrawn in place) or a plain log line per step when not a TTY. */
import type { Writable } from 'node:stream';

export function progressBar(stream: Writable & { isTTY?: boolean; columns?: number }) {
  const tty = !!stream.isTTY;
  let lastLen = 0;
  const fmt = (ms: number) => (ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`);
  const line = (step: number, total: number, etaMs: number) => {
    const width = 30;
    const filled = Math.round((step / total) * width);
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${step}/${total}  eta ${fmt(etaMs)}`;
  };
  return {
    update(step: number, total: number, etaMs: number) {
      const s = line(step, total, etaMs);
      if (tty) {
        stream.write(`\r${s}${' '.repeat(Math.max(0, lastLen - s.length))}`);
        lastLen = s.length;
      } else stream.write(`${s}\n`);
    },
    log(msg: string) {
      if (tty && lastLen) stream.write('\n');
      lastLen = 0;
      stream.write(`${msg}\n`);
    },
    done() {
      if (tty && lastLen) stream.write('\n');
      lastLen = 0;
    },
  };
}
