/** The store conformance suite against D1, inside workerd, on the local D1 binding with the real migrations. */
import { env } from "cloudflare:test";
import { D1Db, DrizzleStores } from "../../src/store";
import { storeConformance } from "./conformance";

storeConformance("D1", async () => ({
  stores: DrizzleStores(D1Db(env.DB)),
  async run(sql, ...params) {
    await env.DB.prepare(sql)
      .bind(...params)
      .run();
  },
  async count(sql, ...params) {
    const row = await env.DB.prepare(sql)
      .bind(...params)
      .first<{ n: number }>();
    return row?.n ?? 0;
  },
}));
