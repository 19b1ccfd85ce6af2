import type { SessionView } from "@nbfleet/shared";
/** The shell: who is signed in, the navigation (mirroring the role) and the routes. */
import { useEffect, useState } from "preact/hooks";
import { Link, Route, Switch, useLocation } from "wouter-preact";
import { ApiFailure, SIGN_IN_PATH, api } from "./api/client.js";
import { queryClient } from "./api/query.js";
import { ErrorText } from "./components/common.js";
import { EventsPage } from "./pages/events.js";
import { FleetPage } from "./pages/fleet.js";
import { MachinePage } from "./pages/machine.js";
import { OperationPage, OperationsPage } from "./pages/operations.js";
import { PoliciesPage } from "./pages/policies.js";
import { SignInPage } from "./pages/sign-in.js";
import { TokensPage } from "./pages/tokens.js";
import { SessionContext, can } from "./session.js";

type Who =
  | { state: "loading" }
  | { state: "out" }
  | { state: "in"; session: SessionView }
  | { state: "error"; error: unknown };

export function App() {
  const [who, setWho] = useState<Who>({ state: "loading" });
  const [location, navigate] = useLocation();

  useEffect(() => {
    api<{ session: SessionView }>("/v1/session", { noRedirect: true })
      .then(({ session }) => setWho({ state: "in", session }))
      .catch((error) =>
        setWho(
          error instanceof ApiFailure && error.status === 401 ? { state: "out" } : { state: "error", error },
        ),
      );
  }, []);

  if (who.state === "loading") return <p class="loading">Loading…</p>;
  if (who.state === "error") return <ErrorText error={who.error} />;
  if (who.state === "out" || location === SIGN_IN_PATH) {
    if (who.state === "in") {
      navigate("/", { replace: true });
      return null;
    }
    return (
      <SignInPage
        onSignedIn={(session) => {
          setWho({ state: "in", session });
          const next = new URLSearchParams(window.location.search).get("next");
          // Only a path of this site: never an absolute or protocol-relative URL.
          navigate(next?.startsWith("/") && !next.startsWith("//") ? next : "/", { replace: true });
        }}
      />
    );
  }

  const session = who.session;
  const signOut = async () => {
    try {
      await api<void>("/v1/session", { method: "DELETE" });
    } finally {
      queryClient.clear();
      setWho({ state: "out" });
      navigate(SIGN_IN_PATH, { replace: true });
    }
  };

  return (
    <SessionContext.Provider value={session}>
      <header class="top">
        <nav aria-label="Main">
          <Link href="/" class="brand">
            nbfleet
          </Link>
          <Link href="/">Fleet</Link>
          <Link href="/operations">Operations</Link>
          <Link href="/events">Events</Link>
          {can(session, "admin") && <Link href="/tokens">Tokens</Link>}
          <Link href="/policies">Idle policy</Link>
        </nav>
        <div class="who">
          <span>
            {session.tokenName} ({session.role})
          </span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main>
        <Switch>
          <Route path="/">
            <FleetPage />
          </Route>
          <Route path="/vms/:name">
            {(params) => <MachinePage name={decodeURIComponent(params.name)} />}
          </Route>
          <Route path="/operations">
            <OperationsPage />
          </Route>
          <Route path="/operations/:id">
            {(params) => <OperationPage id={decodeURIComponent(params.id)} />}
          </Route>
          <Route path="/events">
            <EventsPage />
          </Route>
          <Route path="/tokens">
            {can(session, "admin") ? <TokensPage /> : <p>Tokens are for admins.</p>}
          </Route>
          <Route path="/policies">
            <PoliciesPage />
          </Route>
          <Route>
            <p>No such page.</p>
          </Route>
        </Switch>
      </main>
    </SessionContext.Provider>
  );
}
