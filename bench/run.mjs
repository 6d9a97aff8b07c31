#!/usr/bin/env node
// `npm run bench`: Latchkey's hot endpoints against their floors (issue 7).
//
// Builds the real worker and the floor worker (bench/floor) with wrangler's production bundler,
// runs both in one workerd through Miniflare's API (not `wrangler dev`, whose proxy caps any
// worker at about 2,000 req/s here), each on its own direct loopback socket, with local D1, KV
// and R2. Seeds 10,000 users, then drives each endpoint and its floor with autocannon from this
// process (workerd is a separate process), alternating endpoint and floor runs for each round,
// and reports medians. Server CPU per request comes from workerd's own CPU time in /proc.
//
//   npm run bench -- [--duration S] [--connections N] [--rounds N] [--users N] [--only a,b] [--hash]
//
// --only picks endpoints by a word of their name (me, refresh, login, profiles, statuses, avatar,
// health) and seeds only what those need. The hashing/signing table runs at the end of a full
// run, with --only only when --hash is given too; --hash alone runs nothing else.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import autocannon from "autocannon";
import { importJWK, SignJWT } from "jose";
import { Miniflare } from "miniflare";
import { generateSigningJwk, randomSecret } from "../scripts/lib/keys.mjs";
import { offlineEnv } from "../scripts/lib/offline.mjs";
import { measureEnumeration } from "./lib/enumeration.mjs";
import { applyMigrations, BENCH_PASSWORD, mintRefreshTokens, seed, userEmail, userId } from "./lib/seed.mjs";
import {
  buildWorker,
  compatibilityDate,
  findWorkerdPid,
  localRuntime,
  topLevelVars,
  workerdCpuUs,
  workerdMinorFaults,
} from "./lib/workerd.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "4" },
    connections: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    users: { type: "string", default: "10000" },
    only: { type: "string" },
    hash: { type: "boolean", default: false },
  },
});
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const ROUNDS = Number(args.rounds);
const USERS = Number(args.users);
const LOGIN_CONNECTIONS = Math.min(2, CONNECTIONS);
/** How many avatars the warm avatar run repeats (each is requested hundreds of times per run). */
const WARM_AVATARS = 20;
const started = Date.now();
const log = (line) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}`);

// ---------------------------------------------------------------------------------------------
// Build: the same command as production (and the CI bundle budget), into a temp dir.

const tmp = mkdtempSync(join(os.tmpdir(), "latchkey-bench-"));
const wranglerEnv = { ...offlineEnv(), WRANGLER_LOG_PATH: join(tmp, "wrangler-logs") };

function build(name, configPath) {
  return buildWorker({ cwd: ROOT, configPath, outdir: join(tmp, name), env: wranglerEnv });
}

log("building the worker and the floor worker (wrangler deploy --dry-run --minify)");
const appBuild = build("app", join(ROOT, "wrangler.toml"));
const floorBuild = build("floor", join(ROOT, "bench/floor/wrangler.toml"));

// ---------------------------------------------------------------------------------------------
// Runtime: one workerd, two workers sharing one D1 database and one R2 bucket by id.

const signingJwk = await generateSigningJwk();
const OTP_SECRET = randomSecret();
const JWT_KEYS = JSON.stringify({ keys: [signingJwk] });
const vars = topLevelVars(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
const shared = {
  compatibilityDate: compatibilityDate(readFileSync(join(ROOT, "wrangler.toml"), "utf8")),
  d1Databases: { DB: "latchkey-bench-db" },
  r2Buckets: { AVATARS: "latchkey-bench-avatars" },
  unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
};
const workerdLog = [];
const mf = new Miniflare({
  ...localRuntime(tmp),
  handleRuntimeStdio(stdout, stderr) {
    // Keep the last lines for diagnosis instead of printing a line per failed request under load.
    for (const stream of [stdout, stderr]) {
      stream.on("data", (data) => {
        workerdLog.push(...String(data).split("\n").filter(Boolean));
        if (workerdLog.length > 200) workerdLog.splice(0, workerdLog.length - 200);
      });
    }
  },
  workers: [
    {
      name: "latchkey",
      ...appBuild,
      ...shared,
      kvNamespaces: { CONFIG: "latchkey-bench-config" },
      queueProducers: { MAIL_QUEUE: "latchkey-mail" },
      bindings: { ...vars, MAIL_DRIVER: "console", JWT_KEYS, OTP_SECRET },
    },
    {
      name: "floor",
      ...floorBuild,
      ...shared,
      compatibilityFlags: JSON.parse(
        /^compatibility_flags = (\[.*\])$/m.exec(readFileSync(join(ROOT, "bench/floor/wrangler.toml"), "utf8"))?.[1] ?? "[]",
      ),
      bindings: { JWT_KEYS, JWT_ISSUER: vars.JWT_ISSUER, JWT_AUDIENCE: vars.JWT_AUDIENCE, OTP_SECRET },
    },
  ],
});
await mf.ready;
const APP = (await mf.unsafeGetDirectURL("latchkey")).origin;
const FLOOR = (await mf.unsafeGetDirectURL("floor")).origin;
const workerdPid = findWorkerdPid();
log(`workerd ${workerdPid ?? "(pid unknown)"}: app ${APP}, floor ${FLOOR}`);

const serverCpuUs = () => workerdCpuUs(workerdPid);
const serverMinorFaults = () => workerdMinorFaults(workerdPid);

// ---------------------------------------------------------------------------------------------
// Hashing and signing micro-benchmark, inside workerd.
//
// workerd stops its clocks while JavaScript runs (Date.now and performance.now only advance at
// I/O, a Spectre mitigation), so a loop cannot time itself in the worker. Instead, each request
// runs one primitive n times before answering, and this process times requests with n = N and
// n = 0 (the same request without the loop) from outside, alternating; per op is the difference
// of the medians over N. workerd's CPU time from /proc over the same requests gives CPU per op,
// which a loaded machine inflates far less than wall time.

async function timedGet(url) {
  const cpu0 = serverCpuUs();
  const faults0 = serverMinorFaults();
  const t0 = process.hrtime.bigint();
  const res = await fetch(url);
  const body = await res.text();
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${body}`);
  return { wallUs, cpuUs: cpu0 === null ? null : serverCpuUs() - cpu0, faults: faults0 === null ? null : serverMinorFaults() - faults0 };
}

const median = (xs) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * The password-hashing implementations of the table (bench/floor/hash-candidates.ts): hash and
 * verify each, at Latchkey's argon2id parameters or an OWASP-equivalent scrypt setting. `bundle`
 * is what each would add to the worker (see bundleCost); null when it adds nothing to measure.
 */
const HASHERS = [
  {
    name: "latchkey",
    label: "argon2id, Latchkey's driver (one instance per isolate) — used",
    memory: "19 MiB, allocated once per isolate",
    bundle: 'export { argon2id } from "./src/features/auth/argon2id";',
  },
  {
    name: "argon2-wasm-edge",
    label: "argon2id, argon2-wasm-edge 1.0.23 (a new instance per hash) — used until now",
    memory: "19 MiB, allocated per hash",
    bundle:
      'export { argon2id, argon2Verify, setWASMModules } from "argon2-wasm-edge"; export { default as a } from "argon2-wasm-edge/wasm/argon2.wasm"; export { default as b } from "argon2-wasm-edge/wasm/blake2b.wasm";',
  },
  {
    name: "openpgp-simd",
    label: "argon2id, argon2id 1.0.1 (OpenPGP.js), SIMD",
    memory: "65 MiB (the module's minimum), once per isolate",
    bundle:
      'export { default } from "argon2id/lib/setup.js"; export { default as a } from "argon2id/dist/simd.wasm"; export { default as b } from "argon2id/dist/no-simd.wasm";',
  },
  { name: "openpgp-no-simd", label: "argon2id, argon2id 1.0.1 (OpenPGP.js), no SIMD", memory: "65 MiB, once per isolate", bundle: null },
  {
    name: "scrypt-owasp",
    label: "scrypt N = 2^17, r = 8, p = 1 (OWASP), native node:crypto",
    memory: "128 MiB per hash",
    bundle: 'export { scrypt } from "node:crypto";',
  },
  {
    name: "scrypt-owasp-8mib",
    label: "scrypt N = 2^13, r = 8, p = 10 (OWASP's 8 MiB equivalent), native node:crypto",
    memory: "8 MiB per hash",
    bundle: 'export { scrypt } from "node:crypto";',
  },
  {
    name: "scrypt-better-auth",
    label: "scrypt N = 2^14, r = 16, p = 1 (better-auth's default), native node:crypto",
    memory: "32 MiB per hash",
    bundle: 'export { scrypt } from "node:crypto";',
  },
];

/**
 * Gzipped bytes an implementation adds to the worker: its entry bundled and minified with
 * wrangler's esbuild (node: built-ins external, as workerd provides them), plus each .wasm
 * module gzipped, as wrangler uploads them beside the script.
 */
async function bundleCost(entry) {
  const require = createRequire(import.meta.url);
  const esbuild = createRequire(require.resolve("wrangler/package.json"))("esbuild");
  const result = await esbuild.build({
    stdin: { contents: entry, resolveDir: ROOT, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    external: ["node:*"],
    loader: { ".wasm": "file" },
    outdir: join(tmp, "bundle-cost"),
    write: false,
    logLevel: "error",
  });
  return result.outputFiles.reduce((sum, file) => sum + gzipSync(file.contents, { level: 9 }).length, 0);
}

/** Per-op CPU and wall time of one floor primitive: requests with n = N against n = 0, alternating. */
async function measurePrimitive(op, n, repeats = 5) {
  const url = (count) => `${FLOOR}/primitive?op=${encodeURIComponent(op)}&n=${count}`;
  await timedGet(url(1)); // warm: key import, WASM instantiation, the stored hash to verify
  const loop = [];
  const empty = [];
  for (let r = 0; r < repeats; r++) {
    loop.push(await timedGet(url(n)));
    empty.push(await timedGet(url(0)));
  }
  const wall = (median(loop.map((x) => x.wallUs)) - median(empty.map((x) => x.wallUs))) / n;
  const emptyCpu = median(empty.map((x) => x.cpuUs));
  // Each request's own CPU per op, so a bimodal implementation shows as a wide range.
  const perRequest = emptyCpu === null ? [] : loop.map((x) => (x.cpuUs - emptyCpu) / n / 1000);
  const cpuLoop = loop.reduce((a, x) => a + (x.cpuUs ?? Number.NaN), 0);
  const cpuEmpty = empty.reduce((a, x) => a + (x.cpuUs ?? Number.NaN), 0);
  const cpu = Number.isFinite(cpuLoop) ? (cpuLoop - cpuEmpty) / (repeats * n) : null;
  const faults =
    (loop.reduce((a, x) => a + (x.faults ?? Number.NaN), 0) - empty.reduce((a, x) => a + (x.faults ?? Number.NaN), 0)) / (repeats * n);
  return {
    page_faults: Number.isFinite(faults) ? Math.round(faults) : null,
    wall_ms: round(wall / 1000, 3),
    cpu_ms: cpu === null ? null : round(cpu / 1000, 3),
    cpu_range_ms: perRequest.length ? [round(Math.min(...perRequest), 1), round(Math.max(...perRequest), 1)] : null,
  };
}

/** The password hashers take turns, round after round, so a busy moment on this shared machine hits them all alike. */
const HASH_ROUNDS = 3;

async function primitives() {
  const runs = new Map(HASHERS.map((h) => [h.name, []]));
  for (let r = 0; r < HASH_ROUNDS; r++) {
    for (const h of HASHERS) {
      // OWASP-grade scrypt takes a quarter of a second: fewer per request.
      const n = h.name.startsWith("scrypt-owasp") ? 2 : 5;
      const run = { hash: await measurePrimitive(`hash:${h.name}`, n, 3), verify: await measurePrimitive(`verify:${h.name}`, n, 3) };
      runs.get(h.name).push(run);
      log(
        `round ${r + 1}/${HASH_ROUNDS} ${h.name}: hash ${fmt(run.hash.cpu_ms, 1)} ms CPU (requests ${run.hash.cpu_range_ms?.join("–") ?? "n/a"}), verify ${fmt(run.verify.cpu_ms, 1)} ms CPU, ${fmt(run.hash.wall_ms, 1)} ms wall, ${run.hash.page_faults ?? "n/a"} page faults`,
      );
    }
  }
  const hashers = [];
  for (const h of HASHERS) {
    const list = runs.get(h.name);
    const med = (pick) => median(list.map(pick));
    const perRequest = list.flatMap((x) => x.hash.cpu_range_ms ?? []);
    const bundleBytes = h.bundle === null ? null : await bundleCost(h.bundle);
    hashers.push({
      name: h.name,
      label: h.label,
      memory: h.memory,
      bundle_gzip_kb: bundleBytes === null ? null : round(bundleBytes / 1024, 1),
      // Medians over the rounds; the per-request range over all of them.
      hash: {
        cpu_ms: med((x) => x.hash.cpu_ms),
        wall_ms: med((x) => x.hash.wall_ms),
        page_faults: med((x) => x.hash.page_faults),
        cpu_range_ms: perRequest.length ? [Math.min(...perRequest), Math.max(...perRequest)] : null,
      },
      verify: { cpu_ms: med((x) => x.verify.cpu_ms), wall_ms: med((x) => x.verify.wall_ms) },
      rounds: list,
    });
  }
  const ops = [
    { op: "pbkdf2", n: 10, label: "PBKDF2-SHA256, 100,000 iterations", memory: "< 1 KiB" },
    { op: "ed25519-sign", n: 5000, label: "EdDSA (Ed25519) JWT sign" },
    { op: "ed25519-verify", n: 5000, label: "EdDSA (Ed25519) JWT verify" },
    { op: "es256-sign", n: 5000, label: "ES256 (P-256) JWT sign" },
    { op: "es256-verify", n: 5000, label: "ES256 (P-256) JWT verify" },
  ];
  const out = [];
  for (const { op, n, label, memory } of ops) {
    const m = await measurePrimitive(op, n);
    out.push({ op, label, memory: memory ?? null, n, ...m });
    log(`primitive ${op}: ${fmt(m.wall_ms, 3)} ms wall, ${fmt(m.cpu_ms, 3)} ms CPU per op`);
  }
  return { hashers, primitives: out };
}

// ---------------------------------------------------------------------------------------------
// Load generation.

let ipCounter = 0;
/** A distinct CF-Connecting-IP per request, so per-IP rate limits measure nothing but themselves. */
function nextIp() {
  const n = ipCounter++;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/**
 * One autocannon run. `request()` returns {method, path, headers?, body?} per request;
 * `onBody(status, body)` sees every response (refresh uses it to chain rotated tokens).
 */
function load(origin, request, onBody, connections = CONNECTIONS) {
  return new Promise((resolve, reject) => {
    const cpu0 = serverCpuUs();
    autocannon(
      {
        url: origin,
        connections,
        duration: durationOverride ?? DURATION,
        requests: [
          {
            setupRequest(req) {
              const r = request();
              return {
                ...req,
                method: r.method,
                path: r.path,
                body: r.body,
                headers: {
                  ...req.headers,
                  "cf-connecting-ip": nextIp(),
                  ...(r.body ? { "content-type": "application/json" } : {}),
                  ...r.headers,
                },
              };
            },
            ...(onBody ? { onResponse: (status, body) => onBody(status, body) } : {}),
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        const cpu1 = serverCpuUs();
        const ok = result["2xx"];
        resolve({
          rps: ok / (result.duration || DURATION),
          p50: result.latency.p50,
          p99: result.latency.p99,
          cpuUs: cpu0 === null || cpu1 === null || result.requests.total === 0 ? null : (cpu1 - cpu0) / result.requests.total,
          requests: result.requests.total,
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
          statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
        });
      },
    );
  });
}

/** A refresh-token pool that chains: every rotated token the server returns is used next. */
async function refreshLoad(origin, path) {
  const db = await mf.getD1Database("DB", "latchkey");
  const pool = await mintRefreshTokens(db, { count: CONNECTIONS * 4, users: USERS, offset: Math.floor(Math.random() * USERS) });
  return load(
    origin,
    () => ({ method: "POST", path, body: JSON.stringify({ refresh_token: pool.pop() ?? "exhausted" }) }),
    (status, body) => {
      if (status === 200) pool.push(JSON.parse(body).refresh_token);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Main.

const round = (x, digits = 1) => (x === null || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));
const fmt = (x, digits = 0) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(digits));

const machine = {
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.cpus().length,
  memory_gb: round(os.totalmem() / 2 ** 30),
  platform: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
  workerd: execFileSync(join(ROOT, "node_modules/.bin/workerd"), ["--version"]).toString().trim(),
  load_average_at_start: os.loadavg().map((x) => round(x, 2)),
};

/**
 * The endpoints --only picks (all without it), by the last segment of their path: "me" is
 * `GET /api/v1/me` alone (not "enumeration"), "profiles" the directory (not its avatars).
 */
const onlyWords = new Set((args.only ?? "").split(",").map((word) => word.trim()));
const picked = (name) => !args.only || onlyWords.has((name.split(" ")[1] ?? name).split("/").pop());

/**
 * What each endpoint needs seeded. Users come with their profiles (every account has one); the
 * shared argon2id hash costs a request to the floor, avatars an R2 put each, statuses 20,000 rows.
 */
const NEEDS = {
  "GET /health": [],
  "GET /api/v1/me": ["users", "sessions"],
  "POST /api/v1/auth/refresh": ["users"],
  "POST /api/v1/auth/login": ["users", "password"],
  "GET /api/v1/profiles": ["users"],
  "GET /api/v1/statuses": ["users", "statuses"],
  "GET /api/v1/profiles/{id}/avatar (cold)": ["users", "avatars"],
  "GET /api/v1/profiles/{id}/avatar (warm)": ["users", "avatars"],
  // Not an endpoint against a floor: existing vs unknown addresses on the four code endpoints.
  enumeration: ["users"],
};

/** A progress line: rewritten in place on a terminal, one line each when piped or logged. */
function progressLine(text) {
  if (process.stdout.isTTY) process.stdout.write(`\r${text}`);
  else process.stdout.write(`${text}\n`);
}

async function runEndpoints() {
  const db = await mf.getD1Database("DB", "latchkey");
  const bucket = await mf.getR2Bucket("AVATARS", "latchkey");
  await applyMigrations(db, join(ROOT, "migrations"));
  const needs = new Set(Object.entries(NEEDS).flatMap(([name, list]) => (picked(name) ? list : [])));
  let avatars = [];
  if (needs.has("users")) {
    // Only login verifies the password; otherwise a placeholder no password matches will do.
    let hash = "$bench$no-password";
    if (needs.has("password")) {
      const hashRes = await fetch(`${FLOOR}/setup/password-hash`, { method: "POST", body: JSON.stringify({ password: BENCH_PASSWORD }) });
      ({ hash } = await hashRes.json());
    }
    const statusesPerUser = needs.has("statuses") ? 2 : 0;
    const avatarEvery = needs.has("avatars") ? 50 : 0;
    const what = ["users", "profiles", statusesPerUser && "statuses", avatarEvery && "avatars"].filter(Boolean).join(", ");
    const t0 = Date.now();
    const seeded = await seed({
      db,
      bucket,
      users: USERS,
      passwordHash: hash,
      statusesPerUser,
      avatarEvery,
      progress: (done, total) => progressLine(`[bench] seeding ${what}: ${done}/${total}`),
    });
    if (process.stdout.isTTY) process.stdout.write("\n");
    avatars = seeded.avatars;
    log(
      `seeded ${USERS} users, ${USERS} profiles, ${USERS * statusesPerUser} statuses, ${avatars.length} avatars (${avatars.length ? seeded.avatarBytes : 0} B each) in ${Date.now() - t0} ms`,
    );
  } else {
    log("nothing to seed for the chosen endpoints");
  }

  // Access tokens signed here with the worker's key, valid for the whole run (the worker's own
  // would expire after access_token_ttl, 30 s by default).
  const key = await importJWK(signingJwk, "EdDSA");
  const iat = Math.floor(Date.now() / 1000);
  const accessTokens = [];
  for (let i = 0; i < (needs.has("sessions") ? 500 : 0); i++) {
    accessTokens.push(
      await new SignJWT({ jti: `bench-${i}`, sid: `bench-session-${i}` })
        .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: signingJwk.kid })
        .setIssuer(vars.JWT_ISSUER)
        .setAudience(vars.JWT_AUDIENCE)
        .setSubject(userId(i))
        .setIssuedAt(iat)
        .setExpirationTime(iat + 3600)
        .sign(key),
    );
  }
  // Each token's sign-in must be live (requireUser checks that its refresh-token family still
  // has an unrevoked token), so give every bench session one stored refresh token.
  if (accessTokens.length > 0)
    await db.batch(
      accessTokens.map((_, i) =>
        db
          .prepare(
            "INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, NULL, ?, ?, ?)",
          )
          .bind(`bench-session-token-${i}`, userId(i), `bench-session-${i}`, `bench-session-hash-${i}`, iat * 1000, (iat + 86_400) * 1000),
      ),
    );
  let n = 0;
  const cycle = (list) => list[n++ % list.length];
  let loginUser = 0;
  const loginBody = () => JSON.stringify({ email: userEmail(loginUser++ % USERS), password: BENCH_PASSWORD });
  const avatarPath = (a) => `/api/v1/profiles/${a.userId}/avatar?v=${a.version}`;
  // Warm: repeat requests over a few avatars, all in the edge cache after the unmeasured first pass.
  const warmAvatars = avatars.slice(0, WARM_AVATARS);
  // Cold: every request misses the edge cache, whose keys are made under the request's origin. A
  // host name of its own per request is a first visit to that copy, so each one does the whole miss
  // path — cache lookup, profile read, R2 get, and the copy stored (in waitUntil) — as the first
  // request for an avatar in a data center does.
  let coldHost = 0;
  const coldHeaders = () => ({ host: `cold-${coldHost++}.bench.test` });
  const bearer = () => ({ authorization: `Bearer ${cycle(accessTokens)}` });

  const endpoints = [
    {
      name: "GET /health",
      app: () => load(APP, () => ({ method: "GET", path: "/health" })),
      // The bare worker answering a fixed JSON document, plus the work every response must carry
      // (request id, hardening headers, the log line). The target is against the minimal floor,
      // the bare worker alone; this shows how much of the gap that work is.
      exact: () => load(FLOOR, () => ({ method: "GET", path: "/health/envelope" })),
      floor: () => load(FLOOR, () => ({ method: "GET", path: "/health" })),
      probe: { method: "GET", path: "/health" },
    },
    {
      name: "GET /api/v1/me",
      app: () => load(APP, () => ({ method: "GET", path: "/api/v1/me", headers: bearer() })),
      exact: () => load(FLOOR, () => ({ method: "GET", path: "/exact/me", headers: bearer() })),
      floor: () => load(FLOOR, () => ({ method: "GET", path: "/me", headers: bearer() })),
      probe: { method: "GET", path: "/api/v1/me", headers: bearer() },
    },
    {
      name: "POST /api/v1/auth/refresh",
      app: () => refreshLoad(APP, "/api/v1/auth/refresh"),
      exact: () => refreshLoad(FLOOR, "/exact/refresh"),
      floor: () => refreshLoad(FLOOR, "/refresh"),
      probe: async () => {
        const [token] = await mintRefreshTokens(db, { count: 1, users: USERS });
        return { method: "POST", path: "/api/v1/auth/refresh", body: JSON.stringify({ refresh_token: token }) };
      },
    },
    {
      name: "POST /api/v1/auth/login",
      // One isolate hashes one password at a time (~50-60 ms of CPU): more connections only queue,
      // and at 10 a short run can end before the first answers arrive.
      app: () => load(APP, () => ({ method: "POST", path: "/api/v1/auth/login", body: loginBody() }), undefined, LOGIN_CONNECTIONS),
      exact: () => load(FLOOR, () => ({ method: "POST", path: "/exact/login", body: loginBody() }), undefined, LOGIN_CONNECTIONS),
      floor: () => load(FLOOR, () => ({ method: "POST", path: "/login", body: loginBody() }), undefined, LOGIN_CONNECTIONS),
      probe: () => ({ method: "POST", path: "/api/v1/auth/login", body: loginBody() }),
    },
    {
      name: "GET /api/v1/profiles",
      app: () => load(APP, () => ({ method: "GET", path: "/api/v1/profiles" })),
      exact: () => load(FLOOR, () => ({ method: "GET", path: "/exact/profiles" })),
      floor: () => load(FLOOR, () => ({ method: "GET", path: "/profiles" })),
      probe: { method: "GET", path: "/api/v1/profiles" },
    },
    {
      name: "GET /api/v1/statuses",
      app: () => load(APP, () => ({ method: "GET", path: "/api/v1/statuses" })),
      exact: () => load(FLOOR, () => ({ method: "GET", path: "/exact/statuses" })),
      floor: () => load(FLOOR, () => ({ method: "GET", path: "/statuses" })),
      probe: { method: "GET", path: "/api/v1/statuses" },
    },
    {
      name: "GET /api/v1/profiles/{id}/avatar (cold)",
      // The avatar_url a client gets from the profile: versioned, so the immutable cacheable form.
      app: () => load(APP, () => ({ method: "GET", path: avatarPath(cycle(avatars)), headers: coldHeaders() })),
      // Misses the cache too, then the public-profile lookup, the R2 read and the cache put.
      exact: () =>
        load(FLOOR, () => {
          const a = cycle(avatars);
          return { method: "GET", path: `/exact/avatar?user=${a.userId}&v=${a.version}`, headers: coldHeaders() };
        }),
      // Today's minimal floor: the R2 read alone, no cache.
      floor: () => load(FLOOR, () => ({ method: "GET", path: `/avatar?key=${encodeURIComponent(cycle(avatars).key)}` })),
      probe: { method: "GET", path: avatars[0] ? avatarPath(avatars[0]) : "/api/v1/profiles/none/avatar" },
      // Each cold run leaves thousands of copies on disk; none is read again.
      afterRun: () => mf.purgeCache(),
    },
    {
      name: "GET /api/v1/profiles/{id}/avatar (warm)",
      app: () => load(APP, () => ({ method: "GET", path: avatarPath(cycle(warmAvatars)) })),
      // A hit is one cache.match answered as is: exact and minimal floor are the same work.
      exact: () => load(FLOOR, () => ({ method: "GET", path: `/avatar-cached?key=${encodeURIComponent(cycle(warmAvatars).key)}` })),
      floor: () => load(FLOOR, () => ({ method: "GET", path: `/avatar-cached?key=${encodeURIComponent(cycle(warmAvatars).key)}` })),
      probe: { method: "GET", path: warmAvatars[0] ? avatarPath(warmAvatars[0]) : "/api/v1/profiles/none/avatar" },
    },
  ].filter((e) => picked(e.name));

  const rows = [];
  for (const endpoint of endpoints) {
    const state = await probe(endpoint);
    if (state.status !== "ok") {
      log(`${endpoint.name}: ${state.status} (${state.detail})`);
      rows.push({ name: endpoint.name, status: state.status, detail: state.detail });
      continue;
    }
    // One short unmeasured pass each, so neither side pays for isolate start-up or cold caches.
    await withDuration(1, async () => {
      await endpoint.app();
      await endpoint.exact();
      await endpoint.floor();
    });
    const appRuns = [];
    const exactRuns = [];
    const floorRuns = [];
    for (let r = 0; r < ROUNDS; r++) {
      appRuns.push(await endpoint.app());
      await endpoint.afterRun?.();
      exactRuns.push(await endpoint.exact());
      await endpoint.afterRun?.();
      floorRuns.push(await endpoint.floor());
      await endpoint.afterRun?.();
      const [a, e, f] = [appRuns.at(-1), exactRuns.at(-1), floorRuns.at(-1)];
      log(
        `${endpoint.name} round ${r + 1}/${ROUNDS}: ${fmt(a.rps)} req/s, ${fmt(a.cpuUs)} µs CPU/req (exact floor ${fmt(e.rps)}, ${fmt(e.cpuUs)} µs; minimal floor ${fmt(f.rps)}, ${fmt(f.cpuUs)} µs)${a.non2xx || e.non2xx || f.non2xx ? ` non-2xx ${a.non2xx}/${e.non2xx}/${f.non2xx}` : ""}`,
      );
    }
    rows.push(summarize(endpoint.name, appRuns, exactRuns, floorRuns));
  }

  let enumeration = [];
  if (picked("enumeration")) {
    log("enumeration: 40 alternating requests per code endpoint, existing vs unknown address");
    enumeration = await measureEnumeration({ origin: APP, knownEmail: (i) => userEmail(i % USERS), nextIp, pairs: 40 });
  }
  // The hashing table takes a minute: part of a full run, and of an --only run when asked.
  const hashing = !args.only || args.hash ? await primitives() : null;
  writeResults({
    machine,
    settings: { duration_s: DURATION, connections: CONNECTIONS, login_connections: LOGIN_CONNECTIONS, rounds: ROUNDS, users: USERS },
    endpoints: rows,
    enumeration,
    hashing,
  });
  const bad = rows.filter((r) => r.status === "errors");
  if (bad.length > 0 && workerdLog.length > 0) console.log(`\nlast workerd output:\n${workerdLog.slice(-10).join("\n")}`);
}

let durationOverride = null;
async function withDuration(seconds, fn) {
  durationOverride = seconds;
  try {
    await fn();
  } finally {
    durationOverride = null;
  }
}

/** One request before the runs: a route that answers 404 "No such route." is not there yet. */
async function probe(endpoint) {
  const r = typeof endpoint.probe === "function" ? await endpoint.probe() : endpoint.probe;
  const res = await fetch(`${APP}${r.path}`, {
    method: r.method,
    body: r.body,
    headers: { "cf-connecting-ip": nextIp(), ...(r.body ? { "content-type": "application/json" } : {}), ...r.headers },
  });
  const text = await res.text();
  if (res.status === 404 && text.includes("No such route")) return { status: "missing", detail: "404 no such route" };
  if (!res.ok) return { status: "errors", detail: `probe answered ${res.status}: ${text.slice(0, 160)}` };
  return { status: "ok" };
}

/**
 * Medians of each side's runs. `ratio` is against the exact floor (the same statements and
 * cryptography, bench/floor/exact.ts); `minimal_ratio` against the minimal floor, for information.
 */
function summarize(name, appRuns, exactRuns, floorRuns) {
  const all = [...appRuns, ...exactRuns, ...floorRuns];
  // Throughput counts only 2xx answers; a run with anything else is reported as errors.
  const failed = all.filter((r) => r.non2xx > 0 || r.errors > 0 || r.requests === 0);
  if (failed.length > 0) {
    const codes = {};
    for (const r of failed)
      for (const [code, count] of Object.entries(r.statusCodes)) if (!code.startsWith("2")) codes[code] = (codes[code] ?? 0) + count;
    const errors = failed.reduce((a, r) => a + r.errors, 0);
    return {
      name,
      status: "errors",
      detail: `non-2xx ${JSON.stringify(codes)}, socket errors/timeouts ${errors}, runs without any answer ${failed.filter((r) => r.requests === 0).length} (app ${appRuns.reduce((a, r) => a + r.non2xx, 0)}, exact floor ${exactRuns.reduce((a, r) => a + r.non2xx, 0)}, minimal floor ${floorRuns.reduce((a, r) => a + r.non2xx, 0)})`,
    };
  }
  const rps = median(appRuns.map((r) => r.rps));
  const exactRps = median(exactRuns.map((r) => r.rps));
  const floorRps = median(floorRuns.map((r) => r.rps));
  return {
    name,
    status: "ok",
    rps: round(rps),
    p50_ms: round(median(appRuns.map((r) => r.p50))),
    p99_ms: round(median(appRuns.map((r) => r.p99))),
    cpu_us: round(median(appRuns.map((r) => r.cpuUs)), 0),
    exact_rps: round(exactRps),
    exact_p50_ms: round(median(exactRuns.map((r) => r.p50))),
    exact_cpu_us: round(median(exactRuns.map((r) => r.cpuUs)), 0),
    ratio: exactRps ? round(rps / exactRps, 2) : null,
    floor_rps: round(floorRps),
    floor_p50_ms: round(median(floorRuns.map((r) => r.p50))),
    floor_p99_ms: round(median(floorRuns.map((r) => r.p99))),
    floor_cpu_us: round(median(floorRuns.map((r) => r.cpuUs)), 0),
    minimal_ratio: floorRps ? round(rps / floorRps, 2) : null,
  };
}

function writeResults(results) {
  const out = join(ROOT, "bench/results");
  mkdirSync(out, { recursive: true });
  const full = { ...results, finished_at: new Date().toISOString(), total_seconds: Math.round((Date.now() - started) / 1000) };
  writeFileSync(join(out, "latest.json"), `${JSON.stringify(full, null, 2)}\n`);
  if (results.endpoints.length > 0) {
    console.log(
      "\n| endpoint | req/s | p50 ms | p99 ms | CPU µs/req | exact floor req/s | exact floor CPU µs/req | ratio | minimal floor req/s | minimal floor CPU µs/req | ratio to minimal |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const r of results.endpoints) {
      if (r.status !== "ok") console.log(`| ${r.name} | ${r.status}: ${r.detail} | | | | | | | | | |`);
      else
        console.log(
          `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50_ms, 1)} | ${fmt(r.p99_ms, 1)} | ${fmt(r.cpu_us)} | ${fmt(r.exact_rps)} | ${fmt(r.exact_cpu_us)} | ${fmt(r.ratio, 2)}× | ${fmt(r.floor_rps)} | ${fmt(r.floor_cpu_us)} | ${fmt(r.minimal_ratio, 2)}× |`,
        );
    }
  }
  if (results.enumeration?.length) {
    console.log("\n| code endpoint | statuses | existing p50 µs | unknown p50 µs | gap µs | noise µs | within noise |");
    console.log("|---|---|---:|---:|---:|---:|---|");
    for (const e of results.enumeration) {
      console.log(
        `| ${e.endpoint} | ${e.statuses.join(" ")} | ${e.knownUs} | ${e.unknownUs} | ${e.gapUs} | ${e.noiseUs} | ${e.withinNoise ? "yes" : "no"} |`,
      );
    }
  }
  if (results.hashing?.hashers?.length) {
    console.log(
      "\n| password hash (in workerd) | CPU ms per hash | CPU ms per verify | hash CPU ms, per request | wall ms per hash | page faults per hash | memory | bundle, gzip KB |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---|---:|");
    for (const h of results.hashing.hashers)
      console.log(
        `| ${h.label} | ${fmt(h.hash.cpu_ms, 1)} | ${fmt(h.verify.cpu_ms, 1)} | ${h.hash.cpu_range_ms?.join("–") ?? "n/a"} | ${fmt(h.hash.wall_ms, 1)} | ${h.hash.page_faults ?? "n/a"} | ${h.memory} | ${h.bundle_gzip_kb ?? "—"} |`,
      );
  }
  if (results.hashing?.primitives?.length) {
    console.log("\n| primitive (in workerd) | per op, wall ms | per op, CPU ms | memory |");
    console.log("|---|---:|---:|---|");
    for (const h of results.hashing.primitives)
      console.log(`| ${h.label} | ${fmt(h.wall_ms, 3)} | ${fmt(h.cpu_ms, 3)} | ${h.memory ?? ""} |`);
  }
  console.log(
    `\n${results.endpoints.length ? `${CONNECTIONS} connections (login ${LOGIN_CONNECTIONS}), ${DURATION} s per run, ${ROUNDS} rounds (medians); ` : ""}machine: ${results.machine.cpu}, ${results.machine.cores} cores, node ${results.machine.node}, workerd ${results.machine.workerd}`,
  );
  console.log(`wrote bench/results/latest.json (${Math.round((Date.now() - started) / 1000)} s)`);
}

try {
  log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load average ${machine.load_average_at_start.join(" ")}`);
  if (args.hash && !args.only) {
    const hashing = await primitives();
    writeResults({ machine, hashing, endpoints: [] });
  } else {
    await runEndpoints();
  }
} finally {
  await mf.dispose();
  rmSync(tmp, { recursive: true, force: true });
}
