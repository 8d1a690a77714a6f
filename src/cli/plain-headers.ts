/**
 * A `Headers` class for the drce command, in place of Node.js's own. Node.js 20 makes its
 * `Headers` global from undici the first time it is touched, and that loads undici's whole
 * fetch implementation: 27-40 ms, a third of what `node -e 0` costs, in every client
 * command, since Connect builds each request's and response's headers with `new Headers()`,
 * and memory a serving node never uses (BENCHMARKS.md, "Idle memory"). The client commands use none of fetch (their calls
 * go over node:http2), and a node only for its notifications (fetch keeps its own class),
 * so the command puts this class in the global's place before it loads Connect. It follows the Fetch standard's header list:
 * names are tokens compared without case; values are trimmed of HTTP whitespace and may
 * hold no NUL, CR or LF nor a character above 255; iteration is in name order, the values
 * of a name joined by ", ", except `set-cookie`'s, which are given one by one.
 */

// RFC 9110's token: the characters a field name may hold.
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// The Fetch standard's HTTP whitespace, trimmed off both ends of a value.
const edgeWhitespace = /^[\t\n\r ]+|[\t\n\r ]+$/g;
// NUL, CR and LF, and what is not a byte (a ByteString's characters are below 256).
const forbiddenInValue = /[\0\r\n]|[^\x00-\xff]/;

/** What a Headers is made from: another Headers, [name, value] pairs, or a record of names to values. */
export type PlainHeadersInit = ConstructorParameters<typeof Headers>[0];

function checkedName(name: string): string {
  const text = String(name);
  if (!tokenPattern.test(text)) throw new TypeError(`Headers: invalid header name ${JSON.stringify(text)}`);
  return text.toLowerCase();
}

function normalizedValue(name: string, value: string): string {
  const text = String(value).replace(edgeWhitespace, "");
  if (forbiddenInValue.test(text)) throw new TypeError(`Headers: invalid value for header ${JSON.stringify(name)}`);
  return text;
}

/** The Fetch standard's `Headers`, on a map of lower-case names to their values in order. */
export class PlainHeaders implements Headers {
  readonly #values = new Map<string, string[]>();

  /** Makes the list from another Headers, a sequence of [name, value] pairs, or a record of names to values. */
  constructor(init?: PlainHeadersInit) {
    if (init === undefined || init === null) return;
    if (typeof init !== "object") throw new TypeError("Headers: the init argument must be an object");
    if (Symbol.iterator in init) {
      for (const pair of init as Iterable<Iterable<string>>) {
        const items = [...pair];
        if (items.length !== 2) throw new TypeError("Headers: each init pair must be [name, value]");
        this.append(items[0] ?? "", items[1] ?? "");
      }
      return;
    }
    // A record's value that is not a string (an array, from the type's loose record) is made one, as the standard's ByteString conversion does.
    for (const [name, value] of Object.entries(init)) this.append(name, String(value));
  }

  /** Adds a value to a name's, after those it has. */
  append(name: string, value: string): void {
    const key = checkedName(name);
    const text = normalizedValue(key, value);
    const list = this.#values.get(key);
    if (list === undefined) this.#values.set(key, [text]);
    else list.push(text);
  }

  /** Removes a name and its values. */
  delete(name: string): void {
    this.#values.delete(checkedName(name));
  }

  /** A name's values joined by ", ", or null when it has none. */
  get(name: string): string | null {
    return this.#values.get(checkedName(name))?.join(", ") ?? null;
  }

  /** The values of `set-cookie`, one by one. */
  getSetCookie(): string[] {
    return [...(this.#values.get("set-cookie") ?? [])];
  }

  /** Whether a name has a value. */
  has(name: string): boolean {
    return this.#values.has(checkedName(name));
  }

  /** Makes a value a name's only one. */
  set(name: string, value: string): void {
    const key = checkedName(name);
    this.#values.set(key, [normalizedValue(key, value)]);
  }

  /** Calls the callback with each value and name, in the order of iteration. */
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [key, value] of this) callback.call(thisArg, value, key, this);
  }

  /** The [name, value] pairs, in name order. */
  *entries(): Generator<[string, string]> {
    for (const key of [...this.#values.keys()].sort()) {
      const list = this.#values.get(key) ?? [];
      if (key === "set-cookie") for (const value of list) yield [key, value];
      else yield [key, list.join(", ")];
    }
  }

  /** The names, in order (`set-cookie` once per value). */
  *keys(): Generator<string> {
    for (const [key] of this.entries()) yield key;
  }

  /** The values, in the order of their names. */
  *values(): Generator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  /** The same as {@link PlainHeaders.entries}. */
  [Symbol.iterator](): Generator<[string, string]> {
    return this.entries();
  }

  /** Tagged as the standard's class is, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return "Headers";
  }
}

/**
 * Puts {@link PlainHeaders} in place of the global `Headers`, before anything touched it (a
 * later touch would find this class and never load undici). Only the drce command does this,
 * for every command, `serve` included; a program that embeds drce's modules keeps Node.js's.
 */
export function usePlainHeaders(): void {
  Object.defineProperty(globalThis, "Headers", { value: PlainHeaders, writable: true, configurable: true, enumerable: false });
}
