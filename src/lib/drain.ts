/**
 * Draining a request body the worker has refused (413) before answering.
 *
 * Once the answer is sent, an HTTP/1.1 connection can carry the next request only if the rest of
 * the refused body was read off it (RFC 9112 §9.3: the request must be read to its end before the
 * connection can be reused). workerd's HTTP server gives up on a connection whose request body is
 * left partly read, and `wrangler dev`'s proxy then fails whatever request it sends next on that
 * connection — another client's — with a 503 ("Your worker restarted mid-request"). Cancelling
 * the stream does not help: the unread bytes are still on the connection. wrangler drains a body
 * the worker never touched (its `ensure-req-body-drained` middleware), but not one the worker
 * started reading, which is exactly what a byte-counting size limit does with a chunked body.
 *
 * So the rest is read and dropped, within bounds: a client cannot keep the worker busy for long
 * by streaming forever. Past either bound the stream is cancelled (on Cloudflare's edge the
 * worker never owns the client connection, so nothing is lost there).
 */

/** At most this much more is read from a refused body (Cloudflare's edge caps bodies at 100 MB or more). */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024;
/** …and for at most this long: a slow sender is cut off rather than waited for. */
export const DRAIN_MAX_MS = 5_000;

/**
 * Reads and discards what is left of `reader`'s stream, up to `maxBytes` and `maxMs`, then
 * cancels it. Never throws: the caller is about to answer with its own error.
 */
export async function discardRest(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  { maxBytes = DRAIN_MAX_BYTES, maxMs = DRAIN_MAX_MS } = {},
): Promise<void> {
  // A pending read() resolves as done when the stream is cancelled, so the timer ends a stalled read too.
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), maxMs);
  try {
    let read = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > maxBytes) return;
    }
  } catch {
    // the client went away: nothing left to drain
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

/**
 * Reads a body stream whole, refusing it (`tooLarge()`) as soon as it passes `maxBytes`: the bytes
 * are counted as they stream, so a chunked or lying body never makes the worker buffer more than
 * the limit, and the rest of a refused one is drained first (`discardRest`).
 */
export async function readAtMost(body: ReadableStream<Uint8Array>, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await discardRest(reader);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
