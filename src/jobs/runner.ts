/**
 * The runner takes queued jobs one at a time, runs them on the engine (progress and engine logs become job logs,
 * cancellation reaches the engine through an AbortSignal between steps), delivers the images and records metrics.
 * stop() finishes the running job within a grace period, or stops it and puts it back in the queue.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Engine, GenerateRequest } from '../contract/types.ts';
import { AtelierError, isAtelierError } from '../contract/errors.ts';
import { decodeImage } from '../images/codec.ts';
import type { AdapterFiles } from './adapter-sources.ts';
import { deliverImages } from './outputs.ts';
import type { AdapterSource, Job, JobError, JobLog, JobQueue } from './queue.ts';

/** Where the runner reports what it measures (implemented by api/metrics.ts's Prometheus metrics). */
export interface RunnerMetrics {
  /** a job left the queue after waiting `seconds` */
  jobWaited(endpoint: string, seconds: number): void;
  /** one denoising step took `seconds` */
  stepTook(seconds: number): void;
  /** a job run ended after `seconds` in `outcome` (completed, failed, cancelled, requeued) */
  jobFinished(endpoint: string, seconds: number, outcome: string): void;
}

export interface RunnerOptions {
  queue: JobQueue;
  engine: Engine;
  outputsDir: string;
  metrics: RunnerMetrics;
  log: FastifyBaseLogger;
  /** LoRA / embedding sources → local files (URLs fetched into the download cache, pinned until release()) */
  adapterFiles: Pick<AdapterFiles, 'materialize'>;
  /** fallback wake-up when no event arrives, ms */
  pollMs?: number;
}

interface Current {
  job: Job;
  ac: AbortController;
  reason?: 'cancel' | 'shutdown';
  done: Promise<void>;
}

export class Runner {
  private stopping = false;
  private loop?: Promise<void>;
  private current?: Current;
  private wake?: () => void;
  private unsubscribe?: () => void;

  constructor(private readonly o: RunnerOptions) {}

  start(): void {
    this.unsubscribe = this.o.queue.subscribe((e) => {
      if (e.type === 'added' || (e.type === 'state' && e.state === 'queued')) this.wake?.();
      if (e.type === 'cancel-requested' && this.current?.job.id === e.id) this.abortCurrent('cancel');
    });
    this.loop = this.run();
  }

  /** The id of the job being run, if any. */
  get runningJobId(): string | undefined {
    return this.current?.job.id;
  }

  /** Stop taking jobs; let the running one finish within `graceMs`, else stop it and re-queue it. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const cur = this.current;
    if (cur) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        cur.done.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) this.abortCurrent('shutdown');
    }
    await this.loop;
    this.unsubscribe?.();
  }

  private abortCurrent(reason: 'cancel' | 'shutdown'): void {
    const cur = this.current;
    if (!cur || cur.reason) return;
    cur.reason = reason;
    cur.ac.abort(new AtelierError(reason === 'cancel' ? 'CANCELLED' : 'SHUTTING_DOWN'));
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let job: Job | undefined;
      try {
        job = await this.o.queue.claim();
      } catch (e) {
        this.o.log.error({ err: e }, 'could not claim a job');
      }
      if (!job) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.o.pollMs ?? 1000);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
        continue;
      }
      let finish!: () => void;
      const done = new Promise<void>((r) => (finish = r));
      this.current = { job, ac: new AbortController(), done };
      if (job.cancelRequested) this.abortCurrent('cancel');
      try {
        await this.execute(this.current);
      } catch (e) {
        this.o.log.error({ err: e, jobId: job.id }, 'runner failed to record a job outcome');
      } finally {
        this.current = undefined;
        finish();
      }
    }
  }

  private async execute(cur: Current): Promise<void> {
    const { job, ac } = cur;
    const { queue, metrics } = this.o;
    const log = this.o.log.child({ jobId: job.id, reqId: job.input.httpRequestId });
    const say = (message: string, level: JobLog['level'] = 'INFO') =>
      queue.appendLog(job.id, { message, level, timestamp: new Date().toISOString() }).catch((e) => log.warn({ err: e }, 'log append failed'));
    const started = performance.now();
    metrics.jobWaited(job.endpoint, Math.max(0, ((job.startedAt ?? Date.now()) - job.createdAt) / 1000));
    log.info({ attempt: job.attempts, endpoint: job.endpoint }, 'job started');
    await say(`started (attempt ${job.attempts})`);
    let outcome: string;
    const leases: { release(): void }[] = [];
    try {
      const request = await this.buildRequest(job, ac.signal, say, leases);
      let lastElapsed = 0;
      const result = await this.o.engine.generate(request, {
        signal: ac.signal,
        onProgress: (e) => {
          const stepS = Math.max(0, (e.elapsedMs - lastElapsed) / 1000);
          lastElapsed = e.elapsedMs;
          metrics.stepTook(stepS);
          void say(`step ${e.step}/${e.total} (${stepS.toFixed(3)} s)`);
        },
        onLog: (line) => void say(line),
      });
      if (ac.signal.aborted) throw ac.signal.reason;
      const images = await deliverImages(result.images, job, this.o.outputsDir);
      const output = {
        images,
        seed: result.seed,
        // No safety checker is installed yet: null = "not checked", never a claim that the image is safe.
        has_nsfw_concepts: images.map(() => null),
        prompt: request.prompt,
        timings: result.timings,
      };
      await say(`completed in ${((performance.now() - started) / 1000).toFixed(2)} s`);
      await queue.complete(job.id, output);
      outcome = 'completed';
    } catch (e) {
      outcome = await this.recordFailure(cur, e, say, log);
    } finally {
      for (const l of leases) l.release();
    }
    const seconds = (performance.now() - started) / 1000;
    metrics.jobFinished(job.endpoint, seconds, outcome);
    log.info({ outcome, seconds: Number(seconds.toFixed(3)) }, 'job finished');
  }

  private async recordFailure(cur: Current, e: unknown, say: (m: string, l?: JobLog['level']) => Promise<unknown>, log: FastifyBaseLogger): Promise<string> {
    const { job } = cur;
    if (cur.reason === 'cancel') {
      await say('cancelled', 'WARN');
      await this.o.queue.fail(job.id, { code: 'CANCELLED', message: 'cancelled while running' }, 'cancelled');
      return 'cancelled';
    }
    if (cur.reason === 'shutdown') {
      if (job.mode === 'sync') {
        await this.o.queue.fail(job.id, { code: 'SHUTTING_DOWN', message: 'the server shut down while running this request; submit it again' });
        return 'failed';
      }
      await say('the server is shutting down; re-queued to run again after restart', 'WARN');
      await this.o.queue.requeue(job.id);
      return 'requeued';
    }
    const err: JobError = isAtelierError(e)
      ? e.toJSON()
      : { code: 'INTERNAL', message: `internal error: ${(e as Error)?.message ?? String(e)}` };
    if (!isAtelierError(e) || e.status >= 500) log.error({ err: e }, 'job failed');
    else log.info({ code: err.code, field: err.field }, `job failed: ${err.message}`);
    await say(`failed: ${err.code}: ${err.message}`, 'ERROR');
    await this.o.queue.fail(job.id, err);
    return 'failed';
  }

  private async buildRequest(
    job: Job,
    signal: AbortSignal,
    say: (m: string, l?: JobLog['level']) => Promise<unknown>,
    leases: { release(): void }[],
  ): Promise<GenerateRequest> {
    const { input } = job;
    const bytes = job.endpoint === 'sdxl/image-to-image' ? await this.o.queue.inputImage(job.id) : undefined;
    if (job.endpoint === 'sdxl/image-to-image' && !bytes) {
      throw new AtelierError('INTERNAL', `the stored input image of request ${job.id} is missing`);
    }
    const image = bytes ? await decodeImage(bytes, { maxPixels: Number.MAX_SAFE_INTEGER, field: 'image_url' }) : undefined;
    const local = async (src: AdapterSource, field: string): Promise<string> => {
      if (src.kind === 'url') await say(`fetching ${field} ${src.source.slice(0, 120)}`);
      const file = await this.o.adapterFiles.materialize(src, field, signal);
      leases.push(file);
      return file.path;
    };
    const loras = [];
    for (const [i, l] of input.loras.entries()) loras.push({ file: await local(l, `loras.${i}.path`), scale: l.scale });
    const embeddings = [];
    for (const [i, em] of input.embeddings.entries()) embeddings.push({ file: await local(em, `embeddings.${i}.path`), tokens: em.tokens });
    if (input.output.enableSafetyChecker) {
      await say('safety checker: not installed on this server; images were NOT checked (has_nsfw_concepts = null)', 'WARN');
    }
    if (input.output.expandPrompt) await say('expand_prompt: not available yet; the prompt was used exactly as given', 'WARN');
    return { ...input.request, ...(image ? { image } : {}), loras, embeddings };
  }
}
