/**
 * The served endpoint ids, their fal aliases, and the `{owner}/{app}` part that status, result
 * and cancel URLs name (fal's client drops the endpoint's sub-path there).
 */
import type { Task } from './schemas.ts';

export interface EndpointDef {
  /** canonical id, e.g. "sdxl/image-to-image" */
  id: string;
  task: Task;
  summary: string;
}

export const ENDPOINTS: readonly EndpointDef[] = [
  { id: 'sdxl/image-to-image', task: 'image-to-image', summary: 'Transform an input image by a prompt with a strength' },
  { id: 'sdxl/text-to-image', task: 'text-to-image', summary: 'Generate an image from a prompt' },
];

/** Every id a client may submit to (canonical ids and aliases) → canonical endpoint. */
export const ROUTE_IDS: ReadonlyMap<string, EndpointDef> = new Map([
  ['sdxl/image-to-image', ENDPOINTS[0]!],
  ['fal-ai/fast-sdxl/image-to-image', ENDPOINTS[0]!],
  ['sdxl/text-to-image', ENDPOINTS[1]!],
  ['fal-ai/fast-sdxl', ENDPOINTS[1]!],
]);

/** `{owner}/{app}` of an endpoint id: its first two path segments. */
export function appOf(routeId: string): string {
  return routeId.split('/').slice(0, 2).join('/');
}

/** The apps whose request URLs we serve (`/queue/{owner}/{app}/requests/...`). */
export const APPS: ReadonlySet<string> = new Set([...ROUTE_IDS.keys()].map(appOf));
