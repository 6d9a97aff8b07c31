/**
 * Request bodies are read only as sent, never decoded. A body with a content coding (`gzip`, `br`,
 * `deflate`, …) is refused with 415 and `Accept-Encoding: identity`, which tells the client to send
 * it plain (RFC 9110 §8.4, §15.5.16). Read as if plain, a gzip body is a misleading "not valid
 * JSON", and a body merely labelled with a coding would be taken at face value. Decoding instead
 * is not worth it: a few KiB of gzip inflate to gigabytes (a decompression bomb), so every limit
 * would have to be counted again on the decoded stream, for bodies that are small JSON or an
 * already-compressed image anyway.
 */
import { AppError } from "./errors";

/** Throws the 415 when `headers` name any content coding but `identity` (which is no coding at all). */
export function assertNoContentCoding(headers: Headers): void {
  const codings = headers.get("content-encoding");
  if (codings === null) return;
  for (const coding of codings.split(",")) {
    const name = coding.trim().toLowerCase();
    if (name !== "" && name !== "identity") {
      throw new AppError("unsupported_media_type", `Send the body without a content coding (Content-Encoding: ${name} is not accepted).`, {
        headers: { "Accept-Encoding": "identity" },
      });
    }
  }
}
