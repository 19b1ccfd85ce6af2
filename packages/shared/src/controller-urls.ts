/**
 * Controller URLs as an agent is given them: one, or several it tries in turn (controller
 * replicas, with or without a load balancer in front). The agent's settings, the guest
 * bootstrap and the controller's settings take a list in this one shape; each side wraps the
 * problems in its own error.
 */
import { Type } from "@sinclair/typebox";

export const MAX_CONTROLLER_URLS = 16;

/** One entry: http(s):// or ws(s)://, no whitespace and no comma (a list is written comma-separated). */
export const ControllerUrlSchema = Type.String({
  pattern: "^(https?|wss?)://[^\\s,]+$",
  minLength: 1,
  maxLength: 2048,
});

export const ControllerUrlListSchema = Type.Array(ControllerUrlSchema, {
  minItems: 1,
  maxItems: MAX_CONTROLLER_URLS,
});

const SCHEMES = ["https:", "wss:", "http:", "ws:"];

/** Why `url` cannot be a controller URL, or null when it can. */
export function controllerUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL`;
  }
  if (!SCHEMES.includes(parsed.protocol)) {
    return `${JSON.stringify(url)} must start with https://, wss://, http:// or ws://`;
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    // Not echoed whole: the part refused may be a password.
    return `${parsed.protocol}//${parsed.host}${parsed.pathname} must not carry credentials, a query or a fragment (the agent's credential travels in a header)`;
  }
  if (/[\s,]/.test(url)) return `${JSON.stringify(url)} must not contain whitespace or a comma`;
  return null;
}

/**
 * Every problem of a list, each naming the entry (1-based) and what was wrong: a bad URL, one
 * listed twice (the same endpoint however spelled), too many, none.
 */
export function controllerUrlListProblems(urls: readonly string[]): string[] {
  if (urls.length === 0) return ["no controller URL given"];
  const problems: string[] = [];
  if (urls.length > MAX_CONTROLLER_URLS) {
    problems.push(`at most ${MAX_CONTROLLER_URLS} controller URLs, got ${urls.length}`);
  }
  const seen = new Map<string, number>();
  urls.forEach((url, index) => {
    const entry = `controller URL ${index + 1}`;
    if (url.trim() === "") {
      problems.push(`${entry} is empty`);
      return;
    }
    const problem = controllerUrlProblem(url);
    if (problem) {
      problems.push(`${entry}: ${problem}`);
      return;
    }
    const key = endpointKey(url);
    const first = seen.get(key);
    if (first !== undefined)
      problems.push(`${entry} (${url}) is the same endpoint as controller URL ${first}`);
    else seen.set(key, index + 1);
  });
  return problems;
}

/** `"https://a, https://b"` → `["https://a", "https://b"]`; an empty entry stays (and is a problem). */
export function splitControllerUrls(text: string): string[] {
  return text.split(",").map((part) => part.trim());
}

/** http and ws (https and wss) reach the same endpoint; a trailing slash changes nothing. */
function endpointKey(url: string): string {
  const parsed = new URL(url);
  const secure = parsed.protocol === "https:" || parsed.protocol === "wss:";
  return `${secure ? "wss" : "ws"}://${parsed.host}${parsed.pathname.replace(/\/+$/, "")}`;
}
