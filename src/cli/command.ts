import { parseArgs, type ParseArgsConfig } from 'node:util';

/** One `certprov` sub-command. */
export interface Command {
  readonly name: string;
  /** e.g. `run --config FILE` */
  readonly usage: string;
  /** One line for the overview. */
  readonly summary: string;
  /** Full help text (`certprov <command> --help`). */
  readonly help: string;
  /** Returns the exit code. */
  run(args: readonly string[]): Promise<number>;
}

/** Bad command-line usage: printed with the command's help, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `node:util` parseArgs with errors turned into UsageError. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** `--config FILE`, else the CERTPROV_CONFIG environment variable. */
export function configPath(value: string | undefined): string {
  const file = value ?? process.env.CERTPROV_CONFIG;
  if (file === undefined || file === '') throw new UsageError('give --config FILE (or set CERTPROV_CONFIG)');
  return file;
}
