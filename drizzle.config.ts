import { defineConfig } from "drizzle-kit";

// `npm run db:generate` turns changes to src/store/schema.ts into a new SQL file in migrations/,
// which `wrangler d1 migrations apply` (npm run dev) and the test setup apply.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/store/schema.ts",
  out: "./migrations",
});
