/** Where the JSON API is mounted; every route path under it is written relative to this once. */
export const API_BASE = "/api/v1";
