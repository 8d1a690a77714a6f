import { resolve } from "node:path";
import { parseDuration } from "./duration.js";

/**
 * One option of a command, declared once: the flag that sets it, the environment variable
 * that may, its default, how a given text becomes its value, and its line of `--help`.
 */
export interface OptionSpec<T> {
  /** The flag without its dashes, e.g. "max-queue"; it is also the option's key in a config file. */
  readonly flag: string;
  /** The value's placeholder in `--help` ("N", "DIR"); absent for a switch, which takes no value. */
  readonly arg?: string | undefined;
  /** The environment variable read when no flag is given, if any. */
  readonly env?: string | undefined;
  /** The value when neither a flag, the environment nor a config file gives one. */
  readonly default: () => T;
  /** How `--help` states the default; absent: no default is shown. */
  readonly defaultHelp?: string | undefined;
  /** Turns the given text into the value; `name` says where it came from, for the error. */
  readonly parse: (raw: string, name: string) => T;
  /** The value a switch sets when it is given. */
  readonly switchValue?: T | undefined;
  /** Repeatable: each occurrence is parsed and the value is the list of them. */
  readonly repeatable?: boolean | undefined;
  /** A second switch that sets another value, e.g. `--no-zmq` disabling the gateway. */
  readonly off?: { readonly flag: string; readonly value: T } | undefined;
  /** A second flag naming a file whose first line is the value, e.g. `--token-file`. */
  readonly fromFile?: { readonly flag: string; readonly arg: string } | undefined;
  /** The sentence of `--help`, without the default. */
  readonly help: string;
}

/** An option table: each key is a field of the values it gives. */
export type OptionTable = Readonly<Record<string, OptionSpec<unknown>>>;

/** The values an option table gives: one readonly field per option, of the type its parser returns. */
export type OptionValues<T extends OptionTable> = { readonly [K in keyof T]: T[K] extends OptionSpec<infer V> ? V : never };

/** An option whose value is one given text. */
export function valueOption<T>(spec: Omit<OptionSpec<T>, "switchValue" | "repeatable">): OptionSpec<T> {
  return spec;
}

/** A repeatable option: its value is the list of every occurrence, each parsed alone; none by default. */
export function listOption<T>(spec: Pick<OptionSpec<T>, "flag" | "arg" | "help"> & { readonly parse: (raw: string, name: string) => T }): OptionSpec<readonly T[]> {
  const parseOne = spec.parse;
  return { flag: spec.flag, arg: spec.arg, help: spec.help, repeatable: true, default: () => [], parse: (raw, name) => [parseOne(raw, name)] };
}

/** A switch: given, it sets `value`; otherwise the option keeps `fallback`. */
export function switchOption<T>(spec: { readonly flag: string; readonly help: string; readonly value: T; readonly fallback: T }): OptionSpec<T> {
  const { value, fallback } = spec;
  return {
    flag: spec.flag,
    help: spec.help,
    switchValue: value,
    default: () => fallback,
    parse: (_raw, name) => {
      throw new OptionError(`${name} takes no value`);
    },
  };
}

/** A value refused by an option's parser; the message names where the value came from. */
export class OptionError extends Error {
  override name = "OptionError";
}

/** Parses a text as is. */
export function text(raw: string): string {
  return raw;
}

/** Parses a path, made absolute against the working directory. */
export function absolutePath(raw: string): string {
  return resolve(raw);
}

/** Parses a path made absolute, or the empty text for none. */
export function optionalPath(raw: string): string {
  return raw === "" ? "" : resolve(raw);
}

/** Parses a non-negative integer, raised to `min` when below it (a bound of zero tasks makes no node). */
export function integer(min = 0): (raw: string, name: string) => number {
  return (raw, name) => {
    if (!/^\d+$/.test(raw)) throw new OptionError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    return Math.max(min, Number(raw));
  };
}

/** Parses a duration with its unit ("7d", "1h30m", "250ms"; "0" alone), in milliseconds. */
export function duration(raw: string, name: string): number {
  const ms = parseDuration(raw);
  if (ms === undefined) throw new OptionError(`${name} must be a duration such as 7d, 12h, 30m, 90s or 500ms (0: no bound), got ${JSON.stringify(raw)}`);
  return ms;
}

/** Tells whether an option's value is a whole number, so a config file may give it as a JSON number. */
export function takesNumber(spec: OptionSpec<unknown>): boolean {
  return spec.arg === "N" || spec.arg === "MS";
}

/** The column where `--help` starts the sentences. */
const helpColumn = 30;

/** Writes the `--help` lines of an option table, one per option, in the table's order. */
export function formatOptionHelp(table: OptionTable): string[] {
  const lines: string[] = [];
  for (const spec of Object.values(table)) {
    let left = `--${spec.flag}${spec.arg === undefined ? "" : ` ${spec.arg}`}`;
    if (spec.fromFile !== undefined) left += ` | --${spec.fromFile.flag} ${spec.fromFile.arg}`;
    const notes: string[] = [];
    if (spec.defaultHelp !== undefined) notes.push(`default ${spec.defaultHelp}`);
    if (spec.env !== undefined) notes.push(`env ${spec.env}`);
    let sentence = spec.help + (notes.length === 0 ? "" : ` (${notes.join("; ")})`);
    if (spec.off !== undefined) sentence += `; --${spec.off.flag} disables`;
    if (spec.repeatable === true) sentence += " (repeatable)";
    lines.push(`  ${left.padEnd(helpColumn - 3)} ${sentence}`);
  }
  return lines;
}

/**
 * Adapts a parser whose errors name its flag (`--allow-host must be ...`) so that they name
 * where the value came from instead, e.g. a key of a config file.
 */
export function namingSource<T>(flag: string, parse: (raw: string) => T): (raw: string, name: string) => T {
  return (raw, name) => {
    try {
      return parse(raw);
    } catch (error) {
      const message = (error as Error).message;
      throw new OptionError(message.startsWith(`--${flag}`) ? name + message.slice(flag.length + 2) : `${name}: ${message}`, { cause: error });
    }
  };
}
