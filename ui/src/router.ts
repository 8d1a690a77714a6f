import { useEffect, useState } from "preact/hooks";

/** A place in the console, as its hash names it. */
export type Route =
  | { readonly view: "tasks" }
  | { readonly view: "task"; readonly id: string }
  | { readonly view: "run" }
  | { readonly view: "nodes" };

/** Reads a location hash (`#/tasks`, `#/tasks/<id>`, `#/run`, `#/nodes`); anything else is the task list. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "");
  const task = /^\/tasks\/(.+)$/.exec(path);
  if (task?.[1] !== undefined) return { view: "task", id: decodeURIComponent(task[1]) };
  if (path === "/run") return { view: "run" };
  if (path === "/nodes") return { view: "nodes" };
  return { view: "tasks" };
}

/** The hash of a route, for links (`href={routeHref(...)}`). */
export function routeHref(route: Route): string {
  return route.view === "task" ? `#/tasks/${encodeURIComponent(route.id)}` : `#/${route.view}`;
}

/** Goes to a route, as following a link would (the back button returns). */
export function navigate(route: Route): void {
  location.hash = routeHref(route);
}

/** The current route, following the hash as it changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = (): void => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}
