/**
 * Notebook passwords: generated (or given), hashed in Jupyter's own argon2 format
 * (`argon2:$argon2id$v=19$m=10240,t=10,p=8$…`, what notebook's `passwd()` makes), and only
 * the hash is kept or sent. The plaintext is returned to the caller once.
 */
import { randomInt } from "node:crypto";
import { type Algorithm, hash } from "@node-rs/argon2";

// Algorithm is an ambient const enum, which isolatedModules cannot read; 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 10240, timeCost: 10, parallelism: 8 };
// No look-alikes (0/O, 1/l/I), so a password read off a screen types correctly.
const ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

export function generatePassword(length = 20): string {
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

export async function hashNotebookPassword(plain: string): Promise<string> {
  return `argon2:${await hash(plain, OPTIONS)}`;
}
