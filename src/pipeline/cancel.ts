import { AtelierError } from '../contract/errors.ts';

/** Throw CANCELLED when the job's signal has fired: called between steps, prompts and text-encoder chunks. */
export function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AtelierError('CANCELLED', 'the job was cancelled');
}
