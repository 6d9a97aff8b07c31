/**
 * The password-hashing implementations the benchmark compares (README, "Hashing and signing"):
 * Latchkey's own argon2id driver, the ones it was measured against, and native scrypt.
 * Only the floor worker imports this; the worker ships just the first.
 *
 * All argon2id rows use Latchkey's parameters (m = 19 MiB, t = 2, p = 1, 32-byte tag), so they
 * differ only in how fast they compute the same function. The scrypt rows use OWASP's listed
 * minimum (N = 2^17, r = 8, p = 1: 128 MiB), the equivalent it lists for less memory (N = 2^13,
 * r = 8, p = 10: 8 MiB) and better-auth's default (N = 2^14, r = 16, p = 1: 32 MiB), through
 * workerd's native node:crypto (this worker's wrangler.toml sets nodejs_compat).
 */
import { scrypt } from "node:crypto";
import { argon2Verify, argon2id as edgeArgon2id, setWASMModules } from "argon2-wasm-edge";
import edgeArgon2Module from "argon2-wasm-edge/wasm/argon2.wasm";
import edgeBlake2bModule from "argon2-wasm-edge/wasm/blake2b.wasm";
import noSimdModule from "argon2id/dist/no-simd.wasm";
import simdModule from "argon2id/dist/simd.wasm";
import setupOpenpgp from "argon2id/lib/setup.js";
import { ARGON2_PARAMS, hashPassword, verifyPassword } from "../../src/features/auth/password-hash";
import { timingSafeEqual } from "../../src/lib/crypto";

export interface HashCandidate {
  hash(password: string): Promise<unknown>;
  verify(password: string, stored: unknown): Promise<boolean>;
}

const encoder = new TextEncoder();
const salt = () => crypto.getRandomValues(new Uint8Array(16));
const hexOf = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

setWASMModules({ argon2WASM: edgeArgon2Module, blake2bWASM: edgeBlake2bModule });

type OpenpgpHash = Awaited<ReturnType<typeof setupOpenpgp>>;
/** OpenPGP.js's argon2id: the block loop in JavaScript, the compression function G in WebAssembly. */
function openpgp(module: WebAssembly.Module): HashCandidate {
  let compute: Promise<OpenpgpHash> | null = null;
  const load = (imports: WebAssembly.Imports) => WebAssembly.instantiate(module, imports).then((instance) => ({ instance, module }));
  const run = async (password: string, s: Uint8Array) => {
    compute ??= setupOpenpgp(load, load);
    return (await compute)({
      password: encoder.encode(password),
      salt: s,
      parallelism: ARGON2_PARAMS.parallelism,
      passes: ARGON2_PARAMS.iterations,
      memorySize: ARGON2_PARAMS.memorySize,
      tagLength: ARGON2_PARAMS.hashLength,
    });
  };
  return {
    async hash(password) {
      const s = salt();
      return { salt: s, tag: hexOf(await run(password, s)) };
    },
    async verify(password, stored) {
      const { salt: s, tag } = stored as { salt: Uint8Array; tag: string };
      return timingSafeEqual(hexOf(await run(password, s)), tag);
    },
  };
}

function nativeScrypt(N: number, r: number, p: number): HashCandidate {
  const run = (password: string, s: Uint8Array) =>
    new Promise<string>((resolve, reject) =>
      scrypt(password, s, 32, { N, r, p, maxmem: 2 * 128 * N * r * p }, (error, key) =>
        error ? reject(error) : resolve(key.toString("hex")),
      ),
    );
  return {
    async hash(password) {
      const s = salt();
      return { salt: s, tag: await run(password, s) };
    },
    async verify(password, stored) {
      const { salt: s, tag } = stored as { salt: Uint8Array; tag: string };
      return timingSafeEqual(await run(password, s), tag);
    },
  };
}

export const HASH_CANDIDATES: Record<string, HashCandidate> = {
  // What the worker runs: src/features/auth/argon2id.ts through password-hash.ts (PHC strings).
  latchkey: { hash: (pw) => hashPassword(pw, "argon2id"), verify: (pw, stored) => verifyPassword(pw, stored as string) },
  // The same WebAssembly driven by argon2-wasm-edge's own JavaScript (the worker's until now).
  "argon2-wasm-edge": {
    hash: (pw) => edgeArgon2id({ ...ARGON2_PARAMS, password: pw, salt: salt(), outputType: "encoded" }),
    verify: (pw, stored) => argon2Verify({ password: pw, hash: stored as string }),
  },
  "openpgp-simd": openpgp(simdModule),
  "openpgp-no-simd": openpgp(noSimdModule),
  "scrypt-owasp": nativeScrypt(2 ** 17, 8, 1),
  // The last of OWASP's equivalent scrypt settings: the same work in 8 MiB (ten lanes in turn).
  "scrypt-owasp-8mib": nativeScrypt(2 ** 13, 8, 10),
  "scrypt-better-auth": nativeScrypt(2 ** 14, 16, 1),
};
