/**
 * Hands argon2-wasm-edge its WebAssembly as modules compiled at deploy time: workerd refuses
 * `WebAssembly.compile` of bytes at run time ("Wasm code generation disallowed by embedder"),
 * while wrangler turns a `.wasm` import into a pre-compiled `WebAssembly.Module`.
 * Imported once, for its side effect, by the worker entry.
 */
import { setWASMModules } from "argon2-wasm-edge";
import argon2WASM from "argon2-wasm-edge/wasm/argon2.wasm";
import blake2bWASM from "argon2-wasm-edge/wasm/blake2b.wasm";

setWASMModules({ argon2WASM, blake2bWASM });
