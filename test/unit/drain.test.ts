import { describe, expect, it } from "vitest";
import { discardRest } from "../../src/lib/drain";

const CHUNK = 1024;

/** A stream that counts what is pulled from it: `total` bytes, or endless when omitted. */
function counted(total?: number) {
  const seen = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (total !== undefined && seen.pulled >= total) return controller.close();
      seen.pulled += CHUNK;
      controller.enqueue(new Uint8Array(CHUNK));
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { reader: stream.getReader(), seen };
}

describe("discardRest", () => {
  it("reads a refused body to its end", async () => {
    const { reader, seen } = counted(64 * CHUNK);
    await discardRest(reader);
    expect(seen.pulled).toBe(64 * CHUNK);
  });

  it("stops after maxBytes and cancels the stream", async () => {
    const { reader, seen } = counted();
    await discardRest(reader, { maxBytes: 10 * CHUNK });
    expect(seen.pulled).toBeGreaterThan(10 * CHUNK);
    expect(seen.pulled).toBeLessThanOrEqual(12 * CHUNK);
    expect(seen.cancelled).toBe(true);
  });

  it("gives up on a sender that stalls, after maxMs", async () => {
    let cancelled = false;
    const stalled = new ReadableStream<Uint8Array>({
      pull: () => new Promise<void>(() => {}),
      cancel() {
        cancelled = true;
      },
    });
    await discardRest(stalled.getReader(), { maxMs: 20 });
    expect(cancelled).toBe(true);
  });

  it("never throws when the stream errors", async () => {
    const broken = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("client went away"));
      },
    });
    await expect(discardRest(broken.getReader())).resolves.toBeUndefined();
  });
});
