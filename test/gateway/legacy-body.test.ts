import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { KeptOutput } from "../../src/domain/view.js";
import { collectLegacyBody, legacyBody, OutputPlaceholders } from "../../src/gateway/legacy-body.js";
import { encodeErrorItem, encodeLegacyResponse, type LegacyCover, type LegacyResultItem } from "../../src/gateway/legacy-codec.js";
import { testIdentity } from "./fake-core.js";

/** A kept output over bytes in memory, counting its reads and closes. */
function keptOf(bytes: Uint8Array): KeptOutput & { reads: number; closed: number } {
  const kept = {
    size: bytes.length,
    reads: 0,
    closed: 0,
    read: async (position: number, length: number) => {
      kept.reads++;
      return bytes.subarray(position, position + length);
    },
    close: async () => {
      kept.closed++;
    },
  };
  return kept;
}

/** An item whose stdout and stderr (and stderror) are outputs read piece by piece. */
function itemWith(placeholders: OutputPlaceholders, stdout: KeptOutput, stderr: KeptOutput, message: string): LegacyResultItem {
  const item = encodeErrorItem(testIdentity, { id: 7, type: 2, errorCode: 0, message, state: 0 });
  const err = placeholders.placeholder(stderr);
  return { ...item, stdout: placeholders.placeholder(stdout), stderr: err, stderror: err };
}

const covers: (LegacyCover | undefined)[] = [undefined, { type: 2, ttl: 999, base64: false }, { type: 2, ttl: 5, base64: true }];

describe("a legacy reply body of parts", () => {
  it("is byte for byte what the one-string encoder makes, in every cover, with its exact length", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 3000 }),
        fc.uint8Array({ maxLength: 50 }),
        fc.string({ maxLength: 40 }),
        fc.constantFrom(...covers),
        async (stdout, stderr, message, cover) => {
          const placeholders = new OutputPlaceholders();
          const item = itemWith(placeholders, keptOf(stdout), keptOf(stderr), message);
          const body = legacyBody([item], cover, placeholders);
          const bytes = await collectLegacyBody(body);
          const inline = { ...item, stdout: Buffer.from(stdout).toString("base64"), stderr: Buffer.from(stderr).toString("base64"), stderror: Buffer.from(stderr).toString("base64") };
          expect(bytes.toString("utf8")).toBe(encodeLegacyResponse([inline], cover));
          expect(body.byteLength).toBe(bytes.length);
        },
      ),
      { seed: 42, numRuns: 200 },
    );
  });

  it("reads a large output a piece at a time (768 KiB each) and closes every output on release", async () => {
    const data = Buffer.alloc(5 * 1024 * 1024 + 1, 7);
    const stdout = keptOf(data);
    const stderr = keptOf(new Uint8Array(0));
    const placeholders = new OutputPlaceholders();
    const body = legacyBody([itemWith(placeholders, stdout, stderr, "")], { type: 2, ttl: 1, base64: true }, placeholders);
    let largest = 0;
    let total = 0;
    for await (const chunk of body.chunks()) {
      largest = Math.max(largest, chunk.length);
      total += chunk.length;
    }
    expect(total).toBe(body.byteLength);
    expect(stdout.reads).toBe(Math.ceil(data.length / (768 * 1024)));
    expect(largest).toBeLessThanOrEqual(2 * 1024 * 1024);
    await body.release();
    expect(stdout.closed).toBeGreaterThan(0);
    expect(stderr.closed).toBeGreaterThan(0);
  });

  it("does not take a look-alike of a placeholder in the reply's own text for an output", async () => {
    const placeholders = new OutputPlaceholders();
    const item = itemWith(placeholders, keptOf(Buffer.from("out")), keptOf(Buffer.from("err")), "@drce-output:0000:0@");
    const text = (await collectLegacyBody(legacyBody([item], undefined, placeholders))).toString();
    expect(JSON.parse(text)).toMatchObject([{ error_message: "@drce-output:0000:0@", stdout: "b3V0", stderr: "ZXJy", stderror: "ZXJy" }]);
  });

  it("fails loudly when an output is shorter than it said, instead of sending a short reply", async () => {
    const liar: KeptOutput = { size: 10, read: async () => new Uint8Array(0), close: async () => undefined };
    const placeholders = new OutputPlaceholders();
    const body = legacyBody([itemWith(placeholders, liar, keptOf(new Uint8Array(0)), "")], undefined, placeholders);
    await expect(collectLegacyBody(body)).rejects.toThrow(/ended before its size/);
  });
});
