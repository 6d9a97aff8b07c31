/**
 * A JSON document written while it is read, for answers too large to hold in an isolate's
 * 128 MB: an object whose fields are plain values, except arrays whose items arrive in pages
 * (`PagedArray`). The bytes are exactly those `JSON.stringify` gives the whole object (compact,
 * fields in their order), so streaming changes nothing a client can see but the memory it costs.
 *
 * The stream is pulled: a page is read only when the consumer has taken what came before, so at
 * most one page is held at a time. Once the first byte is out the status (200) can no longer
 * change, so a failing page read errors the stream: the runtime then aborts the response, and
 * the client sees a failed download instead of a shorter document that would parse as complete.
 */
import type { Context, TypedResponse } from "hono";
import type { JSONParsed } from "hono/utils/types";

/** An array field whose items come from `pages`, one page at a time. */
export class PagedArray<T = unknown> {
  constructor(readonly pages: AsyncIterable<readonly T[]>) {}
}

/** The document a set of fields writes: each `PagedArray` is the array of its items. */
export type JsonDocument<F> = { [K in keyof F]: F[K] extends PagedArray<infer T> ? T[] : F[K] };

declare const documentType: unique symbol;

/** The bytes of a JSON document of type `T` (the type exists for the compiler only). */
export type JsonStream<T> = ReadableStream<Uint8Array> & { readonly [documentType]?: T };

/** What the consumer of a failed stream sees; the cause goes to `onError` only, never into the body. */
export class StreamAbortedError extends Error {
  constructor() {
    super("The document could not be completed.");
    this.name = "StreamAbortedError";
  }
}

/** The document's text in pieces: everything up to a page read is sent before that read starts. */
async function* jsonPieces(fields: Record<string, unknown>): AsyncGenerator<string> {
  let text = "{";
  let firstField = true;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue; // as JSON.stringify leaves it out
    text += `${firstField ? "" : ","}${JSON.stringify(key)}:`;
    firstField = false;
    if (!(value instanceof PagedArray)) {
      text += JSON.stringify(value);
      continue;
    }
    text += "[";
    let firstItem = true;
    const pages = value.pages[Symbol.asyncIterator]();
    try {
      for (;;) {
        yield text;
        text = "";
        const page = await pages.next();
        if (page.done) break;
        for (const item of page.value) {
          text += `${firstItem ? "" : ","}${JSON.stringify(item) ?? "null"}`;
          firstItem = false;
        }
      }
    } finally {
      await pages.return?.(); // a cancelled download stops the reads
    }
    text += "]";
  }
  yield `${text}}`;
}

/**
 * `fields` as a UTF-8 JSON byte stream (see the module comment). `onError` gets the error that
 * stopped it, for the log; the stream itself errors with a `StreamAbortedError`.
 */
export function jsonObjectStream<F extends Record<string, unknown>>(
  fields: F,
  onError: (error: unknown) => void,
): JsonStream<JsonDocument<F>> {
  const pieces = jsonPieces(fields);
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            const next = await pieces.next();
            if (next.done) return controller.close();
            if (next.value) return controller.enqueue(encoder.encode(next.value));
          }
        } catch (error) {
          onError(error);
          controller.error(new StreamAbortedError());
        }
      },
      async cancel() {
        await pieces.return(undefined);
      },
    },
    // Nothing is read ahead of the consumer: a page is fetched when the previous one was taken.
    { highWaterMark: 0 },
  );
}

/**
 * A 200 whose body is `body`, typed as the JSON document it writes, so a route's declared
 * response schema is checked against the streamed fields as it is against `c.json`'s object.
 */
export function jsonStreamResponse<T>(
  c: Context,
  body: JsonStream<T>,
  headers: Record<string, string> = {},
): TypedResponse<JSONParsed<T>, 200, "json"> {
  return c.body(body, 200, { ...headers, "Content-Type": "application/json" }) as unknown as TypedResponse<JSONParsed<T>, 200, "json">;
}
