import type { Client, ClientOptions } from "openapi-fetch";
import type { components, paths } from "./openapi.js";

export type { components, operations, paths } from "./openapi.js";

/** A schema of the API by name, e.g. `Schema<"Problem">`. */
export type Schema<Name extends keyof components["schemas"]> = components["schemas"][Name];

/**
 * A client for a Latchkey deployment: every path, method, body, query and response (errors
 * included, as problem documents) typed from the API's OpenAPI document.
 *
 *   const api = createLatchkeyClient({ baseUrl: "https://auth.example.com" });
 *   const { data, error } = await api.POST("/api/v1/auth/login", { body: { email, password } });
 */
export declare function createLatchkeyClient(options?: ClientOptions): Client<paths>;
