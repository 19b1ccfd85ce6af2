/** A VM's name as the API takes it (the operations selector names VMs too). */
import { Type } from "@sinclair/typebox";

/** DNS-label-like, so a name is safe as a host name, a directory and a resource name. */
export const VmName = Type.String({
  pattern: "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
  description: "lowercase letters, digits and '-', starting with a letter, at most 63 characters",
});
