/**
 * The VM states and overall health values as plain lists, free of TypeBox, so the web console
 * can use them without bundling the schemas. api.ts and health.ts build their schemas from these.
 */
export const VM_STATES = [
  "provisioning",
  "running",
  "starting",
  "stopping",
  "stopped",
  "restarting",
  "deleting",
  "failed",
] as const;

export const OVERALL_HEALTHS = ["healthy", "degraded", "unhealthy", "unknown"] as const;
