export const OFFLINE_DEFAULTS: Readonly<{ WRANGLER_SEND_METRICS: "false"; CLOUDFLARE_CF_FETCH_ENABLED: "false" }>;
export function offlineEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
