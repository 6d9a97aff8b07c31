import type { Browser } from "playwright-core";

export const NO_BROWSER: string;
export function launchBrowser(): Promise<Browser>;
