import { useState } from "preact/hooks";
import { errorText } from "../api/client.js";

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      onClick={async () => {
        await navigator.clipboard.writeText(text);
        setCopied(true);
      }}
    >
      {copied ? "Copied" : label}
    </button>
  );
}

/** A secret shown once (a new password or token), with a copy button. */
export function ShownOnce({ title, secret }: { title: string; secret: string }) {
  return (
    <output class="shown-once">
      <p>{title} (shown only once):</p>
      <code class="secret">{secret}</code> <CopyButton text={secret} />
    </output>
  );
}
