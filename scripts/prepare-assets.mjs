// Copies Swagger UI's browser files from node_modules into public/docs-assets/vendor, where
// wrangler serves them as static assets for the /docs page. Runs on `npm install` (postinstall).
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const source = dirname(require.resolve("swagger-ui-dist/package.json"));
const target = new URL("../public/docs-assets/vendor/", import.meta.url).pathname;
mkdirSync(target, { recursive: true });
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) copyFileSync(join(source, file), join(target, file));
