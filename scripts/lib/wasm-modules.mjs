// An esbuild plugin for the scripts that load the worker's TypeScript into Node (worker-code.mjs,
// client-generate.mjs): `import m from "x.wasm"` gives the compiled WebAssembly.Module that
// wrangler would pre-compile for workerd, compiled here from the same file (Node, unlike workerd,
// allows compiling WebAssembly at run time).
import { readFileSync } from "node:fs";

export const wasmModules = {
  name: "wasm-modules",
  setup(build) {
    build.onLoad({ filter: /\.wasm$/ }, ({ path }) => ({
      contents: `export default new WebAssembly.Module(Uint8Array.from(atob("${readFileSync(path).toString("base64")}"), (c) => c.charCodeAt(0)));`,
      loader: "js",
    }));
  },
};
