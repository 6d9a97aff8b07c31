/**
 * argon2id (RFC 9106) on hash-wasm's WebAssembly build of the reference algorithm, as shipped by
 * the argon2-wasm-edge package, driven here instead of by that package's JavaScript so that one
 * instance and its memory serve every hash in the isolate.
 *
 * Why not the package's own driver: it instantiated the argon2 module (and several BLAKE2b ones)
 * afresh for every hash, so each hash grew a brand-new WebAssembly memory to 19 MiB and dropped
 * the previous one for the garbage collector. That cost about a third of the hash's CPU in workerd
 * (the kernel maps in and zeroes 19 MiB of fresh pages: ~9,700 minor page faults per hash, against
 * a handful here), and it is the likely cause of the bimodal login CPU seen before (66–90 ms in
 * most benchmark rounds, ~125 ms in others): the dropped memories are unmapped only when V8
 * collects, so a round's cost depended on when the collector ran. Here the memory grows once per
 * isolate and is reused. Measurements: README, "Password hashing: which argon2id, and why not scrypt".
 *
 * workerd forbids compiling WebAssembly from bytes at run time ("Wasm code generation disallowed
 * by embedder"), so the modules come in as `.wasm` imports, which wrangler (and vitest's workerd)
 * pre-compile; the scripts that load this code into Node compile the same files (scripts/lib/wasm-modules.mjs).
 */
import argon2Module from "argon2-wasm-edge/wasm/argon2.wasm";
import blake2bModule from "argon2-wasm-edge/wasm/blake2b.wasm";

export interface Argon2idInput {
  password: Uint8Array;
  salt: Uint8Array;
  /** Memory in KiB (RFC 9106's m). */
  memorySize: number;
  /** Passes over the memory (t). */
  iterations: number;
  /** Lanes (p). */
  parallelism: number;
  /** Tag length in bytes (T). */
  hashLength: number;
  /** RFC 9106's optional secret value K and associated data X (only the test vectors use them). */
  secret?: Uint8Array;
  associatedData?: Uint8Array;
}

/** hash-wasm's C exports (src/argon2.c, src/blake2b.c in argon2-wasm-edge). */
interface Argon2Exports {
  memory: WebAssembly.Memory;
  /** Where the block memory starts; the first call reserves it (512 KiB). */
  Hash_GetBuffer(): number;
  /** Grows the block memory to at least `bytes`. Only ever call it to grow: asked for less than
   * it holds, its unsigned arithmetic wraps and it tries to grow by ~4 GiB (and fails). */
  Hash_SetMemorySize(bytes: number): number;
  /** Fills `memorySize` KiB of blocks from the first two of each lane and the parameter block after them. */
  Hash_Calculate(length: number, memorySize: number): void;
}
interface Blake2bExports {
  memory: WebAssembly.Memory;
  /** The input buffer (BLAKE2B_BUFFER bytes); the digest is written back to its start. */
  Hash_GetBuffer(): number;
  /** Starts a hash whose digest is `bits` long (no key). */
  Hash_Init(bits: number): void;
  /** Absorbs the buffer's first `length` bytes. */
  Hash_Update(length: number): void;
  Hash_Final(): void;
}

/** hash-wasm's input buffer size (MAX_HEAP): longer inputs (a long password) go in chunks. */
const BLAKE2B_BUFFER = 16 * 1024;
const ARGON2_VERSION = 0x13;
const ARGON2ID_TYPE = 2;
const BLOCK = 1024;

let argon2: { exports: Argon2Exports; blocks: number; zeroed: boolean } | null = null;
let blake2b: { exports: Blake2bExports; buffer: number } | null = null;

/** One instance of each module per isolate, made on first use (instantiation of a compiled module is allowed at run time). */
function instances() {
  if (!argon2) {
    const exports = new WebAssembly.Instance(argon2Module, {}).exports as unknown as Argon2Exports;
    argon2 = { exports, blocks: exports.Hash_GetBuffer(), zeroed: true };
  }
  if (!blake2b) {
    const exports = new WebAssembly.Instance(blake2bModule, {}).exports as unknown as Blake2bExports;
    blake2b = { exports, buffer: exports.Hash_GetBuffer() };
  }
  return { argon2, blake2b };
}

function le32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, true);
  return out;
}

/** BLAKE2b with a `length`-byte digest (1–64) of the concatenated parts. */
function blake(parts: Uint8Array[], length: number): Uint8Array {
  const { exports, buffer } = instances().blake2b;
  const view = new Uint8Array(exports.memory.buffer);
  exports.Hash_Init(length * 8);
  for (const part of parts) {
    for (let offset = 0; offset < part.length; offset += BLAKE2B_BUFFER) {
      const chunk = part.subarray(offset, offset + BLAKE2B_BUFFER);
      view.set(chunk, buffer);
      exports.Hash_Update(chunk.length);
    }
  }
  exports.Hash_Final();
  return view.slice(buffer, buffer + length);
}

/** RFC 9106 §3.3, the variable-length hash function H'. */
function hPrime(input: Uint8Array[], length: number): Uint8Array {
  if (length <= 64) return blake([le32(length), ...input], length);
  const out = new Uint8Array(length);
  const r = Math.ceil(length / 32) - 2;
  let v = blake([le32(length), ...input], 64);
  out.set(v.subarray(0, 32), 0);
  for (let i = 1; i < r; i++) {
    v = blake([v], 64);
    out.set(v.subarray(0, 32), i * 32);
  }
  out.set(blake([v], length - 32 * r), r * 32);
  return out;
}

/** The raw argon2id tag. Synchronous: one hash at a time per isolate, so one memory suffices. */
export function argon2id(input: Argon2idInput): Uint8Array {
  const { password, salt, memorySize, iterations, parallelism, hashLength } = input;
  const secret = input.secret ?? new Uint8Array(0);
  const associatedData = input.associatedData ?? new Uint8Array(0);
  const valid =
    Number.isInteger(parallelism) &&
    parallelism >= 1 &&
    parallelism <= 255 &&
    Number.isInteger(memorySize) &&
    memorySize >= 8 * parallelism &&
    Number.isInteger(iterations) &&
    iterations >= 1 &&
    Number.isInteger(hashLength) &&
    hashLength >= 4 &&
    salt.length >= 8;
  if (!valid) throw new RangeError("argon2id: parameters out of range");

  const { argon2: engine } = instances();
  const { exports, blocks } = engine;
  // The blocks, then one block holding the parameters for Hash_Calculate.
  if (
    exports.memory.buffer.byteLength < blocks + memorySize * BLOCK + BLOCK &&
    exports.Hash_SetMemorySize(memorySize * BLOCK + BLOCK) !== 0
  ) {
    throw new RangeError("argon2id: cannot grow the WebAssembly memory");
  }
  const parameters = new Uint8Array(24);
  const view = new DataView(parameters.buffer);
  [parallelism, hashLength, memorySize, iterations, ARGON2_VERSION, ARGON2ID_TYPE].forEach((value, i) => {
    view.setUint32(i * 4, value, true);
  });

  // The C code XORs every new block into what the memory holds, first pass included, so it needs
  // zeroed blocks: a fresh memory is, and every hash zeroes what it used when it is done (which
  // also wipes the password-derived blocks). Only after a hash that threw is the memory zeroed first.
  const used = memorySize * BLOCK + BLOCK;
  if (!engine.zeroed) new Uint8Array(exports.memory.buffer, blocks).fill(0);
  engine.zeroed = false;

  // RFC 9106 §3.2 steps 1–4: H0, then the first two blocks of every lane.
  const h0 = blake(
    [
      parameters,
      le32(password.length),
      password,
      le32(salt.length),
      salt,
      le32(secret.length),
      secret,
      le32(associatedData.length),
      associatedData,
    ],
    64,
  );
  const memory = new Uint8Array(exports.memory.buffer);
  const laneLength = Math.floor(memorySize / (parallelism * 4)) * 4;
  for (let lane = 0; lane < parallelism; lane++) {
    for (const column of [0, 1]) {
      memory.set(hPrime([h0, le32(column), le32(lane)], BLOCK), blocks + (lane * laneLength + column) * BLOCK);
    }
  }
  memory.set(parameters, blocks + memorySize * BLOCK);
  exports.Hash_Calculate(0, memorySize);
  // Steps 5–7 ran in WebAssembly, which leaves the XOR of the lanes' last blocks in the first block.
  const final = new Uint8Array(exports.memory.buffer, blocks, BLOCK).slice();
  new Uint8Array(exports.memory.buffer, blocks, used).fill(0);
  engine.zeroed = true;
  return hPrime([final], hashLength);
}
