/**
 * Wraps the real local D1 binding to count statements and to make chosen statements fail, for
 * query budgets and fault injection. A failing statement inside a batch fails the whole batch
 * before it runs, which is what D1 does (a batch is one transaction: all or nothing).
 */

export interface D1Probe {
  db: D1Database;
  /** SQL of every statement executed, in order (a batch contributes each of its statements). */
  statements: string[];
  /** Each statement executed with the values bound to it, in order: to run one again and read its `meta`. */
  executed: { sql: string; values: unknown[] }[];
  /** Round trips to D1 (a batch is one). */
  roundTrips: number;
  /**
   * Makes statements whose SQL matches fail (until cleared with `null`), with `message` (by default
   * one no D1 outage has: a failure like a bug's).
   */
  failWhen(pattern: RegExp | null, message?: string): void;
  /** Makes a batch with a matching statement fail after it committed: the reply is lost, not the write. */
  loseReplyWhen(pattern: RegExp | null): void;
  /** Runs `hook` before each batch is sent (until cleared with `null`): what a concurrent request does meanwhile. */
  beforeBatch(hook: ((statements: string[]) => Promise<void>) | null): void;
  /**
   * Runs `meanwhile` once, just before the first batch holding a statement that matches `batch`:
   * a concurrent request landing between this request's reads and its write. `done` tells it ran.
   */
  onceBefore(batch: RegExp, meanwhile: () => Promise<void>): { done: boolean };
  reset(): void;
}

const REAL = Symbol("real");
const SQL = Symbol("sql");

const VALUES = Symbol("values");

type Wrapped = D1PreparedStatement & { [REAL]: D1PreparedStatement; [SQL]: string; [VALUES]: unknown[] };

export function probeD1(real: D1Database): D1Probe {
  let failPattern: RegExp | null = null;
  let failMessage: string | undefined;
  let batchHook: ((statements: string[]) => Promise<void>) | null = null;
  let lostReplyPattern: RegExp | null = null;
  const probe: D1Probe = {
    db: undefined as unknown as D1Database,
    statements: [],
    executed: [],
    roundTrips: 0,
    failWhen(pattern, message) {
      failPattern = pattern;
      failMessage = message;
    },
    beforeBatch(hook) {
      batchHook = hook;
    },
    onceBefore(batch, meanwhile) {
      const state = { done: false };
      batchHook = async (statements) => {
        if (state.done || !statements.some((sql) => batch.test(sql))) return;
        state.done = true;
        await meanwhile();
      };
      return state;
    },
    loseReplyWhen(pattern) {
      lostReplyPattern = pattern;
    },
    reset() {
      probe.statements = [];
      probe.executed = [];
      probe.roundTrips = 0;
    },
  };
  const injected = (sql: string) => new Error(failMessage ?? `D1_ERROR: injected failure for test: ${sql.slice(0, 40)}`);

  function wrap(statement: D1PreparedStatement, sql: string, values: unknown[] = []): Wrapped {
    const run =
      (method: "run" | "all" | "first" | "raw") =>
      async (...args: unknown[]) => {
        probe.statements.push(sql);
        probe.executed.push({ sql, values });
        probe.roundTrips++;
        if (failPattern?.test(sql)) throw injected(sql);
        // biome-ignore lint/suspicious/noExplicitAny: forwarding the binding's own overloads
        return (statement[method] as any)(...args);
      };
    return {
      [REAL]: statement,
      [SQL]: sql,
      [VALUES]: values,
      bind: (...bound: unknown[]) => wrap(statement.bind(...bound), sql, bound),
      run: run("run"),
      all: run("all"),
      first: run("first"),
      raw: run("raw"),
    } as unknown as Wrapped;
  }

  /** `prepare` and `batch` of the binding or of one of its sessions, counted and faulted alike. */
  function wrapTarget(target: Pick<D1Database, "prepare" | "batch">) {
    return {
      prepare: (sql: string) => wrap(target.prepare(sql), sql),
      batch: async (statements: Wrapped[]) => {
        probe.roundTrips++;
        for (const s of statements) {
          probe.statements.push(s[SQL]);
          probe.executed.push({ sql: s[SQL], values: s[VALUES] });
        }
        const failing = statements.find((s) => failPattern?.test(s[SQL]));
        if (failing) throw injected(failing[SQL]);
        await batchHook?.(statements.map((s) => s[SQL]));
        const results = await target.batch(statements.map((s) => s[REAL]));
        const lost = statements.find((s) => lostReplyPattern?.test(s[SQL]));
        if (lost) throw new Error(`D1_ERROR: injected lost reply for test: ${lost[SQL].slice(0, 40)}`);
        return results;
      },
    };
  }

  probe.db = {
    ...wrapTarget(real),
    exec: (sql: string) => real.exec(sql),
    dump: () => real.dump(),
    // Every request opens a session (read replication); its statements are probed the same way.
    withSession: (constraintOrBookmark?: string) => {
      const session = real.withSession(constraintOrBookmark);
      return { ...wrapTarget(session), getBookmark: () => session.getBookmark() };
    },
  } as unknown as D1Database;
  return probe;
}
