import { describe, expect, it } from "vitest";
import { jsonObjectStream, PagedArray, StreamAbortedError } from "../../src/lib/json-stream";

async function* pagesOf<T>(...pages: T[][]) {
  for (const page of pages) yield page;
}

const text = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();

describe("jsonObjectStream", () => {
  it("writes the bytes JSON.stringify gives the whole object, whatever the pages", async () => {
    const items = [{ a: 1, s: 'é \u2028 "q"' }, { a: 2 }, { a: 3, n: null }];
    const cases = [
      { pages: [items], fields: { first: 1, list: items, last: [true] } },
      { pages: [[], items.slice(0, 1), [], items.slice(1)], fields: { list: items } },
      { pages: [], fields: { before: "x", list: [], after: { nested: [1] } } },
    ];
    for (const { pages, fields } of cases) {
      const streamed = { ...fields, list: new PagedArray(pagesOf(...pages)) };
      expect(await text(jsonObjectStream(streamed, () => {}))).toBe(JSON.stringify(fields));
    }
    // A field left undefined is left out, as JSON.stringify leaves it.
    expect(await text(jsonObjectStream({ a: undefined, b: 1 }, () => {}))).toBe('{"b":1}');
  });

  it("errors the stream, after what was written, when a page fails, and hands the cause to onError only", async () => {
    const cause = new Error("D1_ERROR: secret detail");
    async function* failing() {
      yield [1, 2];
      throw cause;
    }
    const seen: unknown[] = [];
    const reader = jsonObjectStream({ list: new PagedArray(failing()) }, (error) => seen.push(error)).getReader();
    const decoder = new TextDecoder();
    let written = "";
    const failure = await (async () => {
      for (;;) {
        const next = await reader.read();
        if (next.done) return null;
        written += decoder.decode(next.value);
      }
    })().catch((error: unknown) => error);
    expect(written).toBe('{"list":[1,2');
    expect(failure).toBeInstanceOf(StreamAbortedError);
    expect(String((failure as Error).message)).not.toContain("secret");
    expect(seen).toEqual([cause]);
  });
});
