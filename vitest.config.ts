import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { configDefaults, defineConfig } from "vitest/config";
import { generateSigningJwk, randomSecret } from "./scripts/lib/keys.mjs";
import { OFFLINE_DEFAULTS } from "./scripts/lib/offline.mjs";

// Tests run offline: no telemetry, and no download of the `Request.cf` sample by miniflare.
Object.assign(process.env, OFFLINE_DEFAULTS);

/**
 * Tests run inside workerd with the bindings declared in wrangler.toml (local D1, KV, R2,
 * Queues). Secrets that .dev.vars would hold are generated fresh for each run; the migrations
 * in migrations/ are handed to test/setup.ts, which applies them. A second project runs the
 * operator scripts' tests (test/scripts/) in plain Node.
 */
export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  const keys = [await generateSigningJwk(), await generateSigningJwk()];
  const workers = {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            JWT_KEYS: JSON.stringify({ keys }),
            OTP_SECRET: randomSecret(),
            MAIL_API_KEY: "test-mail-key",
          },
        },
      }),
    ],
    test: {
      name: "workers",
      include: ["test/**/*.test.ts"],
      exclude: [...configDefaults.exclude, "test/scripts/**", "test/e2e/**"],
      setupFiles: ["./test/setup.ts"],
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  };
  // The operator scripts are Node programs that drive wrangler against a temporary local state.
  const scripts = {
    test: {
      name: "scripts",
      include: ["test/scripts/**/*.test.ts"],
      environment: "node",
      testTimeout: 120_000,
      hookTimeout: 120_000,
    },
  };
  // What a client sees through the real dev server (`scripts/dev.mjs`, i.e. `wrangler dev`): each
  // file starts its own server on free ports with its own temporary state (test/e2e/dev-server.ts).
  const e2e = {
    test: {
      name: "e2e",
      include: ["test/e2e/**/*.test.ts"],
      environment: "node",
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  };
  return { test: { projects: [workers, scripts, e2e] } };
});
