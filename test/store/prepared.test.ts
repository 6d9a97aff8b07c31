/**
 * `prepared()` (src/store/driver.ts): a statement's SQL is built once per isolate and bound to
 * each request's own database object — awaited alone or inside a batch — with the values of that
 * call only. The hot paths' statements rely on it; their results are covered by the store suites.
 */
import { env } from "cloudflare:test";
import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { D1Db, type Placeholders, prepared, runBatch } from "../../src/store/driver";
import { rateLimits } from "../../src/store/schema";

describe("prepared statements", () => {
  it("builds the SQL once, and binds each call's values to the database it is given", async () => {
    let builds = 0;
    const counter = prepared((db, p: Placeholders<{ key: string }>) => {
      builds++;
      return db.select({ key: rateLimits.key, count: rateLimits.count }).from(rateLimits).where(eq(rateLimits.key, p.key));
    });
    await env.DB.batch([
      env.DB.prepare("INSERT INTO rate_limits (key, count, reset_at) VALUES (?, ?, ?)").bind("prepared:a", 1, 1),
      env.DB.prepare("INSERT INTO rate_limits (key, count, reset_at) VALUES (?, ?, ?)").bind("prepared:b", 2, 1),
    ]);

    // Two database objects, as two requests' D1 sessions would be.
    const first = D1Db(env.DB.withSession("first-primary"));
    const second = D1Db(env.DB.withSession("first-primary"));
    expect(await counter(first, { key: "prepared:a" })).toEqual([{ key: "prepared:a", count: 1 }]);
    expect(await counter(second, { key: "prepared:b" })).toEqual([{ key: "prepared:b", count: 2 }]);
    const [a, b] = await runBatch(first, [counter(first, { key: "prepared:b" }), counter(first, { key: "prepared:a" })]);
    expect([a, b]).toEqual([[{ key: "prepared:b", count: 2 }], [{ key: "prepared:a", count: 1 }]]);
    expect(builds).toBe(1);
  });

  it("refuses a call that leaves a placeholder without a value", () => {
    const statement = prepared((db, p: Placeholders<{ key: string }>) =>
      db.select().from(rateLimits).where(sql`${rateLimits.key} = ${p.key}`),
    );
    expect(() => statement(D1Db(env.DB), {} as { key: string })).toThrow(/No value for placeholder "key"/);
  });
});
