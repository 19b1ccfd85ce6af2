import type { OverallHealth } from "@nbfleet/shared";

/** A coloured dot with the status as text: colour is never the only signal. */
export function Health({ status }: { status: OverallHealth }) {
  return (
    <span class={`health health-${status}`}>
      <span class="dot" aria-hidden="true" />
      {status}
    </span>
  );
}

export function CheckStatus({ status }: { status: "pass" | "warn" | "fail" }) {
  const tone = status === "pass" ? "healthy" : status === "warn" ? "degraded" : "unhealthy";
  return (
    <span class={`health health-${tone}`}>
      <span class="dot" aria-hidden="true" />
      {status}
    </span>
  );
}
