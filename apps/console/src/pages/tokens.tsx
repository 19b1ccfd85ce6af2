/** API tokens (admin): create with a role (the token is shown once), list, revoke. */
import type { Role, TokenView } from "@nbfleet/shared";
import { useState } from "preact/hooks";
import { api } from "../api/client.js";
import { queryClient, useQuery } from "../api/query.js";
import { ErrorText, ShownOnce } from "../components/common.js";
import { when } from "../format.js";

const ROLES = ["viewer", "operator", "admin"] as const satisfies readonly Role[];

export function TokensPage() {
  const tokens = useQuery({
    key: ["tokens"],
    fn: (signal) => api<{ items: TokenView[] }>("/v1/tokens", { signal }),
  });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["tokens"] });

  return (
    <section>
      <h1>Tokens</h1>
      <form
        class="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            const result = await api<TokenView & { token: string }>("/v1/tokens", {
              method: "POST",
              body: { name: name.trim(), role },
            });
            setCreated({ name: result.name, token: result.token });
            setName("");
            void refresh();
          } catch (caught) {
            setError(caught);
          }
        }}
      >
        <label>
          Token name
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Create token</button>
      </form>
      <ErrorText error={error} />
      {created && <ShownOnce title={`Token ${created.name}`} secret={created.token} />}
      <ErrorText error={tokens.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Id</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {tokens.data?.items.map((token) => (
            <tr key={token.id}>
              <td>{token.name}</td>
              <td>{token.role}</td>
              <td class="mono">{token.id}</td>
              <td>{when(token.createdAt)}</td>
              <td>
                <button
                  type="button"
                  aria-label={`Revoke ${token.name}`}
                  onClick={async () => {
                    if (!confirm(`Revoke the token ${token.name}? Its sessions end too.`)) return;
                    setError(null);
                    try {
                      await api<void>(`/v1/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
                      void refresh();
                    } catch (caught) {
                      setError(caught);
                    }
                  }}
                >
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
