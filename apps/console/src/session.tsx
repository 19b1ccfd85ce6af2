/** Who is signed in (`GET /v1/session`), shared with every page so they can mirror the role. */
import type { Role } from "@nbfleet/shared";
import type { SessionView } from "@nbfleet/shared";
import { createContext } from "preact";
import { useContext } from "preact/hooks";

export const SessionContext = createContext<SessionView | null>(null);

export function useSession(): SessionView | null {
  return useContext(SessionContext);
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function can(session: SessionView | null, role: Role): boolean {
  return session !== null && RANK[session.role] >= RANK[role];
}
