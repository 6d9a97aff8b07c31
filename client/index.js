// A typed client for Latchkey: openapi-fetch's createClient, typed with the API's generated paths.
import createClient from "openapi-fetch";

/** `createClient<paths>(options)`; see index.d.ts. */
export function createLatchkeyClient(options) {
  return createClient(options);
}
