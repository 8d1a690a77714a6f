import { readFileSync } from "node:fs";
import { takesNumber, type OptionTable } from "./domain/option-table.js";

/** A value given for one flag: its text, a switch, or the texts of a repeatable option. */
export type RawValue = string | boolean | readonly string[];

/** The values one source (the flags, the environment, a config file) gives, by flag name. */
export interface OptionSource {
  /** The value given for a flag, if any. */
  get(flag: string): RawValue | undefined;
  /** How an error names the flag as this source gave it ("--max-queue", "\"max-queue\" in /etc/drce.json"). */
  name(flag: string): string;
}

/** A config file that cannot be read or holds something `drce serve` does not take. */
export class ConfigFileError extends Error {
  override name = "ConfigFileError";
}

/** What each key of a config file may hold: a text, a number, a switch or a list of texts. */
type KeyKind = "text" | "number" | "switch" | "list";

function keyKinds(table: OptionTable): Map<string, KeyKind> {
  const kinds = new Map<string, KeyKind>();
  for (const spec of Object.values(table)) {
    kinds.set(spec.flag, spec.switchValue !== undefined ? "switch" : spec.repeatable === true ? "list" : takesNumber(spec) ? "number" : "text");
    if (spec.off !== undefined) kinds.set(spec.off.flag, "switch");
    if (spec.fromFile !== undefined) kinds.set(spec.fromFile.flag, "text");
  }
  return kinds;
}

const expected: Record<KeyKind, string> = {
  text: "a string",
  number: "a non-negative integer (a number or a string)",
  switch: "true or false",
  list: "an array of strings",
};

/**
 * Reads a JSON config file whose keys are the flags of the table without their dashes
 * (`{"max-queue": 500, "allow-dir": ["/srv"], "no-zmq": true}`), refusing a file that is not
 * a JSON object, an unknown key, or a value of the wrong type, with a message naming the key.
 */
export function readConfigFile(path: string, table: OptionTable): OptionSource {
  let content: string;
  try {
    content = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigFileError(`cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (error) {
    throw new ConfigFileError(`the config file ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ConfigFileError(`the config file ${path} must hold a JSON object of options, such as {"listen": "127.0.0.1:8470"}`);
  const kinds = keyKinds(table);
  const values = new Map<string, RawValue>();
  for (const [key, value] of Object.entries(parsed)) {
    const kind = kinds.get(key);
    if (kind === undefined) throw new ConfigFileError(`${JSON.stringify(key)} in ${path} is not an option of drce serve (keys are its flags without the dashes; drce serve --help lists them)`);
    const raw = rawValue(kind, value);
    if (raw === undefined) throw new ConfigFileError(`${JSON.stringify(key)} in ${path} must be ${expected[kind]}, got ${JSON.stringify(value)}`);
    // A switch set to false is a switch not given, so the flag's own default holds.
    if (raw !== false) values.set(key, raw);
  }
  return { get: (flag) => values.get(flag), name: (flag) => `${JSON.stringify(flag)} in ${path}` };
}

function rawValue(kind: KeyKind, value: unknown): RawValue | undefined {
  switch (kind) {
    case "switch":
      return typeof value === "boolean" ? value : undefined;
    case "list":
      return Array.isArray(value) && value.every((item) => typeof item === "string") ? (value as string[]) : undefined;
    case "number":
      // The integer parser then refuses a fraction or a negative number, naming the key.
      return typeof value === "number" ? String(value) : typeof value === "string" ? value : undefined;
    case "text":
      return typeof value === "string" ? value : undefined;
  }
}
