import { verify } from "@node-rs/argon2";
import { describe, expect, it } from "vitest";
import { generatePassword, hashNotebookPassword } from "./password.js";

describe("notebook passwords", () => {
  it("hashes in Jupyter's argon2 format with notebook's parameters", async () => {
    const hash = await hashNotebookPassword("correct horse");
    expect(hash).toMatch(/^argon2:\$argon2id\$v=19\$m=10240,t=10,p=8\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await verify(hash.slice("argon2:".length), "correct horse")).toBe(true);
    expect(await verify(hash.slice("argon2:".length), "wrong")).toBe(false);
  });
  it("generates distinct passwords without look-alike characters", () => {
    const passwords = new Set(Array.from({ length: 50 }, () => generatePassword()));
    expect(passwords.size).toBe(50);
    for (const p of passwords) expect(p).toMatch(/^[a-km-zA-HJ-NP-Z2-9]{20}$/);
  });
});
