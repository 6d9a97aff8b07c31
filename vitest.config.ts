import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { generateSigningJwk, randomSecret } from "./scripts/lib/keys.mjs";

/**
 * Tests run inside workerd with the bindings declared in wrangler.toml (local D1, KV, R2,
 * Queues). Secrets that .dev.vars would hold are generated fresh for each run; the migrations
 * in migrations/ are handed to test/setup.ts, which applies them.
 */
export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  const keys = [await generateSigningJwk(), await generateSigningJwk()];
  return {
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
      setupFiles: ["./test/setup.ts"],
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  };
});
