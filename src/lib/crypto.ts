/**
 * Small WebCrypto helpers shared by tokens, codes and password hashing. No `node:crypto`:
 * everything here runs in workerd and in Node alike (the operator scripts reuse it).
 */

const encoder = new TextEncoder();

export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length));
}

export function base64urlEncode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes base64url; returns null for anything that is not canonical base64url. */
export function base64urlDecode(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

const hmacKeys = new Map<string, Promise<CryptoKey>>();

/** HMAC-SHA256 of `message` under `secret`, hex encoded. The imported key is cached per isolate. */
export async function hmacSha256Hex(secret: string, message: string): Promise<string> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    hmacKeys.set(secret, key);
  }
  return toHex(await crypto.subtle.sign("HMAC", await key, encoder.encode(message)));
}

/** Compares two strings in time that depends only on their length, not on where they differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  let diff = left.length ^ right.length;
  for (let i = 0; i < Math.max(left.length, right.length); i++) diff |= (left[i] ?? 0) ^ (right[i] ?? 0);
  return diff === 0;
}

/**
 * `length` decimal digits, each uniform: bytes >= 250 are rejected and redrawn, because
 * 256 is not a multiple of 10 and `byte % 10` would favour 0–5.
 */
export function randomDigits(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 250 && out.length < length) out += String(byte % 10);
    }
  }
  return out;
}

/** A random, URL-safe identifier (128 bits). */
export function randomId(): string {
  return base64urlEncode(randomBytes(16));
}

/** AES-GCM's nonce (random per message) and tag sizes, in bytes. */
const SEAL_IV_BYTES = 12;
const SEAL_TAG_BYTES = 16;

/** One AES-256 key per (label, secret): SHA-256 of both, so each use of a secret has a key of its own. */
const sealKeys = new Map<string, Promise<CryptoKey>>();
function sealKey(secret: string, label: string): Promise<CryptoKey> {
  const id = `${label}\n${secret}`;
  let key = sealKeys.get(id);
  if (!key) {
    key = crypto.subtle
      .digest("SHA-256", encoder.encode(id))
      .then((raw) => crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]));
    sealKeys.set(id, key);
  }
  return key;
}

/**
 * Encrypts and authenticates the UTF-8 of `plain` with AES-256-GCM under a key derived from `secret` for
 * `label`, bound to `context` (the additional data: the sealed value opens only for the same
 * context). base64url of nonce ‖ ciphertext ‖ tag.
 */
export async function seal(secret: string, label: string, context: string, plain: string): Promise<string> {
  const iv = randomBytes(SEAL_IV_BYTES);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: encoder.encode(context) },
      await sealKey(secret, label),
      encoder.encode(plain),
    ),
  );
  const bytes = new Uint8Array(SEAL_IV_BYTES + sealed.length);
  bytes.set(iv);
  bytes.set(sealed, SEAL_IV_BYTES);
  return base64urlEncode(bytes);
}

/** Opens what `seal` made with the same secret, label and context; null for anything else (altered, forged, moved, not ours). */
export async function unseal(secret: string, label: string, context: string, sealed: string): Promise<Uint8Array | null> {
  const bytes = base64urlDecode(sealed);
  if (!bytes || bytes.length <= SEAL_IV_BYTES + SEAL_TAG_BYTES) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.slice(0, SEAL_IV_BYTES), additionalData: encoder.encode(context) },
      await sealKey(secret, label),
      bytes.slice(SEAL_IV_BYTES),
    );
    return new Uint8Array(plain);
  } catch {
    return null;
  }
}
