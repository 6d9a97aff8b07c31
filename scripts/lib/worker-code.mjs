// Loads the worker's own TypeScript (password hashing and policy, identifier rules, the config
// definitions) into Node, so the operator scripts apply exactly what the worker applies: same
// argon2id parameters, same password policy, same email normalisation, same config bounds.
// The source is bundled in memory with esbuild (the bundler wrangler itself uses; no extra
// dependency) because it imports .txt and .wasm files, which Node cannot load (wasm-modules.mjs).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { wasmModules } from "./wasm-modules.mjs";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const ENTRY = `
export { ARGON2_PARAMS, hashPassword, hasherFromEnv, verifyPassword } from "./src/features/auth/password-hash";
export { checkPasswordPolicy } from "./src/features/auth/password-policy";
export { usernameProblem } from "./src/features/auth/username-policy";
export { EmailSchema, UsernameSchema } from "./src/features/auth/auth.schemas";
export { CONFIG_KEYS, CONFIG_KEY_NAMES, isConfigKey, parseConfigValue, signInsEndedBy } from "./src/config/config.definitions";
export { randomId } from "./src/lib/crypto";
`;

let loaded;

/** The worker modules the scripts need, bundled once per process. */
export function loadWorkerCode() {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    const esbuild = createRequire(require.resolve("wrangler/package.json"))("esbuild");
    const result = await esbuild.build({
      stdin: { contents: ENTRY, resolveDir: ROOT, loader: "ts", sourcefile: "worker-code.ts" },
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      write: false,
      loader: { ".txt": "text" },
      plugins: [wasmModules],
      logLevel: "error",
    });
    const code = Buffer.from(result.outputFiles[0].text).toString("base64");
    return import(`data:text/javascript;base64,${code}`);
  })();
  return loaded;
}
