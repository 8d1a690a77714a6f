import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks a bearer token in constant time. Both sides are hashed with SHA-256 first, so
 * tokens of different lengths compare in the same time and never throw; empty,
 * wrong-length and non-ASCII tokens are simply not equal.
 */
export function createTokenCheck(token: string): (authorization: string | undefined | null) => boolean {
  const expected = createHash("sha256").update(token, "utf8").digest();
  return (authorization) => {
    if (token === "") return true;
    if (typeof authorization !== "string") return false;
    const match = /^Bearer (.+)$/i.exec(authorization.trim());
    const given = createHash("sha256").update(match?.[1] ?? "", "utf8").digest();
    return match !== null && timingSafeEqual(expected, given);
  };
}
