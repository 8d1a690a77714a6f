import { useState } from "preact/hooks";
import { signIn, type Api, type NodeSelf } from "./api.js";

/** Where the token is kept for the browser tab's life: asked once per tab, gone when it closes. */
export const tokenStorageKey = "drce-token";

/** Props of {@link Login}. */
export interface LoginProps {
  /** Called with the node's clients once the node accepted the token. */
  readonly onSignedIn: (api: Api, node: NodeSelf) => void;
  /** A sentence to show above the form (why the console asks again). */
  readonly notice?: string;
}

/**
 * Asks for the node's token, tries it with `GetNodeInfo`, and keeps it in sessionStorage once
 * the node accepts it. A refused token is said so, and the field keeps it for correcting.
 */
export function Login(props: LoginProps) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(props.notice ?? "");
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      const outcome = await signIn(token.trim());
      if (outcome.kind === "refused") {
        setError(outcome.message);
        return;
      }
      sessionStorage.setItem(tokenStorageKey, token.trim());
      props.onSignedIn(outcome.api, outcome.node);
    } catch (failure) {
      setError(`The node did not answer: ${(failure as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={(event) => void submit(event)} aria-labelledby="login-title">
        <h1 id="login-title">drce console</h1>
        <p>This node's API is guarded by a token (its <code>--token</code>, or <code>DRCE_TOKEN</code>).</p>
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" autofocus value={token} onInput={(event) => setToken((event.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error !== "" && (
          <p class="error" role="alert" id="login-error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
