#!/usr/bin/env node
// `npm run bench:ab -- DIR DIR ...`: the same request against builds of two or more working trees,
// in one workerd, alternating, to see whether a change to the request path costs or saves CPU.
//
// `npm run bench` compares an endpoint with its floors; this compares builds of the app with each
// other, which is how the README's variant measurements were made (a middleware taken out, two
// merged, a check moved). Each DIR is a checkout of Latchkey, for example made with
// `git worktree add ../variant HEAD` and then edited. Runs of 3 s per build are alternated for 6
// rounds (A B C A B C …), so a machine that slows down or speeds up during the comparison affects
// every build alike, and the medians are reported. On this 2-core machine two builds' medians that
// differ by less than about 20 µs of CPU per request are not told apart.
//
//   npm run bench:ab -- [--path /health] [--rounds 6] [--duration 3] [--connections 10] DIR DIR ...
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { Miniflare } from "miniflare";
import { generateSigningJwk, randomSecret } from "../scripts/lib/keys.mjs";
import { offlineEnv } from "../scripts/lib/offline.mjs";
import { applyMigrations } from "./lib/seed.mjs";
import { buildWorker, compatibilityDate, findWorkerdPid, localRuntime, topLevelVars, workerdCpuUs } from "./lib/workerd.mjs";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    path: { type: "string", default: "/health" },
    rounds: { type: "string", default: "6" },
    duration: { type: "string", default: "3" },
    connections: { type: "string", default: "10" },
  },
});
const dirs = positionals.map((dir) => resolve(dir));
if (dirs.length < 2) {
  console.error("usage: npm run bench:ab -- [--path /health] [--rounds 6] [--duration 3] DIR DIR ...");
  process.exit(2);
}
const notCheckouts = dirs.filter((dir) => !existsSync(join(dir, "wrangler.toml")));
if (notCheckouts.length > 0) {
  console.error(`not a Latchkey checkout (no wrangler.toml): ${notCheckouts.join(", ")}`);
  process.exit(2);
}

const tmp = mkdtempSync(join(os.tmpdir(), "latchkey-ab-"));
const env = { ...offlineEnv(), WRANGLER_LOG_PATH: join(tmp, "wrangler-logs") };
console.log(`building ${dirs.length} workers (wrangler deploy --dry-run --minify)`);
const builds = dirs.map((dir, i) =>
  buildWorker({ cwd: dir, configPath: join(dir, "wrangler.toml"), outdir: join(tmp, `build-${i}`), env }),
);

const toml = readFileSync(join(dirs[0], "wrangler.toml"), "utf8");
const jwk = await generateSigningJwk();
const bindings = { ...topLevelVars(toml), MAIL_DRIVER: "console", JWT_KEYS: JSON.stringify({ keys: [jwk] }), OTP_SECRET: randomSecret() };
const mf = new Miniflare({
  ...localRuntime(tmp),
  handleRuntimeStdio(stdout, stderr) {
    // Every build logs a line per request: read and dropped, so the pipe never fills.
    for (const stream of [stdout, stderr]) stream.on("data", () => {});
  },
  // One D1 database, bucket and namespace for all builds (same ids), migrated once.
  workers: builds.map((build, i) => ({
    name: `build-${i}`,
    ...build,
    compatibilityDate: compatibilityDate(toml),
    d1Databases: { DB: "ab-db" },
    r2Buckets: { AVATARS: "ab-avatars" },
    kvNamespaces: { CONFIG: "ab-config" },
    queueProducers: { MAIL_QUEUE: "latchkey-mail" },
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
    bindings,
  })),
});
await mf.ready;
await applyMigrations(await mf.getD1Database("DB", "build-0"), join(dirs[0], "migrations"));
const urls = await Promise.all(builds.map(async (_, i) => (await mf.unsafeGetDirectURL(`build-${i}`)).origin));
const workerdPid = findWorkerdPid();
if (workerdPid === null) console.log("workerd's CPU time cannot be read here (no /proc): only req/s is reported");

const load = (url, duration) =>
  new Promise((done, fail) =>
    autocannon({ url: `${url}${args.path}`, connections: Number(args.connections), duration }, (error, result) =>
      error ? fail(error) : done(result),
    ),
  );

// One unmeasured second each: isolate start-up and first-request work are not what is compared.
for (const [i, url] of urls.entries()) {
  const warm = await load(url, 1);
  if (warm.non2xx > 0) console.log(`${dirs[i]}: ${warm.non2xx} of ${warm.requests.total} answers were not 2xx`);
}
const results = urls.map(() => []);
for (let round = 1; round <= Number(args.rounds); round++) {
  for (const [i, url] of urls.entries()) {
    const cpu0 = workerdCpuUs(workerdPid);
    const run = await load(url, Number(args.duration));
    const cpu = cpu0 === null ? null : (workerdCpuUs(workerdPid) - cpu0) / run.requests.total;
    results[i].push({ cpu, rps: run.requests.average, errors: run.non2xx + run.errors });
  }
  console.log(`round ${round}/${args.rounds} done`);
}
await mf.dispose();

const median = (xs) => {
  const sorted = xs.filter((x) => x !== null).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
};
console.log(`\nGET ${args.path}, ${args.rounds} alternating rounds of ${args.duration} s, ${args.connections} connections (medians)`);
console.log("| build | CPU µs/req | each round | req/s | non-2xx |\n|---|---:|---|---:|---:|");
for (const [i, dir] of dirs.entries()) {
  const rows = results[i];
  const cpu = median(rows.map((r) => r.cpu));
  console.log(
    `| ${dir} | ${cpu === null ? "—" : cpu.toFixed(0)} | ${rows.map((r) => (r.cpu === null ? "—" : r.cpu.toFixed(0))).join(" ")} | ${median(rows.map((r) => r.rps)).toFixed(0)} | ${rows.reduce((n, r) => n + r.errors, 0)} |`,
  );
}
