import type { Clock } from "../lib/clock";
import { loggableError } from "../lib/errors";
import { log } from "../lib/log";
import { CONFIG_KEY_NAMES, CONFIG_KEYS, type Config, type ConfigKey, defaultConfig, parseConfigValue } from "./config.definitions";

/**
 * How long an isolate reuses what it read from KV. The issue promises edits take effect "on the
 * next request, within a few seconds"; KV itself may take up to 60 s to propagate globally, so
 * this cache adds little and saves six KV reads on every request.
 */
export const CONFIG_CACHE_MS = 5_000;

export interface ConfigEntry {
  key: ConfigKey;
  value: number | boolean;
  default: number | boolean;
  source: "kv" | "default";
  valid: boolean;
  raw: string | null;
}

/** Reads every key from KV, validating each; an invalid value falls back to its default with a warning. */
export async function readConfigEntries(kv: KVNamespace): Promise<ConfigEntry[]> {
  const raws = await Promise.all(CONFIG_KEY_NAMES.map((key) => kv.get(key)));
  return CONFIG_KEY_NAMES.map((key, i) => {
    const raw = raws[i] ?? null;
    const fallback = CONFIG_KEYS[key].default;
    if (raw === null) return { key, value: fallback, default: fallback, source: "default", valid: true, raw };
    const parsed = parseConfigValue(key, raw);
    if (parsed.ok) return { key, value: parsed.value, default: fallback, source: "kv", valid: true, raw };
    // Never log the raw value at length: it is operator input, but keep the line bounded.
    log("warn", "config.invalid", { key, value: raw.slice(0, 40), reason: parsed.reason, using: String(fallback) });
    return { key, value: fallback, default: fallback, source: "kv", valid: false, raw };
  });
}

/** Defaults stood in for values KV could not be asked for (see `ConfigCache`). */
const GUESSED = new WeakSet<Config>();

/**
 * Whether `config` is the defaults an isolate used because KV failed before it ever answered. An
 * operator may have set stricter values than these (a shorter `session_max_age`): what they
 * would limit must then not be extended on their strength.
 */
export function isGuessed(config: Config): boolean {
  return GUESSED.has(config);
}

/**
 * A per-isolate cache of the effective configuration. Issuing tokens never fails because of
 * config: if KV itself is unreachable the last good values (or the defaults, marked `isGuessed`) are used.
 */
export function ConfigCache(options: { clock: Clock; ttlMs?: number }) {
  const ttl = options.ttlMs ?? CONFIG_CACHE_MS;
  let cached: { at: number; value: Config } | null = null;
  return {
    async get(kv: KVNamespace): Promise<Config> {
      const now = options.clock.now();
      if (cached && now - cached.at < ttl && now >= cached.at) return cached.value;
      let value: Config;
      try {
        const entries = await readConfigEntries(kv);
        value = Object.fromEntries(entries.map((e) => [e.key, e.value])) as Config;
      } catch (error) {
        log("error", "config.read_failed", { using: cached ? "last_known" : "defaults", error: loggableError(error) });
        value = cached?.value ?? defaultConfig();
        if (!cached) GUESSED.add(value);
      }
      cached = { at: now, value };
      return value;
    },
    /** Drops the cached values so the next read goes to KV (after an admin change in this isolate). */
    invalidate() {
      cached = null;
    },
  };
}
export type ConfigCache = ReturnType<typeof ConfigCache>;
