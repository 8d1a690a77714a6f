import { setMaxListeners } from "node:events";

/*
 * The signals that the calls of one fan-out's nodes listen to. Node.js warns of a leak once an
 * AbortSignal has more than ten listeners, and each call to a node adds one to the signal it
 * is given until it ends: a fan-out to eleven nodes or more has that many at once, none of
 * them a leak. These signals take any number (one per node call in flight, each removed at
 * its call's end).
 */

/** A controller whose signal every node call of a fan-out may listen to. */
export function fanOutController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/**
 * A signal for every node call of a fan-out that follows `source`, the caller's signal, with
 * a single listener there, however many nodes there are. `dispose` removes that one.
 */
export function fanOutSignal(source: AbortSignal): { readonly signal: AbortSignal; dispose(): void } {
  const controller = fanOutController();
  const follow = (): void => controller.abort(source.reason);
  if (source.aborted) follow();
  else source.addEventListener("abort", follow, { once: true });
  return { signal: controller.signal, dispose: () => source.removeEventListener("abort", follow) };
}
