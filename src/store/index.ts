/**
 * The storage layer's public face: one store per aggregate, built over one Drizzle database of
 * either driver. Nothing outside src/store/ sees SQL, Drizzle or a driver's types.
 */
import { type ActivityStore, DrizzleActivityStore } from "./activity";
import { type AuditStore, DrizzleAuditStore } from "./audit";
import { type CodeStore, DrizzleCodeStore } from "./codes";
import { type CounterStore, DrizzleCounterStore } from "./counters";
import type { Db } from "./driver";
import { DrizzleProfileStore, type ProfileStore } from "./profiles";
import { DrizzleStatusStore, type StatusStore } from "./statuses";
import { DrizzleTokenStore, type TokenStore } from "./tokens";
import { DrizzleUserStore, type UserStore } from "./users";

export interface Stores {
  users: UserStore;
  profiles: ProfileStore;
  tokens: TokenStore;
  codes: CodeStore;
  counters: CounterStore;
  activity: ActivityStore;
  statuses: StatusStore;
  audit: AuditStore;
}

const cache = new WeakMap<Db, Stores>();

/** Every store over `db`; made once per database object (they hold no per-request state). */
export function DrizzleStores(db: Db): Stores {
  let stores = cache.get(db);
  if (!stores) {
    stores = {
      users: DrizzleUserStore(db),
      profiles: DrizzleProfileStore(db),
      tokens: DrizzleTokenStore(db),
      codes: DrizzleCodeStore(db),
      counters: DrizzleCounterStore(db),
      activity: DrizzleActivityStore(db),
      statuses: DrizzleStatusStore(db),
      audit: DrizzleAuditStore(db),
    };
    cache.set(db, stores);
  }
  return stores;
}

export type { ActivityStore } from "./activity";
export type { AuditRow, AuditStore } from "./audit";
export type { CodeOwner, CodeStore } from "./codes";
export type { CounterStore } from "./counters";
export { D1Db, type Db, StoreError, type StoreErrorKind } from "./driver";
export { LibsqlDatabase, LibsqlDb, migrationStatements } from "./libsql";
export type { AvatarPointer, ProfileChanges, ProfileStore, PublicProfileRow } from "./profiles";
export {
  BOOKMARK_HEADER,
  D1Session,
  NoSession,
  parseBookmark,
  REPLICA_TOLERANT_ROUTES,
  type ReplicaSession,
  type SessionStart,
  sessionStartFor,
} from "./replica";
export { D1SetupCheck, LibsqlSetupCheck, type SetupCheck } from "./setup";
export type { StatusRow, StatusStore } from "./statuses";
export type { SessionRow, TokenStore } from "./tokens";
export * from "./types";
export type { UserFlags, UserStore } from "./users";
