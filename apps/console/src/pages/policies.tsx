import type { IdlePolicyView as IdlePolicy, IdleRule } from "@nbfleet/shared/operations";
/** The idle shutdown policy: everyone reads it, an admin edits it (as JSON rules). */
import { useEffect, useState } from "preact/hooks";
import { api } from "../api/client.js";
import { queryClient, useQuery } from "../api/query.js";
import { ErrorText } from "../components/common.js";
import { when } from "../format.js";
import { can, useSession } from "../session.js";

export function PoliciesPage() {
  const session = useSession();
  const policy = useQuery({
    key: ["policy", "idle"],
    fn: (signal) => api<IdlePolicy>("/v1/policies/idle", { signal }),
  });
  const [enabled, setEnabled] = useState(false);
  const [rules, setRules] = useState("[]");
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (!policy.data) return;
    setEnabled(policy.data.enabled);
    setRules(JSON.stringify(policy.data.rules, null, 2));
  }, [policy.data]);

  if (policy.error) return <ErrorText error={policy.error} />;
  if (!policy.data) return <p>Loading…</p>;
  const admin = can(session, "admin");
  return (
    <section>
      <h1>Idle policy</h1>
      <p class="muted">
        Last changed {when(policy.data.updatedAt)}
        {policy.data.updatedBy ? ` by ${policy.data.updatedBy}` : ""}. The first rule whose labels match a
        machine applies.
      </p>
      {!admin && (
        <>
          <p>Enabled: {policy.data.enabled ? "yes" : "no"}</p>
          <table>
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">Labels</th>
                <th scope="col">Idle minutes</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {policy.data.rules.map((rule, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: rules have no id; their order is their identity
                <tr key={i}>
                  <td>{rule.name ?? `#${i + 1}`}</td>
                  <td>{rule.labels ?? "every machine"}</td>
                  <td>{rule.idleMinutes}</td>
                  <td>{rule.action}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {admin && (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            setSaved(false);
            try {
              let parsed: IdleRule[];
              try {
                parsed = JSON.parse(rules) as IdleRule[];
              } catch (cause) {
                throw new Error(`Rules are not valid JSON: ${(cause as Error).message}`);
              }
              await api<IdlePolicy>("/v1/policies/idle", { method: "PUT", body: { enabled, rules: parsed } });
              setSaved(true);
              void queryClient.invalidateQueries({ queryKey: ["policy", "idle"] });
            } catch (caught) {
              setError(caught);
            }
          }}
        >
          <label>
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
            Enabled
          </label>
          <label class="block">
            Rules (JSON: name, labels, idleMinutes, action "notebook.stop" or "vm.stop")
            <textarea rows={12} value={rules} onInput={(e) => setRules(e.currentTarget.value)} />
          </label>
          <ErrorText error={error} />
          {saved && <output>Saved.</output>}
          <button type="submit">Save policy</button>
        </form>
      )}
    </section>
  );
}
