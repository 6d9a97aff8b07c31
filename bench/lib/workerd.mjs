// Building a worker the way production does, and reading workerd's own CPU time: shared by the
// benchmark (bench/run.mjs) and the comparison of builds (bench/ab.mjs).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { offlineEnv } from "../../scripts/lib/offline.mjs";

const MODULE_TYPES = { ".js": "ESModule", ".wasm": "CompiledWasm", ".txt": "Text" };

/**
 * Bundles the worker of `configPath` exactly as `wrangler deploy --minify` does (the command the
 * CI bundle budget measures), into `outdir`, and returns it as Miniflare's module list. `env`
 * gets the offline defaults filled in.
 */
export function buildWorker({ cwd, configPath, outdir, env = process.env }) {
  execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--minify", "--config", configPath, "--outdir", outdir], {
    cwd,
    env: offlineEnv(env),
    stdio: ["ignore", "ignore", "inherit"],
  });
  const modules = readdirSync(outdir)
    .filter((f) => Object.keys(MODULE_TYPES).some((ext) => f.endsWith(ext)))
    .sort((a, b) => (a === "index.js" ? -1 : b === "index.js" ? 1 : a.localeCompare(b)))
    .map((f) => ({ type: MODULE_TYPES[f.slice(f.lastIndexOf("."))], path: join(outdir, f) }));
  return { modules, modulesRoot: outdir };
}

/** A wrangler.toml's top-level [vars] only: the [env.*] sections below them are the deployed environments'. */
export function topLevelVars(toml) {
  return Object.fromEntries([...toml.split(/^\[env\./m)[0].matchAll(/^([A-Z][A-Z0-9_]*) = "(.*)"$/gm)].map((m) => [m[1], m[2]]));
}

/** The compatibility date a wrangler.toml sets. */
export function compatibilityDate(toml) {
  return /^compatibility_date = "(.+)"$/m.exec(toml)[1];
}

/**
 * Miniflare's options for one workerd on loopback with local D1, KV, R2 and the edge cache
 * (caches.default) persisted under `dir`: the bench's avatar runs use the cache, the cold one
 * storing a copy per request.
 */
export function localRuntime(dir) {
  return {
    cf: false, // the built-in Request.cf placeholder, not a download from workers.cloudflare.com
    host: "127.0.0.1",
    port: 0,
    d1Persist: join(dir, "d1"),
    kvPersist: join(dir, "kv"),
    r2Persist: join(dir, "r2"),
    cache: true,
    cachePersist: join(dir, "cache"),
  };
}

/** workerd is spawned by Miniflare as a child of this process; its CPU time is the server's. Null off Linux. */
export function findWorkerdPid() {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === process.pid && stat.includes("(workerd)")) return Number(pid);
    } catch {}
  }
  return null;
}

const CLK_TCK = 100; // Linux USER_HZ: /proc reports CPU time in 1/100 s on every mainstream kernel.

/** workerd's /proc/<pid>/stat fields after the command name (the first is field 3, the state), or null. */
function workerdStat(pid) {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** workerd's total CPU time (user + system, all threads) in microseconds, or null off Linux. */
export function workerdCpuUs(pid) {
  const fields = workerdStat(pid);
  return fields && ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLK_TCK;
}

/** workerd's minor page faults so far: fresh memory the kernel had to map in (and zero). */
export function workerdMinorFaults(pid) {
  const fields = workerdStat(pid);
  return fields && Number(fields[7]);
}
