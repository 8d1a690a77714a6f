/*
 * The original admin reply framing, as the HCE clients parse it: tab-delimited text whose first
 * field is OK or ERROR, followed by fields, property fields being `name=value`. The Python
 * NodeManager splits the reply on tabs and each field on `=` (keeping the part after the first
 * `=` only), the PHP manager explodes on tabs and then on `=`; both require OK first.
 */

/** The delimiter between the fields of an admin message or reply. */
export const adminFieldDelimiter = "\t";

/**
 * Makes a value safe to stand as one field: tabs and line breaks, which would split it or end
 * it, become spaces.
 */
export function adminField(value: string): string {
  return value.replace(/[\t\r\n]+/g, " ");
}

/**
 * A property field `name=value`. The value must not hold `=`, since the Python client keeps
 * only what lies between the first and the second; `=` inside it becomes `:`.
 */
export function adminProperty(name: string, value: string | number | boolean): string {
  return `${adminField(name)}=${adminField(String(value)).replace(/=/g, ":")}`;
}

/** An OK reply with its fields: `OK<TAB>field<TAB>field...`. */
export function adminOkText(fields: readonly string[]): string {
  return ["OK", ...fields.map(adminField)].join(adminFieldDelimiter);
}

/**
 * An ERROR reply with its message as the one field. `=` in the message becomes `:`, so that
 * the Python client reads the whole message as one field name.
 */
export function adminErrorText(message: string): string {
  return ["ERROR", adminField(message).replace(/=/g, ":")].join(adminFieldDelimiter);
}
