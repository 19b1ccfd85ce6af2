/**
 * Takes a password from a stream (the agent's stdin) without it touching disk or logs, and
 * makes new passwords a person can type.
 */
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import { AgentError } from "../errors.js";
import { MAX_PASSWORD_LENGTH } from "./hash.js";

export interface ReadPasswordOptions {
  timeoutMs?: number;
}

/**
 * Reads the first line (without its line ending) and stops reading; anything after the line
 * is pushed back onto the stream. A stream that ends without a newline gives what it sent.
 */
export function readPassword(
  stream: NodeJS.ReadableStream,
  options: ReadPasswordOptions = {},
): Promise<string> {
  const { timeoutMs = 30_000 } = options;
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder("utf8");
    let buffered = "";
    const timer = setTimeout(() => {
      finish(
        new AgentError(
          "NBF_PASSWORD_INVALID",
          `no password arrived on stdin within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}; pipe it in, e.g. \`printf '%s\\n' "$PASSWORD" | nbfleet-agent …\``,
          { timeoutMs },
        ),
      );
    }, timeoutMs);

    const finish = (result: string | Error) => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.pause();
      if (typeof result !== "string") {
        reject(result);
        return;
      }
      const line = result.replace(/\r$/, "");
      if (line.length === 0) {
        reject(new AgentError("NBF_PASSWORD_INVALID", "an empty password was given on stdin", { length: 0 }));
      } else if (line.length > MAX_PASSWORD_LENGTH) {
        reject(
          new AgentError(
            "NBF_PASSWORD_INVALID",
            `the password on stdin is longer than ${MAX_PASSWORD_LENGTH} characters`,
            { length: line.length },
          ),
        );
      } else {
        resolve(line);
      }
    };
    const onData = (chunk: Buffer | string) => {
      buffered += typeof chunk === "string" ? chunk : decoder.write(chunk);
      const newline = buffered.indexOf("\n");
      if (newline >= 0) {
        const rest = buffered.slice(newline + 1);
        finish(buffered.slice(0, newline));
        // Only after our listener is gone, or the stream would hand the rest straight back.
        if (rest.length > 0) stream.unshift(Buffer.from(rest, "utf8"));
      } else if (buffered.length > MAX_PASSWORD_LENGTH + 1) {
        finish(buffered);
      }
    };
    const onEnd = () => finish(buffered + decoder.end());
    const onError = (error: Error) =>
      finish(new AgentError("NBF_PASSWORD_INVALID", `stdin could not be read: ${error.message}`, {}));

    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onError);
    stream.resume();
  });
}

// Crockford's base32 without I, L, O, U: nothing that reads as another character.
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const GROUPS = 4;
const GROUP_LENGTH = 5;

/** 4 groups of 5 base32 characters (100 random bits), e.g. `k3v9q-7hx2m-…`. */
export function generatePassword(): string {
  const bytes = randomBytes(GROUPS * GROUP_LENGTH);
  // 256 is a multiple of 32, so masking to 5 bits keeps every character equally likely.
  const chars = [...bytes].map((b) => ALPHABET[b & 31]);
  const groups: string[] = [];
  for (let i = 0; i < GROUPS; i++)
    groups.push(chars.slice(i * GROUP_LENGTH, (i + 1) * GROUP_LENGTH).join(""));
  return groups.join("-");
}
