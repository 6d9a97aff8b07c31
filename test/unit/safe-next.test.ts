import { describe, expect, it } from "vitest";
import { safeNext } from "../../src/web/web.session";

// The website's own forms and query strings are covered through the app (test/features/web.test.ts);
// what no browser can send is checked here.
describe("safeNext", () => {
  it("falls back for a string no UTF-8 can carry (a lone surrogate), rather than throwing", () => {
    expect(safeNext("/people/\ud800", "/profilepage")).toBe("/profilepage");
  });

  it("keeps a path's existing percent-escapes as they are", () => {
    expect(safeNext("/people/%C3%A9ric?q=a%20b", "/profilepage")).toBe("/people/%C3%A9ric?q=a%20b");
  });
});
