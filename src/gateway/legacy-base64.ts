/*
 * Base64 as the legacy clients write and read it: PHP's chunk_split breaks lines every 76
 * characters, and every client's decoder takes unbroken base64 back.
 */

/**
 * Decodes base64 strictly: spaces, tabs, CR and LF are ignored (the original clients break lines
 * every 76 characters); any other character outside the standard alphabet, `=` anywhere but at
 * the end, or a length that no padding explains, gives undefined. Missing padding is accepted.
 */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  const compact = text.replace(/[\r\n\t ]/g, "");
  const match = /^([A-Za-z0-9+/]*)(={0,2})$/.exec(compact);
  if (match === null) return undefined;
  const body = match[1] ?? "";
  const padding = match[2] ?? "";
  if (padding.length > 0 ? compact.length % 4 !== 0 : body.length % 4 === 1) return undefined;
  return new Uint8Array(Buffer.from(body, "base64"));
}

/** Encodes bytes as base64 without line breaks (every legacy client's decoder accepts it). */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

