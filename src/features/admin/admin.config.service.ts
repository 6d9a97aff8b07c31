/**
 * Reading and changing the hot configuration over the admin API. Every value goes through
 * `parseConfigValue`, the same parser the worker applies when it reads KV, so the API can never
 * store a value the worker would ignore. KV has no transactions: atomicity here means every value
 * is validated before the first write, and a failed write puts back the values already written.
 */
import {
  CONFIG_KEY_NAMES,
  CONFIG_KEYS,
  type ConfigKey,
  isConfigKey,
  parseConfigValue,
  signInsEndedBy,
} from "../../config/config.definitions";
import { type ConfigEntry, readConfigEntries } from "../../config/config.service";
import type { Deps } from "../../deps";
import { randomId } from "../../lib/crypto";
import { AppError, dependencyRefused, type FieldError, loggableError, staffOnly } from "../../lib/errors";
import { log } from "../../lib/log";
import type { User } from "../../store";
import type { ConfigEntryView } from "./admin.schemas";

function entryView(entry: ConfigEntry): ConfigEntryView {
  const def = CONFIG_KEYS[entry.key];
  return {
    key: entry.key,
    value: entry.value,
    default: entry.default,
    source: entry.source,
    valid: entry.valid,
    stored: entry.raw,
    min: "min" in def ? def.min : null,
    max: "max" in def ? def.max : null,
    description: def.description,
  };
}

/** Every known key with its effective value, default, bounds and where the value comes from. */
export async function getConfig(deps: Deps): Promise<ConfigEntryView[]> {
  return (await readConfigEntries(deps.configKv)).map(entryView);
}

/**
 * Validates every given value, then writes them all to KV and records one audit entry per key
 * whose stored value changes. Any invalid value or unknown key rejects the whole request with a
 * 400 naming each offender, before anything is written.
 */
export async function patchConfig(deps: Deps, actor: User, input: Record<string, unknown>): Promise<ConfigEntryView[]> {
  const errors: FieldError[] = [];
  const updates: { key: ConfigKey; text: string }[] = [];
  for (const [key, raw] of Object.entries(input)) {
    if (!isConfigKey(key)) {
      errors.push({ path: key, message: "is not a configuration key" });
      continue;
    }
    const parsed = parseConfigValue(key, raw);
    if (parsed.ok) updates.push({ key, text: String(parsed.value) });
    else errors.push({ path: key, message: parsed.reason });
  }
  if (errors.length > 0) {
    throw new AppError("validation_failed", errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
  }
  if (updates.length === 0) throw new AppError("validation_failed", "Give at least one configuration key to change.");

  const kv = deps.configKv;
  const before = new Map((await readConfigEntries(kv)).map((e) => [e.key, e.raw]));
  const changed = updates.filter((u) => before.get(u.key) !== u.text);
  // The audit entries go first: KV has no transactions, and a change must never land without
  // its audit entry. If a KV write then fails, the writes that landed are put back and their
  // entries removed, so the request changes nothing as a whole (unless KV refuses that too: below).
  const now = deps.clock.now();
  const auditIds = changed.map(() => randomId());
  const recorded = await deps.audit.record(
    changed.map((u, i) => ({
      id: auditIds[i],
      actorId: actor.id,
      action: "config.set",
      target: u.key,
      oldValue: before.get(u.key) ?? null,
      newValue: u.text,
      nowMs: now,
    })),
  );
  if (!recorded) throw staffOnly(); // demoted or disabled while the request was under way: nothing written
  const results = await Promise.allSettled(changed.map((u) => kv.put(u.key, u.text)));
  if (results.some((r) => r.status === "rejected")) {
    // Every key is put back, the refused ones too: a write whose reply was lost may have landed.
    const inForce = await Promise.all(changed.map((u) => restore(kv, u.key, before.get(u.key) ?? null)));
    // A new value left in force keeps its audit entry, and the answer says so rather than
    // "nothing was changed".
    const stuckUpdates = changed.filter((_, i) => inForce[i]);
    const stuck = stuckUpdates.map((u) => u.key);
    await deps.audit
      .remove(auditIds.filter((_, i) => !inForce[i]))
      .catch((error) =>
        log("error", "config.audit_not_removed", { detail: "a rolled-back change keeps its audit entries", error: loggableError(error) }),
      );
    deps.invalidateConfig();
    if (stuck.length > 0) {
      log("error", "config.partly_applied", { keys: stuck.join(", ") });
      // A shorter session_max_age that may be in force ends the older sign-ins as if it were.
      const maxAge = stuckUpdates.find((u) => u.key === "session_max_age");
      if (maxAge) await endOlderSignIns(deps, maxAge.text).catch(() => undefined);
      throw dependencyRefused(
        `The configuration store did not accept the whole change and could not undo all of it: ${stuck.join(", ")} may now have the new value (audited); nothing else was changed.`,
      );
    }
    throw dependencyRefused("The configuration store did not accept the change; nothing was changed.");
  }
  const inForce = await settleOnNewestAudited(deps, new Map(changed.map((u) => [u.key, u.text])));
  deps.invalidateConfig();
  // Also when unchanged: setting it again finishes an earlier attempt whose D1 step failed. By the
  // value left in force: a newer change's, when one won, not this request's.
  const maxAge = updates.find((u) => u.key === "session_max_age");
  const settled = inForce.get("session_max_age"); // undefined: unchanged by this request, so not settled
  if (maxAge) await endOlderSignIns(deps, settled === undefined ? maxAge.text : settled);
  return getConfig(deps);
}

/**
 * Puts `key` back to `previous` (null: none) after a change that KV may or may not have taken.
 * Whether the change may still be in force: false once the put-back is acknowledged, true if that
 * is refused too (KV's reads are eventually consistent, so reading the key back would not tell),
 * so nothing in force is ever left without its audit entry.
 */
async function restore(kv: KVNamespace, key: string, previous: string | null): Promise<boolean> {
  try {
    await (previous === null ? kv.delete(key) : kv.put(key, previous));
    return false;
  } catch (error) {
    log("error", "config.write_failed", { key, detail: "putting the earlier value back", error: loggableError(error) });
    return true;
  }
}

/**
 * KV keeps the last write, D1 orders the audit trail: two staff changing one key at once could
 * leave in force the value of the older entry while the trail's newest names the other. After its
 * own write, a change that finds a newer entry than its own puts that entry's value back in force;
 * each change checks last, so the two agree once both are done. The trail is read at the primary:
 * the request's own session may read a replica that has this change's entry but not a newer one.
 * Returns the stored value (null: none) each written key is left with. A failure here is logged:
 * the change itself is in force and audited.
 */
async function settleOnNewestAudited(deps: Deps, written: Map<ConfigKey, string | null>): Promise<Map<ConfigKey, string | null>> {
  const kv = deps.configKv;
  const inForce = new Map(written);
  try {
    const newest = await deps.primary.audit.newestConfigValues([...written.keys()]);
    await Promise.all(
      [...written].map(async ([key, mine]) => {
        const value = newest.get(key);
        if (value === undefined || value === mine) return;
        await (value === null ? kv.delete(key) : kv.put(key, value));
        inForce.set(key, value);
      }),
    );
  } catch (error) {
    log("error", "config.settle_failed", { error: loggableError(error) });
  }
  return inForce;
}

/**
 * What a new `session_max_age` (`stored`, as KV holds it; null: none, so its default) implies beyond
 * KV: the sign-ins older than it end for good (`signInsEndedBy`). The value is already in force
 * when this runs; if D1 fails here the answer says so, and setting the value again finishes the job.
 */
async function endOlderSignIns(deps: Deps, stored: string | null): Promise<void> {
  const seconds = stored === null ? CONFIG_KEYS.session_max_age.default : Number(stored);
  const now = deps.clock.now();
  try {
    await deps.tokens.endSignInsStartedBefore(signInsEndedBy(seconds, now).startedBefore, now);
  } catch (error) {
    log("error", "config.sign_ins_not_ended", { key: "session_max_age", error: loggableError(error) });
    throw dependencyRefused("session_max_age is set, but ending the sign-ins older than it failed; set it again to finish.");
  }
}

/** Removes `key` from KV so its default applies again. Unknown keys are a 404. */
export async function resetConfigKey(deps: Deps, actor: User, key: string): Promise<ConfigEntryView[]> {
  if (!isConfigKey(key))
    throw new AppError("not_found", `There is no configuration key '${key}'. Known keys: ${CONFIG_KEY_NAMES.join(", ")}.`);
  const kv = deps.configKv;
  const previous = await kv.get(key);
  let inForce: string | null = null; // what KV holds for the key once this is done
  if (previous !== null) {
    // Audited first, as in patchConfig; a failed delete takes the entry back out.
    const auditId = randomId();
    const recorded = await deps.audit.record([
      { id: auditId, actorId: actor.id, action: "config.delete", target: key, oldValue: previous, newValue: null, nowMs: deps.clock.now() },
    ]);
    if (!recorded) throw staffOnly();
    try {
      await kv.delete(key);
    } catch (error) {
      log("error", "config.write_failed", { key, error: loggableError(error) });
      // The delete may have landed (its reply lost): the value is put back, or the entry stays.
      if (await restore(kv, key, previous)) {
        deps.invalidateConfig();
        throw dependencyRefused(`The configuration store's answer was lost: ${key} may be reset to its default (audited).`);
      }
      await deps.audit.remove([auditId]).catch(() => undefined);
      throw dependencyRefused("The configuration store did not accept the change; nothing was changed.");
    }
    inForce = (await settleOnNewestAudited(deps, new Map([[key, null]]))).get(key) ?? null;
    deps.invalidateConfig();
  }
  if (key === "session_max_age") await endOlderSignIns(deps, inForce);
  return getConfig(deps);
}
