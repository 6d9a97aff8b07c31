// First: sets the environment wrangler reads when it loads (the import below loads it).
import "./test/tooling-env.ts";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { configDefaults, defineConfig } from "vitest/config";
import { generateSigningJwk, randomSecret } from "./scripts/lib/keys.mjs";

/**
 * Tests run inside workerd with the bindings declared in wrangler.toml (local D1, KV, R2,
 * Queues). Secrets that .dev.vars would hold are generated fresh for each run; the migrations
 * in migrations/ are handed to test/setup.ts, which applies them. A second project runs the
 * operator scripts' tests (test/scripts/) in plain Node; a third (test/e2e/) drives the real
 * `npm run dev` server over HTTP with fetch and curl.
 *
 * Output: a passing test's console output is dropped (`silent: "passed-only"`), so expected
 * errors and development mail lines do not bury the results; a failing test still shows its logs.
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
      exclude: [...configDefaults.exclude, "test/scripts/**", "test/e2e/**", "test/smoke/**", "test/**/*.node.test.ts"],
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
  // What a client sees through the real dev server (`npm run dev`, i.e. `wrangler dev`): one server
  // (global-setup.ts) for the files that share it; files that need their own start one
  // (test/e2e/dev-server.ts). Each on free ports with its own temporary state.
  const e2e = {
    test: {
      name: "e2e",
      include: ["test/e2e/**/*.test.ts"],
      environment: "node",
      globalSetup: ["./test/e2e/global-setup.ts"],
      fileParallelism: false,
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  };
  // The store conformance suite against a real libSQL database (a temporary file) in Node.
  const storeLibsql = {
    test: {
      name: "store-libsql",
      include: ["test/**/*.node.test.ts"],
      environment: "node",
      testTimeout: 30_000,
    },
  };

  // The production bundle (`wrangler deploy --minify`) in workerd through Miniflare's API, with a
  // stub mail provider: what deploys is what is tested (test/smoke/production-bundle.test.ts).
  const smoke = {
    test: {
      name: "smoke",
      include: ["test/smoke/**/*.test.ts"],
      environment: "node",
      testTimeout: 60_000,
      hookTimeout: 240_000,
    },
  };
  return { test: { projects: [workers, scripts, e2e, storeLibsql, smoke], silent: "passed-only" as const } };
});
