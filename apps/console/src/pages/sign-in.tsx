import type { SessionView } from "@nbfleet/shared";
/** Trades an API token for a session cookie (`POST /v1/session`); the token is not kept. */
import { useState } from "preact/hooks";
import { api } from "../api/client.js";
import { ErrorText } from "../components/common.js";

export function SignInPage({ onSignedIn }: { onSignedIn: (session: SessionView) => void }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <section class="sign-in">
      <h1>nbfleet</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const { session } = await api<{ session: SessionView }>("/v1/session", {
              method: "POST",
              body: { token: token.trim() },
              noRedirect: true,
            });
            setToken("");
            onSignedIn(session);
          } catch (caught) {
            setError(caught);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Token
          <input
            type="password"
            name="token"
            autoComplete="off"
            required
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
        </label>
        <ErrorText error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}
