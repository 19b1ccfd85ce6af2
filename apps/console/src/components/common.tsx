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

/** A notebook's URL as a link that opens apart from the console, or a dash. */
export function NotebookLink({ url }: { url: string | null }) {
  return url ? (
    <a href={url} target="_blank" rel="noopener noreferrer">
      {url}
    </a>
  ) : (
    <>—</>
  );
}

/** A table's header row: one column header per title. */
export function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((title) => (
          <th key={title} scope="col">
            {title}
          </th>
        ))}
      </tr>
    </thead>
  );
}
