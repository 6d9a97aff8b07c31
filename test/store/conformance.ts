/**
 * The store conformance suite: the same cases, with a deterministic clock, run against every
 * driver — D1 inside workerd (test/store/d1.test.ts) and a real libSQL database in Node
 * (test/store/libsql.node.test.ts). It covers every store method, the atomic operations (a
 * trigger makes one statement fail *while the batch runs*, and nothing of the batch may remain),
 * concurrency, unique-violation mapping and pagination order.
 */
import { describe, expect, it } from "vitest";
import { FixedClock } from "../../src/lib/clock";
import { type NewCode, type NewRefreshToken, type OtpPurpose, type Profile, StoreError, type Stores, type User } from "../../src/store";

export interface ConformanceTarget {
  stores: Stores;
  /** Raw SQL, for arranging and inspecting only (the stores never take SQL). */
  run(sql: string, ...params: unknown[]): Promise<void>;
  count(sql: string, ...params: unknown[]): Promise<number>;
}

const T0 = Date.UTC(2030, 0, 1);
const META = { ip: "198.51.100.7", userAgent: "conformance" };
/** Idle and absolute session lifetimes of a day. */
const A_DAY = { idleSeconds: 86_400, maxAgeSeconds: 86_400 };
let seq = 0;
const uid = (prefix: string) => `${prefix}${T0.toString(36)}${(seq++).toString(36)}${Math.random().toString(36).slice(2, 7)}`;

export function storeConformance(driver: string, open: () => Promise<ConformanceTarget>) {
  describe(`store conformance: ${driver}`, () => {
    const clock = FixedClock(T0);
    let target: ConformanceTarget;
    const t = async () => {
      target ??= await open();
      return target;
    };

    function newUser(overrides: Partial<User> = {}): User {
      const id = uid("u");
      return {
        id,
        email: `${id}@example.com`,
        pendingEmail: null,
        username: id,
        passwordHash: "hash",
        isActive: true,
        isStaff: false,
        emailVerified: true,
        tokensValidAfter: 0,
        createdAt: clock.now(),
        updatedAt: clock.now(),
        ...overrides,
      };
    }

    function newCode(sentTo: string, purpose: NewCode["purpose"], codeHash = "code-hash"): NewCode {
      return { id: uid("c"), purpose, sentTo, codeHash, createdAt: clock.now(), expiresAt: clock.now() + 600_000 };
    }

    function newNotice() {
      const id = uid("n");
      return { id, message: JSON.stringify({ notice_id: id }), createdAt: clock.now(), nextAttemptAt: clock.now() + 600_000 };
    }

    function newToken(userId: string, family?: { familyId: string; parentId: string }): NewRefreshToken {
      return {
        id: uid("t"),
        userId,
        familyId: family?.familyId ?? uid("f"),
        familyCreatedAt: clock.now(),
        parentId: family?.parentId ?? null,
        tokenHash: uid("h"),
        createdAt: clock.now(),
        expiresAt: clock.now() + 86_400_000,
        userAgent: META.userAgent,
        ip: META.ip,
      };
    }

    /** The notice an account deletion leaves for its address. */
    function deletionNotice() {
      const id = uid("notice");
      return {
        id,
        message: JSON.stringify({ kind: "notice", notice: "account_deleted", notice_id: id }),
        createdAt: clock.now(),
        nextAttemptAt: clock.now(),
      };
    }

    async function registered(overrides: Partial<User> = {}, code: NewCode["purpose"] | null = null) {
      const { stores } = await t();
      const user = newUser(overrides);
      const c = code ? newCode(user.email, code) : null;
      await stores.users.register({ user, activity: { userId: user.id, type: "register", nowMs: clock.now(), meta: META }, code: c });
      return { user, code: c };
    }

    async function signedIn(user: User) {
      const { stores } = await t();
      const token = newToken(user.id);
      await stores.tokens.signIn({
        token,
        verified: { passwordHash: user.passwordHash, tokensValidAfter: user.tokensValidAfter },
        release: { identifier: { email: user.email }, ip: META.ip },
        activity: { userId: user.id, type: "login", nowMs: clock.now(), meta: META },
        rehash: null,
        nowMs: clock.now(),
      });
      return token;
    }

    /** Makes every `op` on `table` fail inside the database while `fn` runs; `fn` must reject. */
    async function withFault(table: string, op: "INSERT" | "UPDATE" | "DELETE", fn: () => Promise<unknown>) {
      const target = await t();
      await target.run(`CREATE TRIGGER conformance_fault BEFORE ${op} ON ${table} BEGIN SELECT RAISE(ABORT, 'injected fault'); END`);
      try {
        await expect(fn()).rejects.toThrow();
      } finally {
        await target.run("DROP TRIGGER conformance_fault");
      }
    }

    const countOf = async (sql: string, ...params: unknown[]) => (await t()).count(sql, ...params);

    /** The audit entry of a staff change of account flags. */
    const flagsAudit = (actor: User, target: User) => ({
      actorId: actor.id,
      action: "user.update" as const,
      target: target.id,
      oldValue: "{}",
      newValue: "{}",
      nowMs: clock.now(),
    });

    describe("users", () => {
      it("registers an account with its profile, its entry, and its first code with the address's mail counters", async () => {
        const { user, code } = await registered({ emailVerified: false }, "verify_email");
        const { stores } = await t();
        expect(await stores.users.byId(user.id)).toEqual(user);
        expect(await stores.profiles.byUser(user.id)).toMatchObject({ userId: user.id, name: null });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'register'", user.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM otp_codes WHERE id = ? AND consumed_at IS NULL", code?.id)).toBe(1);
        expect(
          await countOf(
            "SELECT COUNT(*) AS n FROM rate_limits WHERE key IN (?, ?)",
            `otpPerEmailMinute:verify_email:${user.email}`,
            `otpPerEmailHour:${user.email}`,
          ),
        ).toBe(2);
        expect(await stores.users.holdersOf(user.email, null)).toEqual([{ id: user.id, email: user.email, username: user.username }]);
        expect(await stores.users.holdersOf(null, user.username)).toHaveLength(1);
        expect(await stores.users.holdersOf(null, null)).toEqual([]);
      });

      it("maps unique violations to StoreError email_taken / username_taken and writes nothing", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const again = newUser({ email: user.email });
        const byEmail = await stores.users
          .register({ user: again, activity: { userId: again.id, type: "register", nowMs: clock.now(), meta: META }, code: null })
          .catch((e) => e);
        expect(byEmail).toBeInstanceOf(StoreError);
        expect(byEmail.kind).toBe("email_taken");
        const other = newUser({ username: user.username });
        const byName = await stores.users
          .register({ user: other, activity: { userId: other.id, type: "register", nowMs: clock.now(), meta: META }, code: null })
          .catch((e) => e);
        expect(byName).toBeInstanceOf(StoreError);
        expect(byName.kind).toBe("username_taken");
        expect(await countOf("SELECT COUNT(*) AS n FROM profiles WHERE user_id IN (?, ?)", again.id, other.id)).toBe(0);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id IN (?, ?)", again.id, other.id)).toBe(0);
      });

      it.each([
        ["profiles", "INSERT"],
        ["activity", "INSERT"],
        ["otp_codes", "INSERT"],
        ["rate_limits", "INSERT"],
      ] as const)("registers all or nothing: a failing %s %s leaves no account", async (table, op) => {
        const { stores } = await t();
        const user = newUser({ emailVerified: false });
        await withFault(table, op, () =>
          stores.users.register({
            user,
            activity: { userId: user.id, type: "register", nowMs: clock.now(), meta: META },
            code: newCode(user.email, "verify_email"),
          }),
        );
        expect(await stores.users.byId(user.id)).toBeNull();
        expect(await countOf("SELECT COUNT(*) AS n FROM profiles WHERE user_id = ?", user.id)).toBe(0);
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `otpPerEmailMinute:verify_email:${user.email}`)).toBe(
          0,
        );
      });

      it("lets exactly one of twenty concurrent registrations of one email through", async () => {
        const { stores } = await t();
        const email = `${uid("race")}@example.com`;
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, () => {
            const user = newUser({ email });
            return stores.users.register({
              user,
              activity: { userId: user.id, type: "register", nowMs: clock.now(), meta: META },
              code: null,
            });
          }),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) if (r.status === "rejected") expect((r.reason as StoreError).kind).toBe("email_taken");
        expect(await countOf("SELECT COUNT(*) AS n FROM users WHERE email = ?", email)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM profiles p JOIN users u ON u.id = p.user_id WHERE u.email = ?", email)).toBe(1);
      });

      it("reserves a password login on both counters, each identifier under itself, and records failures only for accounts", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const first = await stores.users.beginPasswordLogin({ email: user.email }, "192.0.2.1", clock.now());
        expect(first.user?.id).toBe(user.id);
        expect(first.identifier?.count).toBe(1);
        const byName = await stores.users.beginPasswordLogin({ username: user.username ?? "" }, "192.0.2.1", clock.now());
        expect(byName.identifier?.count).toBe(1); // the username's own counter, not the address's
        expect(byName.ip?.count).toBe(2);
        const again = await stores.users.beginPasswordLogin({ email: user.email }, "192.0.2.1", clock.now());
        expect(again.identifier?.count).toBe(2);
        const unknown = await stores.users.beginPasswordLogin({ email: "nobody@example.com" }, "192.0.2.2", clock.now());
        expect(unknown.user).toBeNull();
        expect(unknown.identifier?.count).toBeGreaterThanOrEqual(1);

        const entry = { userId: "", type: "login_failed" as const, nowMs: clock.now(), meta: META };
        await stores.users.recordLoginFailure({ email: user.email }, entry);
        await stores.users.recordLoginFailure({ email: "nobody@example.com" }, entry);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'login_failed'", user.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ''")).toBe(0);
      });

      it("authenticates with the session's liveness and, on request, the profile", async () => {
        const { user } = await registered();
        const { stores } = await t();
        expect(await stores.users.authenticate("missing", "x", { withProfile: false })).toBeNull();
        const token = await signedIn(user);
        const live = await stores.users.authenticate(user.id, token.familyId, { withProfile: true });
        expect(live).toMatchObject({ user: { id: user.id }, sessionLive: true, profile: { userId: user.id } });
        expect((await stores.users.authenticate(user.id, "other-family", { withProfile: false }))?.sessionLive).toBe(false);
      });

      it("renames with a profile change in one batch: all of it or nothing", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const rename = (username: string, name: string) =>
          stores.users.updateIdentifiers({
            userId: user.id,
            signInsValidAfter: user.tokensValidAfter,
            username,
            pendingEmail: undefined,
            nowMs: clock.now(),
            cancelPendingCodes: false,
            code: null,
            emailChange: null,
            renamed: { userId: user.id, type: "username_changed", nowMs: clock.now(), meta: META },
            release: null,
            profile: { changes: { name }, activity: { userId: user.id, type: "profile_updated", nowMs: clock.now(), meta: META } },
          });
        await withFault("profiles", "UPDATE", () => rename(`${user.username}x`, "Grace"));
        expect(await stores.users.byId(user.id)).toMatchObject({ username: user.username });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'username_changed'", user.id)).toBe(0);
        expect(await rename(`${user.username}y`, "Ada")).toBe(true);
        expect(await stores.users.byId(user.id)).toMatchObject({ username: `${user.username}y` });
        expect((await stores.profiles.byUser(user.id))?.name).toBe("Ada");
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'profile_updated'", user.id)).toBe(1);
      });

      it("holds a username given up by a rename (for its owner) or a deletion (for no one), in the same batch", async () => {
        const { user } = await registered();
        const { stores } = await t();
        clock.advance(8 * 86_400_000); // kept past the tenure (USERNAME_TENURE_MS)
        const before = clock.now() - 1;
        const renamed = await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          username: `${user.username}z`,
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code: null,
          emailChange: null,
          renamed: null,
          release: null,
        });
        expect(renamed).toBe(true);
        expect(await stores.users.releasedUsername(user.username as string, before)).toEqual({ holder: user.id });
        expect(await stores.users.releasedUsername(user.username as string, clock.now())).toBeNull();
        expect(await stores.users.releasedUsername(`${user.username}z`, before)).toBeNull();
        clock.advance(8 * 86_400_000);
        const now = await stores.users.byId(user.id);
        expect(await stores.users.delete(now as NonNullable<typeof now>, null, null, clock.now())).toBe("deleted");
        expect(await stores.users.releasedUsername(`${user.username}z`, before)).toEqual({ holder: null });
        // Past their hold, both go (at most `limit` a statement).
        expect(await stores.users.purgeReleasedUsernames(clock.now() + 1, 1)).toBe(1);
        expect(await stores.users.purgeReleasedUsernames(clock.now() + 1, 500)).toBeGreaterThanOrEqual(1);
        expect(await stores.users.releasedUsername(`${user.username}z`, before)).toBeNull();
      });

      it("changes identifiers with a pending email's code, the entry and the password check's release in one batch", async () => {
        const { user } = await registered();
        const { stores } = await t();
        await stores.counters.reservePasswordCheck({ email: user.email }, META.ip, clock.now());
        const code = newCode("new@example.com", "change_email");
        await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          username: "renamed",
          pendingEmail: "new@example.com",
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code,
          emailChange: {
            activity: { userId: user.id, type: "email_change_requested", nowMs: clock.now(), meta: META },
            asRead: user,
            notice: newNotice(),
          },
          renamed: { userId: user.id, type: "username_changed", nowMs: clock.now(), meta: META },
          release: { identifier: { email: user.email }, ip: META.ip },
        });
        expect(await stores.users.byId(user.id)).toMatchObject({ username: "renamed", pendingEmail: "new@example.com" });
        // The rename's entry names the username it replaced, as read when the batch ran.
        expect(
          await countOf(
            "SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'username_changed' AND details = json_object('from', ?, 'to', 'renamed')",
            user.id,
            user.username,
          ),
        ).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM otp_codes WHERE id = ?", code.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:email:${user.email}`)).toBe(
          0,
        );
        // Cancelling the pending change, with a rename.
        const cancel = (username: string, signInsValidAfter: number) => ({
          userId: user.id,
          signInsValidAfter,
          username,
          pendingEmail: null,
          nowMs: clock.now(),
          cancelPendingCodes: true,
          code: null,
          emailChange: null,
          renamed: null,
          release: null,
        });
        // Read before the account's sign-ins ended (another tokens_valid_after): no rename, no cancellation.
        expect(await stores.users.updateIdentifiers(cancel("thief", user.tokensValidAfter - 1000))).toBe(false);
        expect(await stores.users.byId(user.id)).toMatchObject({ username: "renamed", pendingEmail: "new@example.com" });
        expect(await countOf("SELECT COUNT(*) AS n FROM otp_codes WHERE id = ? AND consumed_at IS NULL", code.id)).toBe(1);
        expect(await stores.users.updateIdentifiers(cancel("renamed", user.tokensValidAfter))).toBe(true);
        expect(await countOf("SELECT COUNT(*) AS n FROM otp_codes WHERE id = ? AND consumed_at IS NOT NULL", code.id)).toBe(1);
      });

      it.each([
        ["refresh_tokens", "UPDATE"],
        ["activity", "INSERT"],
        ["rate_limits", "DELETE"],
      ] as const)("changes a password all or nothing: a failing %s %s keeps the old hash and sessions", async (table, op) => {
        const { user } = await registered();
        const { stores } = await t();
        const keep = await signedIn(user);
        const other = await signedIn(user);
        await stores.counters.reservePasswordCheck({ email: user.email }, META.ip, clock.now());
        await withFault(table, op, () =>
          stores.users.changePassword({
            asRead: user,
            passwordHash: "new-hash",
            keepSessionId: keep.familyId,
            nowMs: clock.now(),
            activity: { userId: user.id, type: "password_changed", nowMs: clock.now(), meta: META },
            release: { identifier: { email: user.email }, ip: META.ip },
          }),
        );
        expect((await stores.users.byId(user.id))?.passwordHash).toBe("hash");
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_at IS NULL", other.id)).toBe(1);
      });

      it("changes a password: other sessions end, access tokens are cut off, this one stays", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const keep = await signedIn(user);
        const other = await signedIn(user);
        clock.advance(1500);
        await stores.users.changePassword({
          asRead: user,
          passwordHash: "new-hash",
          keepSessionId: keep.familyId,
          nowMs: clock.now(),
          activity: { userId: user.id, type: "password_changed", nowMs: clock.now(), meta: META },
          release: null,
        });
        const after = await stores.users.byId(user.id);
        expect(after?.passwordHash).toBe("new-hash");
        expect(after?.tokensValidAfter).toBe(Math.floor(clock.now() / 1000) * 1000);
        expect(
          await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_reason = 'password_changed'", other.id),
        ).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_at IS NULL", keep.id)).toBe(1);
      });

      it.each([
        ["a new password hash", { passwordHash: "reset-hash" }],
        ["sign-ins ended since", { tokensValidAfter: 1 }],
      ] as const)("writes nothing authorised by the account as read when it has %s", async (_what, changed) => {
        const { user } = await registered();
        const { stores, run } = await t();
        const other = await signedIn(user);
        // What a reset (or logout-all) commits between the caller's read and its write.
        if ("passwordHash" in changed) await run("UPDATE users SET password_hash = ? WHERE id = ?", changed.passwordHash, user.id);
        else await run("UPDATE users SET tokens_valid_after = ? WHERE id = ?", changed.tokensValidAfter, user.id);
        const now = await stores.users.byId(user.id);
        const entry = { userId: user.id, nowMs: clock.now(), meta: META };
        expect(
          await stores.users.changePassword({
            asRead: user,
            passwordHash: "thief-hash",
            keepSessionId: "none",
            nowMs: clock.now(),
            activity: { ...entry, type: "password_changed" },
            release: null,
          }),
        ).toBe(false);
        const code = newCode("thief@example.com", "change_email");
        expect(
          await stores.users.updateIdentifiers({
            userId: user.id,
            signInsValidAfter: user.tokensValidAfter,
            username: "thief",
            pendingEmail: "thief@example.com",
            nowMs: clock.now(),
            cancelPendingCodes: false,
            code,
            emailChange: { activity: { ...entry, type: "email_change_requested" }, asRead: user, notice: newNotice() },
            renamed: null,
            release: null,
          }),
        ).toBe(false);
        const unsent = deletionNotice();
        expect(await stores.users.delete(user, null, unsent, clock.now())).toBe("changed");
        expect(await countOf("SELECT COUNT(*) AS n FROM pending_notices WHERE id = ?", unsent.id)).toBe(0);
        expect(await stores.users.byId(user.id)).toEqual(now);
        expect(await countOf("SELECT COUNT(*) AS n FROM otp_codes WHERE id = ?", code.id)).toBe(0);
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_at IS NULL", other.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type <> 'register'", user.id)).toBe(1); // signedIn's login
        // Read again, the same changes go through.
        expect(await stores.users.delete(now as NonNullable<typeof now>, null, deletionNotice(), clock.now())).toBe("deleted");
      });

      it("deletes an account with everything it owns, or nothing when the delete fails", async () => {
        const { user } = await registered({ isStaff: true }, "login");
        await registered({ isStaff: true }); // so that `user` is not the last active staff account
        const { stores } = await t();
        await signedIn(user);
        const status = { id: uid("st"), userId: user.id, content: "bye", createdAt: clock.now(), updatedAt: clock.now() };
        await stores.statuses.create(
          status,
          { userId: user.id, type: "status_created", nowMs: clock.now(), meta: META },
          user.tokensValidAfter,
        );
        const auditId = uid("a");
        await stores.audit.record([
          { id: auditId, actorId: user.id, action: "config.set", target: "k", oldValue: null, newValue: "1", nowMs: clock.now() },
        ]);
        const failed = deletionNotice();
        await withFault("users", "DELETE", () => stores.users.delete(user, null, failed, clock.now()));
        expect(await stores.users.byId(user.id)).not.toBeNull();
        expect(await countOf("SELECT COUNT(*) AS n FROM statuses WHERE user_id = ?", user.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM pending_notices WHERE id = ?", failed.id)).toBe(0);
        const notice = deletionNotice();
        expect(await stores.users.delete(user, { identifier: { email: user.email }, ip: META.ip }, notice, clock.now())).toBe("deleted");
        expect(await stores.users.byId(user.id)).toBeNull();
        // The notice to its address outlives it.
        expect(await countOf("SELECT COUNT(*) AS n FROM pending_notices WHERE id = ?", notice.id)).toBe(1);
        for (const table of ["profiles", "refresh_tokens", "otp_codes", "activity", "statuses"]) {
          expect(await countOf(`SELECT COUNT(*) AS n FROM ${table} WHERE user_id = ?`, user.id)).toBe(0);
        }
        // The audit trail keeps the entry, without its actor.
        expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE id = ? AND actor_id IS NULL", auditId)).toBe(1);
      });

      // Marking an address unverified ends the sign-ins as disabling does: such an account cannot sign in now.
      for (const flags of [{ isActive: false }, { emailVerified: false }]) {
        it(`changes flags with an audit entry; ${JSON.stringify(flags)} ends every session in the same batch`, async () => {
          const { user: staff } = await registered({ isStaff: true });
          const { user } = await registered();
          const { stores } = await t();
          const token = await signedIn(user);
          const audit = flagsAudit(staff, user);
          await withFault("admin_audit", "INSERT", () => stores.users.updateFlags(user.id, flags, clock.now(), audit));
          await withFault("refresh_tokens", "UPDATE", () => stores.users.updateFlags(user.id, flags, clock.now(), audit));
          expect(await stores.users.byId(user.id)).toMatchObject({ isActive: true, emailVerified: true, tokensValidAfter: 0 });
          expect(await stores.users.updateFlags(user.id, flags, clock.now(), audit)).toBe("applied");
          expect(await stores.users.byId(user.id)).toMatchObject({ ...flags, tokensValidAfter: Math.floor(clock.now() / 1000) * 1000 });
          expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_reason = 'admin'", token.id)).toBe(1);
          expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE target = ?", user.id)).toBe(1);
        });
      }

      it("writes a flag change only while its flags are as read and its actor is still active staff", async () => {
        const { user: staff } = await registered({ isStaff: true });
        const { user } = await registered({ emailVerified: false });
        const { stores } = await t();
        const claim = {
          unusablePasswordHash: "!unusable",
          activity: { userId: user.id, type: "email_verified" as const, nowMs: clock.now(), meta: META },
        };
        // The registrant confirmed the address meanwhile: marking it verified must not end their password.
        await (await t()).run("UPDATE users SET email_verified = 1 WHERE id = ?", user.id);
        expect(await stores.users.updateFlags(user.id, { emailVerified: true }, clock.now(), flagsAudit(staff, user), claim)).toBe(
          "changed",
        );
        expect(await stores.users.byId(user.id)).toMatchObject({ passwordHash: user.passwordHash, tokensValidAfter: 0 });
        // The actor was demoted meanwhile.
        await (await t()).run("UPDATE users SET is_staff = 0 WHERE id = ?", staff.id);
        expect(await stores.users.updateFlags(user.id, { isActive: false }, clock.now(), flagsAudit(staff, user))).toBe("not_staff");
        expect(await stores.users.byId(user.id)).toMatchObject({ isActive: true });
        expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE target = ?", user.id)).toBe(0);
      });

      describe("never leaves no active staff account", () => {
        /** `count` new active staff accounts, the only ones: the rule counts every account in the database the cases share. */
        async function onlyStaff(count: number) {
          await (await t()).run("UPDATE users SET is_staff = 0 WHERE is_staff = 1");
          const made: User[] = [];
          for (let i = 0; i < count; i++) made.push((await registered({ isStaff: true })).user);
          return made;
        }
        const activeStaff = () => countOf("SELECT COUNT(*) AS n FROM users WHERE is_staff = 1 AND is_active = 1");

        it("refuses to demote or disable the last active staff account, and writes nothing", async () => {
          const [last] = (await onlyStaff(1)) as [User];
          await registered({ isStaff: true, isActive: false }); // disabled: no staff power left to count
          const { stores } = await t();
          const token = await signedIn(last);
          for (const flags of [{ isStaff: false }, { isActive: false }, { isActive: false, isStaff: true }]) {
            expect(await stores.users.updateFlags(last.id, flags, clock.now(), flagsAudit(last, last)), JSON.stringify(flags)).toBe(
              "last_staff",
            );
          }
          expect(await stores.users.byId(last.id)).toMatchObject({ isStaff: true, isActive: true, tokensValidAfter: 0 });
          expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_at IS NULL", token.id)).toBe(1);
          expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE target = ?", last.id)).toBe(0);
          // Changes that remove no staff power still go through, and so does this one once another staff account is active.
          const { user } = await registered();
          expect(await stores.users.updateFlags(user.id, { isActive: false }, clock.now(), flagsAudit(last, user))).toBe("applied");
          const { user: other } = await registered({ isStaff: true });
          expect(await stores.users.updateFlags(last.id, { isStaff: false }, clock.now(), flagsAudit(other, last))).toBe("applied");
          expect(await activeStaff()).toBe(1);
        });

        it("refuses to delete the last active staff account, and deletes nothing", async () => {
          const [last] = (await onlyStaff(1)) as [User];
          const { stores } = await t();
          const token = await signedIn(last);
          expect(await stores.users.delete(last, null, deletionNotice(), clock.now())).toBe("last_staff");
          expect(await stores.users.byId(last.id)).toEqual(last);
          expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE id = ? AND revoked_at IS NULL", token.id)).toBe(1);
          const { user: other } = await registered({ isStaff: true });
          // Without a notice (an address never proven) too.
          expect(await stores.users.delete(last, null, null, clock.now())).toBe("deleted");
          expect(await stores.users.delete(other, null, deletionNotice(), clock.now())).toBe("last_staff");
          expect(await activeStaff()).toBe(1);
        });

        it("lets one of two staff deleting themselves at once through, never both", async () => {
          const [a, b] = (await onlyStaff(2)) as [User, User];
          const { stores } = await t();
          const results = await Promise.all([
            stores.users.delete(a, null, deletionNotice(), clock.now()),
            stores.users.delete(b, null, deletionNotice(), clock.now()),
          ]);
          expect(results.sort()).toEqual(["deleted", "last_staff"]);
          expect(await activeStaff()).toBe(1);
        });

        it("lets one of two staff demoting or disabling each other at once through, never both", async () => {
          const { stores } = await t();
          for (const flags of [{ isStaff: false }, { isActive: false }]) {
            const [a, b] = (await onlyStaff(2)) as [User, User];
            const results = await Promise.all([
              stores.users.updateFlags(b.id, flags, clock.now(), flagsAudit(a, b)),
              stores.users.updateFlags(a.id, flags, clock.now(), flagsAudit(b, a)),
            ]);
            expect(results.sort(), JSON.stringify(flags)).toEqual(["applied", "last_staff"]);
            expect(await activeStaff()).toBe(1);
          }
        });
      });

      it("searches by prefix, newest first, in pages", async () => {
        const prefix = uid("srch");
        const made: User[] = [];
        for (let i = 0; i < 3; i++) {
          clock.advance(1000);
          made.push((await registered({ email: `${prefix}${i}@example.com`, username: `${prefix}${i}` })).user);
        }
        const { stores } = await t();
        const page1 = await stores.users.search(prefix, { limit: 2, cursor: null });
        expect(page1.map((u) => u.id)).toEqual([made[2]?.id, made[1]?.id, made[0]?.id]);
        const last = page1[1] as User;
        const page2 = await stores.users.search(prefix, { limit: 2, cursor: { t: last.createdAt, id: last.id } });
        expect(page2.map((u) => u.id)).toEqual([made[0]?.id]);
        expect(await stores.users.search(`${prefix}%`, { limit: 5, cursor: null })).toEqual([]); // `%` is literal
      });
    });

    describe("profiles", () => {
      it("reads, ensures, updates and points at avatars, returning the key each change replaced", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const session = { tokensValidAfter: 0, sessionId: (await signedIn(user)).familyId };
        const entry = { userId: user.id, type: "profile_updated" as const, nowMs: clock.now(), meta: META };
        expect(await stores.profiles.update(user.id, { changes: { name: "Ada", age: 36 }, activity: entry }, 0)).toBe(true);
        expect(await stores.profiles.byUser(user.id)).toMatchObject({ name: "Ada", age: 36, surname: null });
        const stored = (await stores.profiles.byUser(user.id)) as Profile;
        expect((await stores.profiles.ensure({ ...stored, name: "ignored" })).name).toBe("Ada");
        const avatar = { userId: user.id, type: "avatar_updated" as const, nowMs: clock.now(), meta: META };
        expect(
          await stores.profiles.setAvatar(user.id, { key: "a/1.png", contentType: "image/png", etag: "e1" }, clock.now(), avatar, session),
        ).toEqual({ written: true, replacedKey: null });
        expect(
          await stores.profiles.setAvatar(user.id, { key: "a/2.png", contentType: "image/png", etag: "e2" }, clock.now(), avatar, session),
        ).toEqual({ written: true, replacedKey: "a/1.png" });
        expect(await stores.profiles.publicAvatar(user.id)).toEqual({ key: "a/2.png", etag: "e2", contentType: "image/png" });
        const removal = { ...avatar, type: "avatar_deleted" as const };
        expect(await stores.profiles.setAvatar(user.id, null, clock.now(), removal, session)).toEqual({
          written: true,
          replacedKey: "a/2.png",
        });
        // Removing it again changes nothing and records nothing.
        expect(await stores.profiles.setAvatar(user.id, null, clock.now(), removal, session)).toEqual({ written: true, replacedKey: null });
        // Read before the account's sign-ins ended (another tokens_valid_after): nothing is written.
        const stale = await stores.profiles.setAvatar(
          user.id,
          { key: "a/9.png", contentType: "image/png", etag: "e9" },
          clock.now(),
          avatar,
          { ...session, tokensValidAfter: 1 },
        );
        expect(stale).toEqual({ written: false, replacedKey: null });
        // Nor once this sign-in alone has ended (signed out, or ended from the sessions list).
        const other = { tokensValidAfter: 0, sessionId: (await signedIn(user)).familyId };
        await stores.tokens.revokeSession(user.id, other.sessionId, clock.now(), A_DAY, {
          userId: user.id,
          type: "session_revoked",
          nowMs: clock.now(),
          meta: META,
        });
        const ended = await stores.profiles.setAvatar(
          user.id,
          { key: "a/8.png", contentType: "image/png", etag: "e8" },
          clock.now(),
          avatar,
          other,
        );
        expect(ended).toEqual({ written: false, replacedKey: null });
        expect(await stores.profiles.publicAvatar(user.id)).toMatchObject({ key: null });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'avatar_deleted'", user.id)).toBe(1);
        await withFault("activity", "INSERT", () => stores.profiles.update(user.id, { changes: { name: "Grace" }, activity: entry }, 0));
        expect((await stores.profiles.byUser(user.id))?.name).toBe("Ada");
        // Read before the account's sign-ins ended: nothing is written.
        expect(await stores.profiles.update(user.id, { changes: { name: "Grace" }, activity: entry }, 1)).toBe(false);
        expect((await stores.profiles.byUser(user.id))?.name).toBe("Ada");
      });

      it("writes nothing, and says so, for a profile whose account is gone", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const session = { tokensValidAfter: 0, sessionId: (await signedIn(user)).familyId };
        await stores.users.delete(user, null, deletionNotice(), clock.now());
        const entry = { userId: user.id, type: "profile_updated" as const, nowMs: clock.now(), meta: META };
        expect(await stores.profiles.update(user.id, { changes: { name: "Ada" }, activity: entry }, 0)).toBe(false);
        const avatar = { userId: user.id, type: "avatar_updated" as const, nowMs: clock.now(), meta: META };
        expect(
          await stores.profiles.setAvatar(user.id, { key: "a/3.png", contentType: "image/png", etag: "e3" }, clock.now(), avatar, session),
        ).toEqual({ written: false, replacedKey: null });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ?", user.id)).toBe(0);
      });

      it("shows only verified, enabled accounts in public, oldest first, by username or name prefix", async () => {
        const prefix = uid("dir");
        clock.advance(1000);
        const { user: a } = await registered({ username: `${prefix}a` });
        clock.advance(1000);
        const { user: hidden } = await registered({ username: `${prefix}h`, emailVerified: false });
        clock.advance(1000);
        const { user: b } = await registered({ username: `${prefix}b` });
        const { stores } = await t();
        const rows = await stores.profiles.directory({ usernamePrefix: prefix, namePrefix: prefix }, { limit: 10, cursor: null });
        expect(rows.map((r) => r.id)).toEqual([a.id, b.id]);
        const after = await stores.profiles.directory(
          { usernamePrefix: prefix, namePrefix: prefix },
          { limit: 10, cursor: { t: a.createdAt, id: a.id } },
        );
        expect(after.map((r) => r.id)).toEqual([b.id]);
        expect(await stores.profiles.publicProfile({ id: hidden.id })).toBeNull();
        expect(await stores.profiles.publicProfile({ id: "-", username: hidden.username ?? "" })).toBeNull();
        expect(await stores.profiles.publicProfile({ id: a.id })).toMatchObject({
          id: a.id,
          username: a.username,
          name: null,
          avatarKey: null,
        });
        expect(await stores.profiles.publicProfile({ id: "-", username: b.username ?? "" })).toMatchObject({ id: b.id });
        // A key that is one account's id and another's username names the account with that id.
        expect(await stores.profiles.publicProfile({ id: a.id, username: b.username ?? "" })).toMatchObject({ id: a.id });
        expect(await stores.profiles.publicProfile({ id: b.username ?? "", username: b.username ?? "" })).toMatchObject({ id: b.id });
      });
    });

    describe("tokens", () => {
      it("signs in: the token, the release of both reservations, the entry and an upgraded hash", async () => {
        const { user } = await registered();
        const { stores } = await t();
        await stores.counters.reservePasswordCheck({ email: user.email }, "192.0.2.9", clock.now());
        await stores.counters.reservePasswordCheck({ username: user.username ?? "" }, "192.0.2.10", clock.now());
        const token = newToken(user.id);
        await stores.tokens.signIn({
          token,
          verified: { passwordHash: user.passwordHash, tokensValidAfter: user.tokensValidAfter },
          release: { identifier: { email: user.email }, ip: "192.0.2.9" },
          activity: { userId: user.id, type: "login", nowMs: clock.now(), meta: META },
          rehash: "upgraded",
          nowMs: clock.now(),
        });
        expect(await stores.tokens.byHash(token.tokenHash)).toMatchObject({ id: token.id, revokedAt: null });
        expect((await stores.users.byId(user.id))?.passwordHash).toBe("upgraded");
        // The failures of the identifier that signed in are forgiven; the other's are left as they are.
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:email:${user.email}`)).toBe(
          0,
        );
        expect(
          await countOf("SELECT count AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:username:${user.username}`),
        ).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ? AND count = 0", "loginFailuresPerIp:192.0.2.9")).toBe(1);
      });

      it("signs in only while the account is as the password was checked against", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const attempt = (verified: { passwordHash: string; tokensValidAfter: number }) => {
          const token = newToken(user.id);
          const signedIn = stores.tokens.signIn({
            token,
            verified,
            release: { identifier: { email: user.email }, ip: META.ip },
            activity: { userId: user.id, type: "login", nowMs: clock.now(), meta: META },
            rehash: "upgraded-by-a-stale-sign-in",
            nowMs: clock.now(),
          });
          return { token, signedIn };
        };
        const stale = attempt({ passwordHash: "another-password", tokensValidAfter: user.tokensValidAfter });
        expect(await stale.signedIn).toBe(false);
        const ended = attempt({ passwordHash: user.passwordHash, tokensValidAfter: user.tokensValidAfter - 1000 });
        expect(await ended.signedIn).toBe(false);
        for (const { token } of [stale, ended]) expect(await stores.tokens.byHash(token.tokenHash)).toBeNull();
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'login'", user.id)).toBe(0);
        // A hash upgrade applies only over the hash that was checked.
        expect((await stores.users.byId(user.id))?.passwordHash).toBe(user.passwordHash);
      });

      it("signs in all or nothing: a failing activity insert leaves no token", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const token = newToken(user.id);
        await withFault("activity", "INSERT", () =>
          stores.tokens.signIn({
            token,
            verified: { passwordHash: user.passwordHash, tokensValidAfter: user.tokensValidAfter },
            release: { identifier: { email: user.email }, ip: META.ip },
            activity: { userId: user.id, type: "login", nowMs: clock.now(), meta: META },
            rehash: null,
            nowMs: clock.now(),
          }),
        );
        expect(await stores.tokens.byHash(token.tokenHash)).toBeNull();
      });

      it("looks a token up with its owner's state and counts the IP's refresh", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const token = await signedIn(user);
        const found = await stores.tokens.lookupForRefresh(token.tokenHash, "192.0.2.50", clock.now());
        expect(found.found).toMatchObject({ token: { id: token.id }, userActive: true });
        expect(found.counter?.count).toBe(1);
        expect((await stores.tokens.lookupForRefresh("nope", "192.0.2.50", clock.now())).counter?.count).toBe(2);
      });

      it("rotates once: the successor exists only if the parent was live", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const parent = await signedIn(user);
        const child = newToken(user.id, { familyId: parent.familyId, parentId: parent.id });
        expect(await stores.tokens.rotate(parent.id, child, clock.now())).toBe(true);
        const again = newToken(user.id, { familyId: parent.familyId, parentId: parent.id });
        expect(await stores.tokens.rotate(parent.id, again, clock.now())).toBe(false);
        expect(await stores.tokens.byHash(again.tokenHash)).toBeNull();
        expect(await stores.tokens.byHash(parent.tokenHash)).toMatchObject({ revokedReason: "rotated" });
      });

      it("lets exactly one of ten concurrent rotations of one token make a successor", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const parent = await signedIn(user);
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            stores.tokens.rotate(parent.id, newToken(user.id, { familyId: parent.familyId, parentId: parent.id }), clock.now()),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE parent_id = ?", parent.id)).toBe(1);
      });

      it.each([
        ["INSERT"],
        ["UPDATE"],
      ] as const)("rotates all or nothing: a failing refresh_tokens %s keeps the parent live", async (op) => {
        const { user } = await registered();
        const { stores } = await t();
        const parent = await signedIn(user);
        await withFault("refresh_tokens", op, () =>
          stores.tokens.rotate(parent.id, newToken(user.id, { familyId: parent.familyId, parentId: parent.id }), clock.now()),
        );
        expect(await stores.tokens.byHash(parent.tokenHash)).toMatchObject({ revokedAt: null });
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = ?", parent.familyId)).toBe(1);
      });

      it("revokes a family, a session, or every session, each with its entries", async () => {
        const { user: staff } = await registered({ isStaff: true });
        const { user } = await registered();
        const { stores } = await t();
        const a = await signedIn(user);
        const b = await signedIn(user);
        const c = await signedIn(user);
        expect(await stores.tokens.countLiveSessions(user.id, clock.now(), A_DAY)).toBe(3);
        await stores.tokens.revokeFamily(a.familyId, "logout", clock.now(), {
          userId: user.id,
          type: "logout",
          nowMs: clock.now(),
          meta: META,
        });
        expect(await stores.tokens.isLiveSession(user.id, a.familyId, clock.now(), A_DAY)).toBe(false);
        expect(await stores.tokens.isLiveSession(user.id, b.familyId, clock.now(), A_DAY)).toBe(true);
        expect(await stores.tokens.isLiveSession(staff.id, b.familyId, clock.now(), A_DAY)).toBe(false);
        const revoked = { userId: user.id, type: "session_revoked" as const, nowMs: clock.now(), meta: META };
        await stores.tokens.revokeSession(user.id, b.familyId, clock.now(), A_DAY, revoked);
        await stores.tokens.revokeSession(user.id, b.familyId, clock.now(), A_DAY, revoked); // already ended: no second entry
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'session_revoked'", user.id)).toBe(1);
        await stores.tokens.endAllSessions(user.id, {
          reason: "admin",
          nowMs: clock.now(),
          activity: { userId: user.id, type: "logout_all", nowMs: clock.now(), meta: META },
          audit: { actorId: staff.id, action: "user.logout_all", target: user.id, oldValue: null, newValue: null, nowMs: clock.now() },
        });
        expect(await stores.tokens.byHash(c.tokenHash)).toMatchObject({ revokedReason: "admin" });
        expect(await stores.tokens.countLiveSessions(user.id, clock.now(), A_DAY)).toBe(0);
        expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE target = ? AND action = 'user.logout_all'", user.id)).toBe(1);
      });

      it("lists live sessions by last use and every session with its fate", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const first = await signedIn(user);
        clock.advance(1000);
        const second = await signedIn(user);
        clock.advance(1000);
        const child = newToken(user.id, { familyId: first.familyId, parentId: first.id });
        await stores.tokens.rotate(first.id, child, clock.now());
        const live = await stores.tokens.liveSessions(user.id, clock.now(), A_DAY);
        expect(live.map((s) => s.familyId)).toEqual([first.familyId, second.familyId]);
        expect(live[0]).toMatchObject({ firstAt: first.createdAt, lastAt: child.createdAt });
        await stores.tokens.revokeFamily(second.familyId, "logout", clock.now(), {
          userId: user.id,
          type: "logout",
          nowMs: clock.now(),
          meta: META,
        });
        const all = await stores.tokens.allSessions(user.id);
        expect(all.map((s) => [s.familyId, s.revokedReason])).toEqual([
          [first.familyId, null],
          [second.familyId, "logout"],
        ]);
      });

      it("counts a sign-in live only within the idle and absolute lifetimes given, whatever its token's stored expiry", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const idle = await signedIn(user);
        clock.advance(2 * 3_600_000);
        const busy = await signedIn(user);
        const hour = { idleSeconds: 3600, maxAgeSeconds: 86_400 };
        expect((await stores.tokens.liveSessions(user.id, clock.now(), hour)).map((s) => s.familyId)).toEqual([busy.familyId]);
        expect(await stores.tokens.isLiveSession(user.id, idle.familyId, clock.now(), hour)).toBe(false);
        expect(await stores.tokens.isLiveSession(user.id, busy.familyId, clock.now(), hour)).toBe(true);
        // An absolute lifetime of ninety minutes ends the older sign-in the same way.
        const short = { idleSeconds: 86_400, maxAgeSeconds: 5400 };
        expect((await stores.tokens.liveSessions(user.id, clock.now(), short)).map((s) => s.familyId)).toEqual([busy.familyId]);
        expect((await stores.tokens.liveSessions(user.id, clock.now(), A_DAY)).map((s) => s.familyCreatedAt)).toEqual([
          busy.familyCreatedAt,
          idle.familyCreatedAt,
        ]);
      });

      it("purges only families whose every token has expired", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const old = await signedIn(user);
        clock.advance(86_400_000 + 1);
        const fresh = await signedIn(user);
        expect(await stores.tokens.purgeDead(clock.now(), 500)).toBeGreaterThanOrEqual(1);
        expect(await stores.tokens.byHash(old.tokenHash)).toBeNull();
        expect(await stores.tokens.byHash(fresh.tokenHash)).not.toBeNull();
      });
    });

    describe("codes", () => {
      it("issues a code by address only for a live account, counting the IP and the address", async () => {
        const { user } = await registered();
        const { stores } = await t();
        clock.advance(61_000);
        const code = newCode(user.email, "login");
        const counters = await stores.codes.issueByAddress({ code, ip: "192.0.2.77", meta: META });
        expect(counters.ip?.count).toBe(1);
        expect(counters.hour?.count).toBe(1);
        expect(await stores.codes.state(code.id)).toEqual({ createdAt: code.createdAt, consumedAt: null, expiresAt: code.expiresAt });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'otp_requested'", user.id)).toBe(1);
        const nobody = newCode(`${uid("nobody")}@example.com`, "login");
        await stores.codes.issueByAddress({ code: nobody, ip: "192.0.2.77", meta: META });
        expect(await stores.codes.state(nobody.id)).toBeNull();
        // A second request within the minute stores nothing and leaves the hour alone.
        const again = newCode(user.email, "login");
        expect((await stores.codes.issueByAddress({ code: again, ip: "192.0.2.77", meta: META })).hour).toBeUndefined();
        expect(await stores.codes.state(again.id)).toBeNull();
      });

      it("unissues a code whose mail was not queued: voided, and its minute and hour given back; a code never stored changes nothing", async () => {
        const { user } = await registered();
        const { stores } = await t();
        clock.advance(61_000);
        const code = newCode(user.email, "reset_password");
        expect((await stores.codes.issueByAddress({ code, ip: uid("ip"), meta: META })).hour?.count).toBe(1);
        await stores.codes.unissue(code);
        expect((await stores.codes.state(code.id))?.consumedAt).toBe(code.createdAt);
        // Within the same minute, a new code is stored, and the hour counts it as the first.
        const again = newCode(user.email, "reset_password");
        expect((await stores.codes.issueByAddress({ code: again, ip: uid("ip"), meta: META })).hour?.count).toBe(1);
        expect((await stores.codes.state(again.id))?.consumedAt).toBeNull();
        // Unissuing the code that was never stored (throttled) gives back nothing of the one that was.
        const throttled = newCode(user.email, "reset_password");
        await stores.codes.issueByAddress({ code: throttled, ip: uid("ip"), meta: META });
        await stores.codes.unissue(throttled);
        expect(
          (await stores.codes.issueByAddress({ code: newCode(user.email, "reset_password"), ip: uid("ip"), meta: META })).hour,
        ).toBeUndefined();
        expect((await stores.codes.state(again.id))?.consumedAt).toBeNull();
      });

      /** A code check by address, from a client of its own. */
      const checkByAddress = (address: string, purpose: OtpPurpose, limits: { maxAttempts: number; failureLimit: number }) => ({
        address,
        purpose,
        owner: { by: "address" as const },
        ip: uid("ip"),
        ...limits,
        nowMs: clock.now(),
      });

      it("checks by reserving one attempt on the newest live code, up to the maximum", async () => {
        const { user, code } = await registered({ emailVerified: false }, "verify_email");
        const { stores } = await t();
        const input = checkByAddress(user.email, "verify_email", { maxAttempts: 2, failureLimit: 20 });
        const first = await stores.codes.check(input);
        expect(first).toMatchObject({
          user: { id: user.id },
          ip: { count: 1 },
          failures: { count: 1 },
          reserved: { id: code?.id, codeHash: "code-hash" },
        });
        expect((await stores.codes.check(input)).reserved?.id).toBe(code?.id);
        expect((await stores.codes.check(input)).reserved).toBeUndefined();
        // An address without an account: counted the same (no code to reserve).
        const unknown = await stores.codes.check({ ...input, address: `${uid("nobody")}@example.com` });
        expect(unknown).toMatchObject({ user: null, ip: { count: 4 }, failures: { count: 1 }, reserved: undefined });
      });

      it("gives back what a check took for a right code left unspent: its try and the address's count", async () => {
        const { user, code } = await registered({ emailVerified: false }, "verify_email");
        const { stores } = await t();
        const input = checkByAddress(user.email, "verify_email", { maxAttempts: 1, failureLimit: 20 });
        expect((await stores.codes.check(input)).reserved?.id).toBe(code?.id);
        await stores.codes.giveBack(code?.id ?? "");
        // The one try is back, and the address's count with it.
        expect(await stores.codes.check(input)).toMatchObject({ failures: { count: 1 }, reserved: { id: code?.id } });
        expect((await stores.codes.check(input)).reserved).toBeUndefined();
        // A spent code gets nothing back.
        await stores.codes.spendForVerification(
          code?.id ?? "",
          { userId: user.id, type: "email_verified", nowMs: clock.now(), meta: META },
          { release: null },
        );
        await stores.codes.giveBack(code?.id ?? "");
        expect(await countOf("SELECT attempts AS n FROM otp_codes WHERE id = ?", code?.id)).toBe(1);
      });

      it("checks nothing of the address for a client past its limit, nor past the address's ceiling", async () => {
        const { user, code } = await registered({}, "login");
        const { stores } = await t();
        const input = checkByAddress(user.email, "login", { maxAttempts: 5, failureLimit: 1 });
        for (let i = 0; i < 50; i++) await stores.codes.check({ ...input, address: "nobody@example.com" });
        expect(await stores.codes.check(input)).toMatchObject({ ip: { count: 51 }, failures: undefined, reserved: undefined });
        const other = { ...input, ip: uid("ip") };
        expect((await stores.codes.check(other)).reserved?.id).toBe(code?.id);
        expect(await stores.codes.check(other)).toMatchObject({ failures: { count: 2 }, reserved: undefined });
      });

      it("records a failure: the daily counter, the code killed at its last attempt, the entries for an account", async () => {
        const { user, code } = await registered({}, "login");
        const { stores } = await t();
        const check = checkByAddress(user.email, "login", { maxAttempts: 1, failureLimit: 1 });
        const reserved = await stores.codes.check(check);
        await stores.codes.recordFailure({
          ...check,
          reservedId: reserved.reserved?.id ?? null,
          failureCount: reserved.failures?.count ?? null,
          meta: META,
        });
        expect((await stores.codes.state(code?.id ?? ""))?.consumedAt).toBe(clock.now());
        expect(
          await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type IN ('login_failed', 'otp_locked')", user.id),
        ).toBe(2);
        expect((await stores.codes.check(check)).failures?.count).toBe(2);
      });

      it("spends a code exactly once, and not at all when the change fails", async () => {
        const { user, code } = await registered({ emailVerified: false }, "verify_email");
        const { stores } = await t();
        const entry = { userId: user.id, type: "email_verified" as const, nowMs: clock.now(), meta: META };
        await withFault("users", "UPDATE", () => stores.codes.spendForVerification(code?.id ?? "", entry, { release: null }));
        expect((await stores.codes.state(code?.id ?? ""))?.consumedAt).toBeNull();
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'email_verified'", user.id)).toBe(0);
        const results = await Promise.all([1, 2, 3].map(() => stores.codes.spendForVerification(code?.id ?? "", entry, { release: null })));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await stores.users.byId(user.id))?.emailVerified).toBe(true);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'email_verified'", user.id)).toBe(1);
      });

      it("spends a login code: claims an unverified account and starts the sign-in", async () => {
        const { user, code } = await registered({ emailVerified: false }, "login");
        const { stores } = await t();
        const earlier = await signedIn(user);
        const token = newToken(user.id);
        const spent = await stores.codes.spendForLogin(
          code?.id ?? "",
          { userId: user.id, type: "login", nowMs: clock.now(), meta: META },
          {
            user,
            token,
            unusablePasswordHash: "!",
            verifiedEntry: { userId: user.id, type: "email_verified", nowMs: clock.now(), meta: META },
          },
        );
        expect(spent).toBe(true);
        expect(await stores.users.byId(user.id)).toMatchObject({ emailVerified: true, passwordHash: "!" });
        expect(await stores.tokens.byHash(earlier.tokenHash)).toMatchObject({ revokedReason: "email_claimed" });
        expect(await stores.tokens.byHash(token.tokenHash)).toMatchObject({ revokedAt: null });
      });

      it("spends a reset code: new hash, verified, every session ended, every other code voided", async () => {
        const { user, code } = await registered({}, "reset_password");
        const { stores } = await t();
        const session = await signedIn(user);
        const login = newCode(user.email, "login");
        await stores.codes.issueByAddress({ code: login, ip: "192.0.2.78", meta: META });
        expect((await stores.codes.state(login.id))?.consumedAt).toBeNull();
        await stores.counters.reservePasswordCheck({ email: user.email }, "192.0.2.78", clock.now());
        await stores.counters.reservePasswordCheck({ username: user.username ?? "" }, "192.0.2.78", clock.now());
        expect(
          await stores.codes.spendForReset(
            code?.id ?? "",
            { userId: user.id, type: "password_reset", nowMs: clock.now(), meta: META },
            { passwordHash: "reset-hash", address: user.email },
          ),
        ).toBe(true);
        expect((await stores.users.byId(user.id))?.passwordHash).toBe("reset-hash");
        expect(await stores.tokens.byHash(session.tokenHash)).toMatchObject({ revokedReason: "password_reset" });
        expect((await stores.codes.state(login.id))?.consumedAt).toBe(clock.now());
        // The address the code proved is forgiven its failed password checks; the username is not.
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:email:${user.email}`)).toBe(
          0,
        );
        expect(
          await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:username:${user.username}`),
        ).toBe(1);
      });

      it("completes an email change, and maps an address taken meanwhile to email_taken with nothing written", async () => {
        const target = `${uid("moved")}@example.com`;
        const { user } = await registered({ pendingEmail: target });
        const { stores } = await t();
        const code = newCode(target, "change_email");
        await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          username: user.username,
          pendingEmail: target,
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code,
          emailChange: null,
          renamed: null,
          release: null,
        });
        const { user: squatter } = await registered({ email: target });
        const entry = { userId: user.id, type: "email_changed" as const, nowMs: clock.now(), meta: META };
        const error = await stores.codes
          .spendForEmailChange(code.id, entry, { address: target, keepSessionId: "none", notice: newNotice() })
          .catch((e) => e);
        expect(error).toBeInstanceOf(StoreError);
        expect(error.kind).toBe("email_taken");
        expect((await stores.codes.state(code.id))?.consumedAt).toBeNull();
        await stores.users.delete(squatter, null, deletionNotice(), clock.now());
        expect(
          await stores.codes.spendForEmailChange(code.id, entry, { address: target, keepSessionId: "none", notice: newNotice() }),
        ).toBe(true);
        expect(await stores.users.byId(user.id)).toMatchObject({ email: target, pendingEmail: null, emailVerified: true });
      });

      it("spends an email-change code only while its address is still the one pending: otherwise nothing is written", async () => {
        const target = `${uid("moved")}@example.com`;
        const { user } = await registered({ pendingEmail: target });
        const backend = await t();
        const { stores } = backend;
        const session = await signedIn(user);
        const code = newCode(target, "change_email");
        await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code,
          emailChange: null,
          renamed: null,
          release: null,
        });
        // The pending address went some way that left the code live (written directly here).
        await backend.run("UPDATE users SET pending_email = NULL WHERE id = ?", user.id);
        const entry = { userId: user.id, type: "email_changed" as const, nowMs: clock.now(), meta: META };
        const notice = newNotice();
        expect(await stores.codes.spendForEmailChange(code.id, entry, { address: target, keepSessionId: "none", notice })).toBe(false);
        expect(await stores.users.byId(user.id)).toMatchObject({ email: user.email, pendingEmail: null });
        expect(await stores.tokens.byHash(session.tokenHash)).toMatchObject({ revokedAt: null });
        expect((await stores.codes.state(code.id))?.consumedAt).toBeNull();
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'email_changed'", user.id)).toBe(0);
      });

      it.each([
        ["login", "refresh_tokens", "INSERT"],
        ["login", "rate_limits", "DELETE"],
        ["reset", "refresh_tokens", "UPDATE"],
        ["reset", "users", "UPDATE"],
        ["reset", "otp_codes", "UPDATE"],
        ["email change", "refresh_tokens", "UPDATE"],
        ["email change", "otp_codes", "UPDATE"],
      ] as const)("spends a %s code all or nothing: a failing %s %s leaves the code live and the account as it was", async (kind, table, op) => {
        const purpose = kind === "login" ? "login" : kind === "reset" ? "reset_password" : "change_email";
        const address = `${uid("spend")}@example.com`;
        const { user } = await registered(kind === "email change" ? { pendingEmail: address } : { email: address, emailVerified: false });
        const { stores } = await t();
        const session = await signedIn(user);
        await stores.counters.reservePasswordCheck({ email: user.email }, META.ip, clock.now());
        const code = newCode(address, purpose);
        await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          username: user.username,
          pendingEmail: user.pendingEmail,
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code,
          emailChange: null,
          renamed: null,
          release: null,
        });
        const entry = { userId: user.id, type: "login" as const, nowMs: clock.now(), meta: META };
        await withFault(table, op, () =>
          kind === "login"
            ? stores.codes.spendForLogin(code.id, entry, { user, token: newToken(user.id), unusablePasswordHash: "!", verifiedEntry: null })
            : kind === "reset"
              ? stores.codes.spendForReset(
                  code.id,
                  { ...entry, type: "password_reset" },
                  { passwordHash: "reset-hash", address: user.email },
                )
              : stores.codes.spendForEmailChange(
                  code.id,
                  { ...entry, type: "email_changed" },
                  { address, keepSessionId: "none", notice: newNotice() },
                ),
        );
        expect((await stores.codes.state(code.id))?.consumedAt).toBeNull();
        expect(await stores.users.byId(user.id)).toEqual(user);
        expect(await stores.tokens.byHash(session.tokenHash)).toMatchObject({ revokedAt: null });
        expect(await countOf("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?", user.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type <> 'register'", user.id)).toBe(1); // signedIn's login
        expect(await countOf("SELECT COUNT(*) AS n FROM rate_limits WHERE key = ?", `loginFailuresPerIdentifier:email:${user.email}`)).toBe(
          1,
        );
      });

      it("checks a code bound to the signed-in account, not to whoever owns the address", async () => {
        const address = `${uid("pending")}@example.com`;
        const { user } = await registered({ pendingEmail: address });
        const { stores } = await t();
        const code = newCode(address, "change_email");
        await stores.users.updateIdentifiers({
          userId: user.id,
          signInsValidAfter: user.tokensValidAfter,
          username: user.username,
          pendingEmail: address,
          nowMs: clock.now(),
          cancelPendingCodes: false,
          code,
          emailChange: null,
          renamed: null,
          release: null,
        });
        const input = { address, purpose: "change_email" as const, ip: uid("ip"), maxAttempts: 5, failureLimit: 20, nowMs: clock.now() };
        expect((await stores.codes.check({ ...input, owner: { by: "user", userId: user.id } })).reserved?.id).toBe(code.id);
        expect((await stores.codes.check({ ...input, owner: { by: "user", userId: "someone-else" } })).reserved).toBeUndefined();
        expect((await stores.codes.check({ ...input, owner: { by: "address" } })).reserved).toBeUndefined();
      });

      it("purges expired codes", async () => {
        const { code } = await registered({ emailVerified: false }, "verify_email");
        const { stores } = await t();
        clock.advance(600_001);
        expect(await stores.codes.purgeExpired(clock.now(), 500)).toBeGreaterThanOrEqual(1);
        expect(await stores.codes.state(code?.id ?? "")).toBeNull();
      });
    });

    describe("counters", () => {
      it("counts hits in fixed windows and purges ended ones", async () => {
        const { stores } = await t();
        const subject = uid("s");
        expect((await stores.counters.hit("statusCreatePerUser", subject, clock.now()))?.count).toBe(1);
        expect((await stores.counters.hit("statusCreatePerUser", subject, clock.now()))?.count).toBe(2);
        const mail = await stores.counters.reserveChangeMail(subject, `${subject}@example.com`, clock.now());
        expect([mail.account?.count, mail.minute?.count, mail.hour?.count]).toEqual([1, 1, 1]);
        clock.advance(60_000);
        expect((await stores.counters.hit("statusCreatePerUser", subject, clock.now()))?.count).toBe(1);
        const ended = await stores.counters.purgeEnded(clock.now() + 3_600_000, 500);
        expect(ended).toBeGreaterThanOrEqual(2);
      });

      it("counts an email change's mail on the address only while the account's counter is within its limit", async () => {
        const { stores } = await t();
        const subject = uid("m");
        const limit = 5; // RATE_LIMITS.emailChangesPerAccount
        for (let i = 0; i < limit; i++) await stores.counters.reserveChangeMail(subject, `${subject}-${i}@example.com`, clock.now());
        const over = await stores.counters.reserveChangeMail(subject, `${subject}-x@example.com`, clock.now());
        expect(over).toEqual({ account: expect.objectContaining({ count: limit + 1 }), minute: undefined, hour: undefined });
      });

      it("gives distinct counts to concurrent hits", async () => {
        const { stores } = await t();
        const subject = uid("c");
        const rows = await Promise.all(Array.from({ length: 10 }, () => stores.counters.hit("registerPerIp", subject, clock.now())));
        expect(rows.map((r) => r?.count).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });
    });

    describe("pending notices", () => {
      const lease = { baseMs: 600_000, maxMs: 3_600_000 };

      it("claims each due notice once, leasing it longer each time up to the maximum; removes, and gives up old ones", async () => {
        const backend = await t();
        const { stores } = backend;
        await backend.run("DELETE FROM pending_notices"); // only this test's notices from here on
        const now = clock.now();
        const due = { ...newNotice(), nextAttemptAt: now - 1 };
        const leased = { ...newNotice(), nextAttemptAt: now + 60_000 }; // still with its first message
        for (const n of [due, leased]) {
          await backend.run(
            "INSERT INTO pending_notices (id, message, created_at, next_attempt_at) VALUES (?, ?, ?, ?)",
            n.id,
            n.message,
            n.createdAt,
            n.nextAttemptAt,
          );
        }
        // Two runs at once: the due notice goes to exactly one of them, the leased one to neither.
        const [a, b] = await Promise.all([stores.notices.claimDue(now, 10, lease), stores.notices.claimDue(now, 10, lease)]);
        expect([...a, ...b].map((n) => n.id)).toEqual([due.id]);
        await stores.notices.remove(leased.id);
        // Each claim leases it for twice as long as the one before, up to the maximum.
        let at = now;
        let nextAt = [...a, ...b][0]?.nextAttemptAt ?? 0;
        const leases = [nextAt - at];
        for (let i = 0; i < 3; i++) {
          expect(await stores.notices.claimDue(nextAt - 1, 10, lease)).toEqual([]);
          at = nextAt;
          const [again] = await stores.notices.claimDue(at, 10, lease);
          nextAt = again?.nextAttemptAt ?? 0;
          leases.push(nextAt - at);
        }
        expect(leases).toEqual([600_000, 1_200_000, 2_400_000, 3_600_000]);
        expect(await stores.notices.abandonOlderThan(now)).toBe(0);
        expect(await stores.notices.abandonOlderThan(now + 1)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM pending_notices")).toBe(0);
      });
    });

    describe("activity", () => {
      it("records, pages newest first by (time, id), filters by type, and purges old entries", async () => {
        const { user } = await registered();
        const { stores } = await t();
        for (const type of ["login", "logout", "login"] as const) {
          clock.advance(1000);
          await stores.activity.record({ userId: user.id, type, nowMs: clock.now(), meta: META });
        }
        const all = await stores.activity.page(user.id, {}, { limit: 10, cursor: null });
        expect(all.map((e) => e.type)).toEqual(["login", "logout", "login", "register"]);
        const page = await stores.activity.page(user.id, {}, { limit: 2, cursor: null });
        const last = page[1];
        const next = await stores.activity.page(user.id, {}, { limit: 2, cursor: last ? { t: last.createdAt, id: last.id } : null });
        expect([...page.slice(0, 2), ...next].map((e) => e.id)).toEqual(all.map((e) => e.id));
        expect((await stores.activity.page(user.id, { type: "login" }, { limit: 10, cursor: null })).map((e) => e.type)).toEqual([
          "login",
          "login",
        ]);
        expect(await stores.activity.purgeOlderThan(clock.now(), 500)).toBeGreaterThanOrEqual(3);
        expect((await stores.activity.page(user.id, {}, { limit: 10, cursor: null })).map((e) => e.createdAt)).toEqual([clock.now()]);
      });

      it("records nothing, and does not fail, for an account that is gone", async () => {
        const { user } = await registered();
        const { stores } = await t();
        await stores.users.delete(user, null, deletionNotice(), clock.now());
        await stores.activity.record({ userId: user.id, type: "login_failed", nowMs: clock.now(), meta: META });
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ?", user.id)).toBe(0);
      });

      it("pages through entries of the same millisecond by id, each once (the export walks a whole history so)", async () => {
        const { user } = await registered();
        const { stores } = await t();
        for (let i = 0; i < 4; i++) await stores.activity.record({ userId: user.id, type: "login", nowMs: clock.now(), meta: META });
        const walked = [];
        let cursor = null;
        for (;;) {
          const rows = await stores.activity.page(user.id, {}, { limit: 1, cursor });
          walked.push(...rows.slice(0, 1));
          if (rows.length <= 1) break;
          cursor = { t: rows[0]?.createdAt ?? 0, id: rows[0]?.id ?? "" };
        }
        const ids = walked.map((e) => e.id);
        expect(ids).toHaveLength(5); // with the registration, also this millisecond
        expect(ids).toEqual([...ids].sort().reverse());
      });
    });

    describe("statuses", () => {
      it("creates, reads, pages, edits and deletes, recording entries in the same batch", async () => {
        const { user } = await registered();
        const { stores } = await t();
        const made = [];
        for (let i = 0; i < 3; i++) {
          clock.advance(1000);
          const row = { id: uid("st"), userId: user.id, content: `post ${i}`, createdAt: clock.now(), updatedAt: clock.now() };
          await stores.statuses.create(
            row,
            { userId: user.id, type: "status_created", nowMs: clock.now(), meta: META },
            user.tokensValidAfter,
          );
          made.push(row);
        }
        // Sign-ins ended since the request read the account (another tokens_valid_after): nothing is published.
        const late = { id: uid("st"), userId: user.id, content: "late", createdAt: clock.now(), updatedAt: clock.now() };
        const entry = { userId: user.id, type: "status_created" as const, nowMs: clock.now(), meta: META };
        expect(await stores.statuses.create(late, entry, user.tokensValidAfter - 1000)).toBe(false);
        expect(await stores.statuses.byId(late.id)).toBeNull();
        const page = await stores.statuses.page({ userId: user.id }, { limit: 2, cursor: null });
        expect(page.map((s) => s.id)).toEqual([made[2]?.id, made[1]?.id, made[0]?.id]);
        expect(page[0]?.username).toBe(user.username);
        const edited = { userId: user.id, type: "status_updated" as const, nowMs: clock.now(), meta: META };
        expect(await stores.statuses.updateContent(made[0]?.id ?? "", "edited", edited)).toBe("done");
        expect((await stores.statuses.byId(made[0]?.id ?? ""))?.content).toBe("edited");
        const deleted = { userId: user.id, type: "status_deleted" as const, nowMs: clock.now(), meta: META };
        expect(await stores.statuses.delete(made[1]?.id ?? "", deleted)).toBe("done");
        expect(await stores.statuses.delete(made[1]?.id ?? "", deleted)).toBe("gone");
        expect(await stores.statuses.updateContent(made[1]?.id ?? "", "x", edited)).toBe("gone");
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'status_deleted'", user.id)).toBe(1);
        expect(await countOf("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'status_updated'", user.id)).toBe(1);
        expect((await stores.statuses.byAuthor(user.id, { limit: 10, cursor: null })).map((s) => s.id)).toEqual([made[2]?.id, made[0]?.id]);
        expect((await stores.statuses.byAuthor(user.id, { limit: 1, cursor: null })).map((s) => s.id)).toEqual([made[2]?.id, made[0]?.id]);
        const after = { t: made[2]?.createdAt ?? 0, id: made[2]?.id ?? "" };
        expect((await stores.statuses.byAuthor(user.id, { limit: 10, cursor: after })).map((s) => s.id)).toEqual([made[0]?.id]);
        const { user: staff } = await registered({ isStaff: true });
        expect(await stores.users.updateFlags(user.id, { isActive: false }, clock.now(), flagsAudit(staff, user))).toBe("applied");
        expect(await stores.statuses.byId(made[2]?.id ?? "", { publicOnly: true })).toBeNull();
        expect(await stores.statuses.byId(made[2]?.id ?? "")).not.toBeNull();
        expect(await stores.statuses.page({ userId: user.id }, { limit: 10, cursor: null })).toEqual([]);
        // Out of public view, still listed for the export and for staff.
        expect((await stores.statuses.byAuthor(user.id, { limit: 10, cursor: null })).map((s) => s.id)).toEqual([made[2]?.id, made[0]?.id]);
      });
    });

    describe("statuses: staff acting on someone else's", () => {
      it("writes the audit entry in the same batch as the edit or the delete, and none for a status already gone", async () => {
        const { user } = await registered();
        const { user: staff } = await registered({ isStaff: true });
        const { stores } = await t();
        const row = { id: uid("st"), userId: user.id, content: "said", createdAt: clock.now(), updatedAt: clock.now() };
        await stores.statuses.create(
          row,
          { userId: user.id, type: "status_created", nowMs: clock.now(), meta: META },
          user.tokensValidAfter,
        );
        const audit = (action: "status.update" | "status.delete") => ({
          actorId: staff.id,
          action,
          target: row.id,
          oldValue: "{}",
          newValue: null,
          nowMs: clock.now(),
        });
        const entries = () => countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE target = ?", row.id);
        const deleted = { userId: user.id, type: "status_deleted" as const, nowMs: clock.now(), meta: META };
        const edited = { ...deleted, type: "status_updated" as const };

        await withFault("admin_audit", "INSERT", () => stores.statuses.updateContent(row.id, "edited", edited, audit("status.update")));
        expect((await stores.statuses.byId(row.id))?.content).toBe("said");
        expect(await stores.statuses.updateContent(row.id, "edited", edited, audit("status.update"))).toBe("done");
        expect(await entries()).toBe(1);
        // The entry records the status as it stood when written, whatever the caller passed.
        expect(
          await countOf(
            "SELECT COUNT(*) AS n FROM admin_audit WHERE target = ? AND old_value = ?",
            row.id,
            JSON.stringify({ user_id: user.id, content: "said" }),
          ),
        ).toBe(1);
        await withFault("admin_audit", "INSERT", () => stores.statuses.delete(row.id, deleted, audit("status.delete")));
        expect(await stores.statuses.byId(row.id)).not.toBeNull();
        // A staff member no longer active staff changes nothing.
        await (await t()).run("UPDATE users SET is_staff = 0 WHERE id = ?", staff.id);
        expect(await stores.statuses.delete(row.id, deleted, audit("status.delete"))).toBe("not_staff");
        expect(await stores.statuses.updateContent(row.id, "again", edited, audit("status.update"))).toBe("not_staff");
        expect((await stores.statuses.byId(row.id))?.content).toBe("edited");
        await (await t()).run("UPDATE users SET is_staff = 1 WHERE id = ?", staff.id);
        expect(await stores.statuses.delete(row.id, deleted, audit("status.delete"))).toBe("done");
        expect(await entries()).toBe(2);
        expect(await stores.statuses.updateContent(row.id, "again", edited, audit("status.update"))).toBe("gone");
        expect(await stores.statuses.delete(row.id, deleted, audit("status.delete"))).toBe("gone");
        expect(await entries()).toBe(2);
      });
    });

    describe("audit", () => {
      it("records entries together, pages them newest first with the actor's email, and removes them", async () => {
        const { user: staff } = await registered({ isStaff: true });
        const { stores } = await t();
        clock.advance(1000);
        const ids = [uid("a"), uid("a")];
        const recorded = stores.audit.record(
          ids.map((id, i) => ({
            id,
            actorId: staff.id,
            action: "config.set" as const,
            target: `key${i}`,
            oldValue: null,
            newValue: "1",
            nowMs: clock.now() + i,
          })),
        );
        expect(await recorded).toBe(true);
        const page = await stores.audit.page({ limit: 1, cursor: null });
        expect(page[0]).toMatchObject({ id: ids[1], actorEmail: staff.email, target: "key1" });
        // No longer active staff: nothing is recorded.
        await (await t()).run("UPDATE users SET is_active = 0 WHERE id = ?", staff.id);
        const late = {
          id: uid("a"),
          actorId: staff.id,
          action: "config.set" as const,
          target: "key9",
          oldValue: null,
          newValue: "1",
          nowMs: clock.now(),
        };
        expect(await stores.audit.record([late])).toBe(false);
        expect(await countOf("SELECT COUNT(*) AS n FROM admin_audit WHERE id = ?", late.id)).toBe(0);
        await stores.audit.remove(ids);
        expect(await countOf(`SELECT COUNT(*) AS n FROM admin_audit WHERE id IN (?, ?)`, ...ids)).toBe(0);
      });

      it("tells each config key's newest value in the trail's order: a reset is null, an untouched key absent", async () => {
        const { user: staff } = await registered({ isStaff: true });
        const { stores } = await t();
        const [set, reset, untouched] = [uid("k"), uid("k"), uid("k")];
        clock.advance(1000);
        const entry = (target: string, newValue: string | null, at: number, id = uid("a")) => ({
          id,
          actorId: staff.id,
          action: newValue === null ? ("config.delete" as const) : ("config.set" as const),
          target,
          oldValue: null,
          newValue,
          nowMs: at,
        });
        const now = clock.now();
        await stores.audit.record([
          entry(set, "1", now),
          // Two entries of the same millisecond: the trail orders them by id, and so does this.
          entry(set, "2", now + 1, "b-entry"),
          entry(set, "3", now + 1, "a-entry"),
          entry(reset, "9", now),
          entry(reset, null, now + 1),
          { ...entry(set, "4", now + 2), action: "user.update" as const },
        ]);
        const newest = await stores.audit.newestConfigValues([set, reset, untouched]);
        expect(Object.fromEntries(newest)).toEqual({ [set]: "2", [reset]: null });
      });
    });
  });
}
