/**
 * The storage layer's public face: one store per aggregate, built over one Drizzle database of
 * either driver. Nothing outside src/store/ sees SQL, Drizzle or a driver's types.
 */
import { type ActivityStore, DrizzleActivityStore } from "./activity";
import { type AuditStore, DrizzleAuditStore } from "./audit";
import { type CodeStore, DrizzleCodeStore } from "./codes";
import { type CounterStore, DrizzleCounterStore } from "./counters";
import type { Db } from "./driver";
import { DrizzleNoticeStore, type NoticeStore } from "./notices";
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
  notices: NoticeStore;
}

const FACTORIES: { [K in keyof Stores]: (db: Db) => Stores[K] } = {
  users: DrizzleUserStore,
  profiles: DrizzleProfileStore,
  tokens: DrizzleTokenStore,
  codes: DrizzleCodeStore,
  counters: DrizzleCounterStore,
  activity: DrizzleActivityStore,
  statuses: DrizzleStatusStore,
  audit: DrizzleAuditStore,
  notices: DrizzleNoticeStore,
};

/**
 * Every store over the database `db()` gives, each made when first used, as getters on `target`
 * (returned). A request uses one or two of the eight stores, and many requests none (/health,
 * JWKS, the docs): making all eight — and starting the D1 session `db()` starts — on every
 * request was measurable CPU (README, Performance).
 */
export function defineStores<T extends object>(target: T, db: () => Db): T & Stores {
  const made: Partial<Stores> = {};
  for (const name of Object.keys(FACTORIES) as (keyof Stores)[]) {
    Object.defineProperty(target, name, {
      enumerable: true,
      get: () => {
        made[name] ??= FACTORIES[name](db()) as never;
        return made[name];
      },
    });
  }
  return target as T & Stores;
}

/** Every store over `db`. */
export function DrizzleStores(db: Db): Stores {
  return defineStores({}, () => db);
}

export type { ActivityStore } from "./activity";
export type { AuditRow, AuditStore } from "./audit";
export type { CodeOwner, CodeStore } from "./codes";
export type { CounterStore } from "./counters";
export { D1Db, type Db, isDatabaseOutage, StoreError, type StoreErrorKind } from "./driver";
export { LibsqlDatabase, LibsqlDb, migrationStatements } from "./libsql";
export type { NoticeStore, PendingNotice } from "./notices";
export type { AvatarPointer, ProfileChanges, ProfileStore, ProfileUpdate, PublicProfileRow } from "./profiles";
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
export type { StatusChange, StatusRow, StatusStore } from "./statuses";
export type { SessionLifetimes, SessionRow, TokenStore } from "./tokens";
export * from "./types";
export type { UserFlags, UserStore } from "./users";
