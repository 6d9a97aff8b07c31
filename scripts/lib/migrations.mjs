// The migrations in migrations/ as `wrangler d1 migrations apply` runs them: each file in name
// order, its statements split at drizzle-kit's `--> statement-breakpoint` lines. For the tools that
// apply them without wrangler (the benchmark, the smoke test, the libSQL tests).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Every migration file's statements, one array per file, in order. */
export function migrationBatches(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((file) =>
      readFileSync(join(dir, file), "utf8")
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter(Boolean),
    );
}
