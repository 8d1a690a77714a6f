/*
 * The original framing of an admin request: `handler<TAB>COMMAND<TAB>parameters<TAB>`, as the
 * HCE clients send it on the admin socket (the reply's framing is in admin-text.ts).
 */

/** A parsed admin message `handler<TAB>COMMAND<TAB>parameters<TAB>`. */
export interface AdminMessage {
  readonly handler: string;
  readonly command: string;
  readonly parameters: string;
}

/**
 * Splits `handler<TAB>COMMAND<TAB>parameters<TAB>` (the original clients end it with a tab;
 * parameters may be missing). Returns a string saying what is wrong when it is malformed.
 */
export function parseAdminMessage(text: string): AdminMessage | string {
  if (text.length === 0) return "the admin message is empty; expected handler<TAB>COMMAND<TAB>parameters<TAB>";
  const parts = text.replace(/\r?\n$/, "").split("\t");
  if (parts.length < 2) return "the admin message has no tab-separated command; expected handler<TAB>COMMAND<TAB>parameters<TAB>";
  const [handler = "", command = "", ...rest] = parts;
  // The original framing ends with a tab, so the last part is empty; parameters never hold tabs.
  if (rest.length > 0 && rest[rest.length - 1] === "") rest.pop();
  if (rest.length > 1) return "the admin message has more than three tab-separated parts";
  if (command.trim() === "") return "the admin message names no command";
  return { handler, command: command.trim(), parameters: rest[0] ?? "" };
}
