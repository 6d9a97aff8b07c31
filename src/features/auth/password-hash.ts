/**
 * Password hashing, stored as PHC strings so each hash carries its own parameters:
 *   $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>   (default; OWASP's minimum for argon2id)
 *   $pbkdf2-sha256$i=100000$<salt>$<hash>           (WebCrypto; for plans with a tight CPU limit)
 * A login that verifies a hash made with other settings than the configured ones re-hashes it.
 *
 * argon2id runs as WebAssembly, one instance per isolate (see argon2id.ts).
 */
import { base64urlDecode, base64urlEncode, randomBytes, timingSafeEqual } from "../../lib/crypto";
import { argon2id } from "./argon2id";

export const ARGON2_PARAMS = { memorySize: 19_456, iterations: 2, parallelism: 1, hashLength: 32 } as const;
export const PBKDF2_ITERATIONS = 100_000;
/** Production workerd throws for PBKDF2 above 100,000 iterations (wrangler dev does not). */
export const WORKERD_PBKDF2_MAX_ITERATIONS = 100_000;

export type HasherName = "argon2id" | "pbkdf2";

/**
 * Stored instead of a hash when an account has no password: no PHC string starts with "!", so
 * nothing verifies against it. An account gets it when its address is claimed by the mailbox's
 * owner after someone else registered it (the squatter's password must stop working).
 */
export const UNUSABLE_PASSWORD_HASH = "!";

export function hasUsablePassword(stored: string): boolean {
  return !stored.startsWith(UNUSABLE_PASSWORD_HASH);
}

export function hasherFromEnv(value: string | undefined): HasherName {
  return value === "pbkdf2" ? "pbkdf2" : "argon2id";
}

const encoder = new TextEncoder();

async function pbkdf2(password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

export async function hashPassword(password: string, hasher: HasherName): Promise<string> {
  const salt = randomBytes(16);
  if (hasher === "pbkdf2") {
    const hash = await pbkdf2(password, salt, PBKDF2_ITERATIONS);
    return `$pbkdf2-sha256$i=${PBKDF2_ITERATIONS}$${base64urlEncode(salt)}$${base64urlEncode(hash)}`;
  }
  const hash = argon2id({ ...ARGON2_PARAMS, password: encoder.encode(password), salt });
  const { memorySize, iterations, parallelism } = ARGON2_PARAMS;
  return `$argon2id$v=19$m=${memorySize},t=${iterations},p=${parallelism}$${phcBase64(salt)}$${phcBase64(hash)}`;
}

/** PHC strings use standard base64 without padding (not base64url). */
function phcBase64(bytes: Uint8Array): string {
  return base64urlEncode(bytes).replace(/-/g, "+").replace(/_/g, "/");
}
function phcBase64Decode(text: string): Uint8Array | null {
  return /^[A-Za-z0-9+/]+$/.test(text) ? base64urlDecode(text.replace(/\+/g, "-").replace(/\//g, "_")) : null;
}

const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function verifyArgon2id(password: string, stored: string): boolean {
  const match = ARGON2ID_PHC.exec(stored);
  const salt = match && phcBase64Decode(match[4] as string);
  const expected = match && phcBase64Decode(match[5] as string);
  if (!match || !salt || !expected) return false;
  try {
    const hash = argon2id({
      password: encoder.encode(password),
      salt,
      memorySize: Number(match[1]),
      iterations: Number(match[2]),
      parallelism: Number(match[3]),
      hashLength: expected.length,
    });
    return timingSafeEqual(phcBase64(hash), match[5] as string);
  } catch {
    return false; // parameters out of range
  }
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith("$argon2")) return verifyArgon2id(password, stored);
  const match = /^\$pbkdf2-sha256\$i=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!match) return false;
  const iterations = Number(match[1]);
  const salt = base64urlDecode(match[2] as string);
  if (!salt || iterations < 1 || iterations > WORKERD_PBKDF2_MAX_ITERATIONS) return false;
  const hash = await pbkdf2(password, salt, iterations);
  return timingSafeEqual(base64urlEncode(hash), match[3] as string);
}

/** True when `stored` was made with other settings than `hasher`'s current ones. */
export function needsRehash(stored: string, hasher: HasherName): boolean {
  if (hasher === "pbkdf2") return !stored.startsWith(`$pbkdf2-sha256$i=${PBKDF2_ITERATIONS}$`);
  const { memorySize, iterations, parallelism } = ARGON2_PARAMS;
  return !stored.startsWith(`$argon2id$v=19$m=${memorySize},t=${iterations},p=${parallelism}$`);
}

const dummyHashes = new Map<HasherName, Promise<string>>();

/**
 * Verifies against a fixed dummy hash so that a login for an unknown account costs what a real
 * one does and the response time does not reveal whether the account exists.
 */
export async function burnPasswordCheck(password: string, hasher: HasherName): Promise<void> {
  let dummy = dummyHashes.get(hasher);
  if (!dummy) {
    dummy = hashPassword("latchkey-dummy-password", hasher);
    dummyHashes.set(hasher, dummy);
  }
  await verifyPassword(password, await dummy);
}

/**
 * Verifies `password` against `stored`; with no account (null) or no usable password, burns the
 * same hashing time and returns false, so the answer's timing tells nothing about the account.
 */
export async function checkPassword(password: string, stored: string | null, hasher: HasherName): Promise<boolean> {
  if (stored === null || !hasUsablePassword(stored)) {
    await burnPasswordCheck(password, hasher);
    return false;
  }
  return verifyPassword(password, stored);
}
