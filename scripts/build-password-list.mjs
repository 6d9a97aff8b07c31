// Regenerates src/features/auth/common-passwords.txt from zxcvbn-ts's maintained, frequency-ranked
// list (@zxcvbn-ts/language-common, built from leaked-password corpora). Like Django's
// CommonPasswordValidator we take the 20,000 most common; entries shorter than the minimum length
// are dropped because the length rule already rejects them, which keeps the bundle small.
// Run: node scripts/build-password-list.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const TOP = 20_000;
const MIN_LENGTH = 8; // keep in step with PASSWORD_MIN_LENGTH in src/features/auth/password-policy.ts
const require = createRequire(import.meta.url);
const path = require.resolve("@zxcvbn-ts/language-common/package.json").replace("package.json", "src/passwords.json");
const ranked = JSON.parse(readFileSync(path, "utf8"));
const kept = [...new Set(ranked.slice(0, TOP).map((p) => p.normalize("NFKC").toLowerCase()))].filter((p) => p.length >= MIN_LENGTH);
writeFileSync(new URL("../src/features/auth/common-passwords.txt", import.meta.url), `${kept.join("\n")}\n`);
console.log(`wrote ${kept.length} passwords (top ${TOP}, length >= ${MIN_LENGTH})`);
