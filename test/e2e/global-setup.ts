/**
 * One real dev server for the whole e2e project (starting one costs seconds of a shared 2-core
 * machine): started before the first e2e file, stopped after the last, even when tests fail.
 */
import type { TestProject } from "vitest/node";
import { type DevServerInfo, startDevServer } from "./dev-server";

declare module "vitest" {
  export interface ProvidedContext {
    devServer: DevServerInfo;
  }
}

export default async function setup(project: TestProject) {
  const server = await startDevServer();
  project.provide("devServer", { url: server.url, stateDir: server.stateDir, logFile: server.logFile, workDir: server.workDir });
  return async () => {
    await server.stop();
  };
}
