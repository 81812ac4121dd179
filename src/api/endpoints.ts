/**
 * Routing of the served endpoints (declared in contract/endpoints.ts): every id a client may submit to, and the
 * `{owner}/{app}` part that status, result and cancel URLs name (fal's client drops the endpoint's sub-path there).
 */
import { ENDPOINTS, type EndpointDef } from '../contract/endpoints.ts';

export { ENDPOINTS, type EndpointDef } from '../contract/endpoints.ts';

/** Every id a client may submit to (canonical ids and aliases) → canonical endpoint. */
export const ROUTE_IDS: ReadonlyMap<string, EndpointDef> = new Map(ENDPOINTS.flatMap((e) => [e.id, ...e.aliases].map((id) => [id, e] as const)));

/** `{owner}/{app}` of an endpoint id: its first two path segments. */
export function appOf(routeId: string): string {
  return routeId.split('/').slice(0, 2).join('/');
}

/** The apps whose request URLs we serve (`/queue/{owner}/{app}/requests/...`). */
export const APPS: ReadonlySet<string> = new Set([...ROUTE_IDS.keys()].map(appOf));
