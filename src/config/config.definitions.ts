/**
 * The one definition of every hot-editable configuration key (house style rule 6). The worker's
 * reader, the admin API and the operator CLI all parse values through `parseConfigValue`, so a
 * value one of them accepts is a value the others accept. KV holds each key as a plain string.
 */

interface IntegerKey {
  type: "integer";
  default: number;
  min: number;
  max: number;
  description: string;
}
interface BooleanKey {
  type: "boolean";
  default: boolean;
  description: string;
}
type KeyDefinition = IntegerKey | BooleanKey;

export const CONFIG_KEYS = {
  access_token_ttl: {
    type: "integer",
    default: 30,
    min: 5,
    max: 86_400,
    description: "Access-token lifetime in seconds (the JWT's exp - iat and the token response's expires_in).",
  },
  refresh_token_ttl: {
    type: "integer",
    default: 2_592_000,
    min: 60,
    max: 31_536_000,
    description:
      "Idle lifetime of a sign-in in seconds: each rotation issues a token with a fresh lifetime, never past the sign-in's session_max_age.",
  },
  session_max_age: {
    type: "integer",
    default: 2_592_000,
    min: 3_600,
    max: 31_536_000,
    description:
      "Absolute lifetime of a sign-in in seconds, counted from its login; refreshing never extends it (OWASP ASVS 10.4.8). Setting it ends every sign-in older than the new value at once, for good.",
  },
  require_email_verification: {
    type: "boolean",
    default: true,
    description: "New accounts must confirm their email with a one-time code before password login works.",
  },
  otp_ttl: {
    type: "integer",
    default: 600,
    min: 60,
    max: 86_400,
    description: "Lifetime of an emailed one-time code, in seconds.",
  },
  otp_max_attempts: {
    type: "integer",
    default: 5,
    min: 1,
    max: 20,
    description: "Wrong guesses allowed per one-time code; after that the code is dead even for the right digits.",
  },
  otp_max_failures_per_day: {
    type: "integer",
    default: 20,
    min: 1,
    // NIST SP 800-63B 5.2.2: at most 100 failed attempts; 100 guesses at 6 digits is a 1-in-10,000 chance a day.
    max: 100,
    description:
      "Wrong codes allowed per email address in 24 hours, across all its codes; past it, code sign-in, verification and reset are refused until the window ends.",
  },
  activity_retention_days: {
    type: "integer",
    default: 365,
    min: 1,
    max: 3650,
    description: "Activity entries older than this many days are deleted by the daily retention job.",
  },
} as const satisfies Record<string, KeyDefinition>;

export type ConfigKey = keyof typeof CONFIG_KEYS;
export type Config = { [K in ConfigKey]: (typeof CONFIG_KEYS)[K]["default"] extends boolean ? boolean : number };
export const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS) as ConfigKey[];

export function isConfigKey(key: string): key is ConfigKey {
  return Object.hasOwn(CONFIG_KEYS, key);
}

export type ParseResult = { ok: true; value: number | boolean } | { ok: false; reason: string };

/** Parses a raw value (a KV string, or a JSON number/boolean from the admin API) for `key`. */
export function parseConfigValue(key: ConfigKey, raw: unknown): ParseResult {
  const def: KeyDefinition = CONFIG_KEYS[key];
  if (def.type === "boolean") {
    if (raw === true || raw === "true") return { ok: true, value: true };
    if (raw === false || raw === "false") return { ok: true, value: false };
    return { ok: false, reason: "must be true or false" };
  }
  const text = typeof raw === "number" ? String(raw) : typeof raw === "string" ? raw.trim() : "";
  if (!/^\d{1,12}$/.test(text)) return { ok: false, reason: `must be a whole number from ${def.min} to ${def.max}` };
  const value = Number(text);
  if (value < def.min || value > def.max) return { ok: false, reason: `must be from ${def.min} to ${def.max}` };
  return { ok: true, value };
}

export function defaultConfig(): Config {
  return Object.fromEntries(CONFIG_KEY_NAMES.map((key) => [key, CONFIG_KEYS[key].default])) as Config;
}

/**
 * Setting `session_max_age` to `seconds` (its new value, or its default when reset) ends for good
 * every sign-in that began before this: at once, access tokens included, and raising the value
 * again later does not bring them back. The admin API, the console and `npm run config:set` all
 * apply it.
 */
export function signInsEndedBy(seconds: number, nowMs: number): { startedBefore: number } {
  return { startedBefore: nowMs - seconds * 1000 };
}
