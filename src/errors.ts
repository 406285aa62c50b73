/**
 * The error family of the proxy. Every error carries a stable `code` so that
 * callers (the CLI, the tests, operators grepping logs) can tell them apart
 * without parsing messages. Messages start with their context and say what to do.
 */
export class RTPError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration problem: one entry per bad key, each naming its path. */
export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends RTPError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], source: string) {
    const lines = problems.map((p) => `  - ${p.path}: ${p.message}`);
    super(
      'CONFIG_INVALID',
      `configuration ${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${lines.join('\n')}`,
    );
    this.problems = problems;
  }
}

export class PKIError extends RTPError {}
