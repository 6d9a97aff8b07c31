import { describe, expect, it } from "vitest";
import { harness } from "../helpers";

describe("smoke", () => {
  const h = harness();
  it("registers, logs in and reads /me", async () => {
    const u = await h.signedInUser();
    const me = await h.call("GET", "/api/v1/me", undefined, { token: u.access_token });
    expect(me.status).toBe(200);
    expect(me.json.user.email).toBe(u.email);
  });
});
