/** Operator roles, each allowed what the ones below it are: viewer < operator < admin. */
import { ROLES, type Role } from "../store/tokens-repo.js";

export { ROLES, type Role };

export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}
