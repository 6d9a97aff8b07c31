import { describe, expect, it } from "vitest";
import { argon2id } from "../../src/features/auth/argon2id";
import {
  ARGON2_PARAMS,
  hasherFromEnv,
  hashPassword,
  needsRehash,
  PBKDF2_ITERATIONS,
  verifyPassword,
  WORKERD_PBKDF2_MAX_ITERATIONS,
} from "../../src/features/auth/password-hash";

/** Cheap argon2id settings for the driver's own tests (64 KiB, one pass), on RFC 9106's password and salt. */
const SMALL_ARGON2ID = {
  password: new Uint8Array(32).fill(1),
  salt: new Uint8Array(16).fill(2),
  memorySize: 64,
  iterations: 1,
  parallelism: 1,
  hashLength: 32,
};
const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

const PASSWORD = "Tr0ub4dor&3-horse";

describe("password hashing", () => {
  it("never configures more PBKDF2 iterations than production workerd allows", () => {
    // Production workerd throws above 100,000 iterations while `wrangler dev` does not, so only
    // this test stands between a raised constant and every login failing in production.
    expect(WORKERD_PBKDF2_MAX_ITERATIONS).toBe(100_000);
    expect(PBKDF2_ITERATIONS).toBeLessThanOrEqual(WORKERD_PBKDF2_MAX_ITERATIONS);
    expect(PBKDF2_ITERATIONS).toBeGreaterThanOrEqual(100_000);
  });

  it("uses OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1)", () => {
    expect(ARGON2_PARAMS).toMatchObject({ memorySize: 19_456, iterations: 2, parallelism: 1 });
  });

  it("round-trips argon2id as a PHC string carrying its parameters", async () => {
    const hash = await hashPassword(PASSWORD, "argon2id");
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(await verifyPassword(PASSWORD, hash)).toBe(true);
    expect(await verifyPassword(`${PASSWORD}x`, hash)).toBe(false);
    expect(await verifyPassword("", hash)).toBe(false);
  });

  it("computes RFC 9106's argon2id test vector (section 5.3: secret and associated data, 4 lanes)", () => {
    // The vector's password (32 × 0x01), salt (16 × 0x02) and tag length are SMALL_ARGON2ID's.
    const tag = argon2id({
      ...SMALL_ARGON2ID,
      secret: new Uint8Array(8).fill(3),
      associatedData: new Uint8Array(12).fill(4),
      memorySize: 32,
      iterations: 3,
      parallelism: 4,
    });
    expect(hex(tag)).toBe("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
  });

  it("gives the same tag on every call, whatever the call before it used (the instance memory is reused)", () => {
    const small = SMALL_ARGON2ID;
    const first = hex(argon2id(small));
    argon2id({ ...small, memorySize: 256, parallelism: 2, iterations: 2 });
    expect(hex(argon2id(small))).toBe(first);
    expect(() => argon2id({ ...small, memorySize: 4 })).toThrow(RangeError);
    expect(hex(argon2id(small))).toBe(first);
  });

  it("hashes inputs longer than the WebAssembly BLAKE2b buffer (16 KiB) like the reference does", () => {
    // Reference: OpenPGP.js's argon2id package, whose BLAKE2b is plain JavaScript.
    const tag = argon2id({ ...SMALL_ARGON2ID, password: new TextEncoder().encode("long-password-".repeat(3000)) });
    expect(hex(tag)).toBe("f44f0c6a4eeaf0aa49c87ad19e6274ced6ed73f3160869e6f7b3c47a5e3a779a");
  });

  it("verifies a hash made by the previous implementation (argon2-wasm-edge's own driver)", async () => {
    // Made with argon2-wasm-edge 1.0.23's argon2id({ outputType: "encoded" }), salt "latchkey-vector-salt".
    const stored = "$argon2id$v=19$m=19456,t=2,p=1$bGF0Y2hrZXktdmVjdG9yLXNhbHQ$mHU4Y8HYREXbS83qp6nbXJe1qCimBoxynhTlrnn0RRM";
    expect(await verifyPassword("correct horse battery staple", stored)).toBe(true);
    expect(await verifyPassword("correct horse battery stapler", stored)).toBe(false);
    expect(needsRehash(stored, "argon2id")).toBe(false);
  });

  it("round-trips PBKDF2-SHA256 as a PHC string carrying its parameters", async () => {
    const hash = await hashPassword(PASSWORD, "pbkdf2");
    expect(hash).toMatch(/^\$pbkdf2-sha256\$i=100000\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword(PASSWORD, hash)).toBe(true);
    expect(await verifyPassword(`${PASSWORD}x`, hash)).toBe(false);
  });

  it("salts every hash", async () => {
    const [a, b] = await Promise.all([hashPassword(PASSWORD, "argon2id"), hashPassword(PASSWORD, "argon2id")]);
    expect(a).not.toBe(b);
    const [c, d] = await Promise.all([hashPassword(PASSWORD, "pbkdf2"), hashPassword(PASSWORD, "pbkdf2")]);
    expect(c).not.toBe(d);
  });

  it("refuses malformed hashes and PBKDF2 hashes above the workerd cap instead of throwing", async () => {
    const pbkdf2 = await hashPassword(PASSWORD, "pbkdf2");
    for (const stored of [
      "",
      "plaintext",
      "$argon2id$garbage",
      "$pbkdf2-sha256$i=abc$x$y",
      pbkdf2.replace("i=100000", "i=100001"),
      pbkdf2.replace("i=100000", "i=0"),
    ]) {
      expect(await verifyPassword(PASSWORD, stored), stored).toBe(false);
    }
  });

  it("knows when a stored hash needs re-hashing", async () => {
    const argon = await hashPassword(PASSWORD, "argon2id");
    const pbkdf2 = await hashPassword(PASSWORD, "pbkdf2");
    expect(needsRehash(argon, "argon2id")).toBe(false);
    expect(needsRehash(pbkdf2, "pbkdf2")).toBe(false);
    expect(needsRehash(pbkdf2, "argon2id")).toBe(true);
    expect(needsRehash(argon, "pbkdf2")).toBe(true);
    expect(needsRehash(argon.replace("m=19456,t=2", "m=4096,t=3"), "argon2id")).toBe(true);
    expect(needsRehash(pbkdf2.replace("i=100000", "i=10000"), "pbkdf2")).toBe(true);
    expect(needsRehash("$argon2i$v=19$m=19456,t=2,p=1$abc$def", "argon2id")).toBe(true);
  });

  it("selects the hasher from PASSWORD_HASHER, defaulting to argon2id", () => {
    expect(hasherFromEnv("pbkdf2")).toBe("pbkdf2");
    expect(hasherFromEnv("argon2id")).toBe("argon2id");
    expect(hasherFromEnv(undefined)).toBe("argon2id");
    expect(hasherFromEnv("md5")).toBe("argon2id");
  });
});
