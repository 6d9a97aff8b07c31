import { applyD1Migrations, env } from "cloudflare:test";

// Idempotent: applies only the migrations this file's database has not seen yet.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
