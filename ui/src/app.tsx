import { useEffect, useState } from "preact/hooks";
import { ApiContext, NodeContext, signIn, type Api, type NodeSelf } from "./api.js";
import { Login, tokenStorageKey } from "./login.js";
import { routeHref, useRoute, type Route } from "./router.js";
import { NodesView } from "./views/nodes.js";
import { RunView } from "./views/run.js";
import { TaskView } from "./views/task.js";
import { TasksView } from "./views/tasks.js";

type Session = { readonly kind: "checking" } | { readonly kind: "signed-out"; readonly notice?: string } | { readonly kind: "signed-in"; readonly api: Api; readonly node: NodeSelf };

/**
 * The console: signs in (with the token kept for this tab, or none when the node needs
 * none), then shows the navigation and the view the location hash names.
 */
export function App() {
  const [session, setSession] = useState<Session>({ kind: "checking" });
  useEffect(() => {
    // A token kept from earlier in this tab is tried first; so is none, for a node without one.
    const kept = sessionStorage.getItem(tokenStorageKey) ?? "";
    signIn(kept).then(
      (outcome) => {
        if (outcome.kind === "ok") setSession({ kind: "signed-in", api: outcome.api, node: outcome.node });
        else setSession(kept === "" ? { kind: "signed-out" } : { kind: "signed-out", notice: outcome.message });
      },
      (error: unknown) => setSession({ kind: "signed-out", notice: `The node did not answer: ${(error as Error).message}` }),
    );
  }, []);
  if (session.kind === "checking") return <p class="loading">Connecting to the node…</p>;
  if (session.kind === "signed-out") return <Login onSignedIn={(api, node) => setSession({ kind: "signed-in", api, node })} {...(session.notice === undefined ? {} : { notice: session.notice })} />;
  const signOut = (): void => {
    sessionStorage.removeItem(tokenStorageKey);
    setSession({ kind: "signed-out" });
  };
  return (
    <ApiContext.Provider value={session.api}>
      <NodeContext.Provider value={session.node}>
        <Shell node={session.node} onSignOut={signOut} />
      </NodeContext.Provider>
    </ApiContext.Provider>
  );
}

const sections: readonly { readonly route: Route; readonly title: string; readonly matches: (route: Route) => boolean }[] = [
  { route: { view: "tasks" }, title: "Tasks", matches: (route) => route.view === "tasks" || route.view === "task" },
  { route: { view: "run" }, title: "Run", matches: (route) => route.view === "run" },
  { route: { view: "nodes" }, title: "Nodes", matches: (route) => route.view === "nodes" },
];

function Shell(props: { readonly node: NodeSelf; readonly onSignOut: () => void }) {
  const route = useRoute();
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/tasks">
          drce
        </a>
        <nav aria-label="Sections">
          {sections.map((section) => (
            <a href={routeHref(section.route)} aria-current={section.matches(route) ? "page" : undefined}>
              {section.title}
            </a>
          ))}
        </nav>
        <span class="node-name" title={`drce ${props.node.version}`}>
          {props.node.role === "manager" ? "manager" : "node"} <strong>{props.node.name}</strong>
        </span>
        <button type="button" class="quiet" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <main class="view" id="view">
        {route.view === "tasks" && <TasksView />}
        {route.view === "task" && <TaskView key={route.id} id={route.id} />}
        {route.view === "run" && <RunView />}
        {route.view === "nodes" && <NodesView />}
      </main>
    </div>
  );
}
