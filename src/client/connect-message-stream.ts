import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamFromJson } from "@connectrpc/connect/protocol-connect";

/** Bytes of a Connect envelope's header: one of flags, four of length. */
export const envelopeHeaderBytes = 5;
const compressedFlag = 0b01;
const endStreamFlag = 0b10;
// Decoded messages held for a consumer that is slower than the node: past this, the stream
// is paused, so that HTTP/2 flow control, not memory, holds the rest back (as a Readable's
// async iterator did).
const queuedBytesToPause = 1024 * 1024;

/** The response's status and headers, as HTTP/2 gave them. */
export interface ResponseHead {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
}

/** One call's HTTP/2 stream and the one place its end is decided. */
export interface OpenCall {
  readonly stream: http2.ClientHttp2Stream;
  /** Resolves with the response headers, or rejects with the call's failure. */
  readonly response: Promise<ResponseHead>;
  /** Reads the whole response (a unary call's). */
  whole(): Promise<ResponseHead & { chunks: Buffer[]; trailers: http2.IncomingHttpHeaders }>;
  /** Listens to the stream's data, end and failure (a streaming call's). */
  listen(onData: (chunk: Buffer) => void, onEnd: (trailers: http2.IncomingHttpHeaders) => void, onFailure: (error: ConnectError) => void): void;
  /** Cancels the stream with RST_STREAM CANCEL, if it is still open. */
  cancel(): void;
}

/**
 * A server-streaming call's messages as an async iterable: decoded as their bytes arrive,
 * queued for the consumer, the stream paused while the consumer is a megabyte behind.
 */
export class MessageStream<O extends DescMessage> implements AsyncIterable<MessageShape<O>>, AsyncIterator<MessageShape<O>> {
  /** The end-stream message's metadata, once it came. */
  trailers: Record<string, string> = {};
  private readonly queue: MessageShape<O>[] = [];
  private queuedBytes = 0;
  private paused = false;
  private waiting: { resolve: (result: IteratorResult<MessageShape<O>>) => void; reject: (error: unknown) => void } | undefined;
  private done = false;
  private error: ConnectError | undefined;
  private endStream = false;
  // The bytes of an envelope that spans chunks, gathered until it is whole.
  private partial: Buffer | undefined;
  private partialFilled = 0;
  private header = Buffer.alloc(envelopeHeaderBytes);
  private headerFilled = 0;
  private readonly sizes: number[] = [];

  constructor(
    private readonly call: OpenCall,
    private readonly schema: O,
  ) {
    call.listen(
      (chunk) => this.receive(chunk),
      () => this.end(this.endStream ? undefined : new ConnectError("protocol error: missing EndStreamResponse", Code.InvalidArgument)),
      (error) => this.end(error),
    );
  }

  [Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
    return this;
  }

  next(): Promise<IteratorResult<MessageShape<O>>> {
    const message = this.queue.shift();
    if (message !== undefined) {
      this.queuedBytes -= this.sizes.shift() ?? 0;
      if (this.paused && this.queuedBytes < queuedBytesToPause / 2) {
        this.paused = false;
        this.call.stream.resume();
      }
      return Promise.resolve({ done: false, value: message });
    }
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  /** A consumer that stops early cancels the call. */
  return(): Promise<IteratorResult<MessageShape<O>>> {
    if (!this.done && this.error === undefined) this.call.cancel();
    this.queue.length = 0;
    this.done = true;
    return Promise.resolve({ done: true, value: undefined });
  }

  private receive(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.partial === undefined) {
        // The envelope's header may itself be split between chunks.
        if (this.headerFilled > 0 || chunk.length - offset < envelopeHeaderBytes) {
          const take = Math.min(envelopeHeaderBytes - this.headerFilled, chunk.length - offset);
          chunk.copy(this.header, this.headerFilled, offset, offset + take);
          this.headerFilled += take;
          offset += take;
          if (this.headerFilled < envelopeHeaderBytes) return;
          this.headerFilled = 0;
          this.startEnvelope(this.header[0] ?? 0, this.header.readUInt32BE(1));
          if (this.partial === undefined) continue;
        } else {
          const flags = chunk[offset] ?? 0;
          const length = chunk.readUInt32BE(offset + 1);
          offset += envelopeHeaderBytes;
          if (chunk.length - offset >= length) {
            // The whole message is inside this chunk: decoded from it, not copied.
            this.envelope(flags, chunk.subarray(offset, offset + length));
            offset += length;
            continue;
          }
          this.startEnvelope(flags, length);
          if (this.partial === undefined) continue;
        }
      }
      const partial = this.partial;
      const take = Math.min(partial.length - this.partialFilled, chunk.length - offset);
      chunk.copy(partial, this.partialFilled, offset, offset + take);
      this.partialFilled += take;
      offset += take;
      if (this.partialFilled === partial.length) {
        this.partial = undefined;
        this.envelope(this.partialFlags, partial);
      }
    }
  }

  private partialFlags = 0;

  private startEnvelope(flags: number, length: number): void {
    if (length === 0) return this.envelope(flags, new Uint8Array(0));
    this.partial = Buffer.allocUnsafe(length);
    this.partialFilled = 0;
    this.partialFlags = flags;
  }

  private envelope(flags: number, bytes: Uint8Array): void {
    if (this.done || this.error !== undefined) return;
    if ((flags & compressedFlag) !== 0) return this.protocolError("protocol error: received a compressed message, but asked for none", Code.Internal);
    if ((flags & endStreamFlag) !== 0) {
      if (this.endStream) return this.protocolError("protocol error: received extra EndStreamResponse", Code.InvalidArgument);
      this.endStream = true;
      // A call's usual end, "{}": no error, no trailers. connect's parser makes an Error (with
      // its stack) at each call to have it ready for a malformed end, which a stream that ends
      // well need not pay for.
      if (bytes.length === 2 && bytes[0] === 0x7b && bytes[1] === 0x7d) {
        this.trailers = {};
        return;
      }
      let end: ReturnType<typeof endStreamFromJson>;
      try {
        end = endStreamFromJson(bytes);
      } catch (error) {
        return this.protocolError(`protocol error: ${error instanceof Error ? error.message : String(error)}`, Code.Internal);
      }
      this.trailers = Object.fromEntries(end.metadata);
      if (end.error !== undefined) this.end(end.error);
      return;
    }
    if (this.endStream) return this.protocolError("protocol error: received extra message after EndStreamResponse", Code.InvalidArgument);
    let message: MessageShape<O>;
    try {
      message = fromBinary(this.schema, bytes) as MessageShape<O>;
    } catch (error) {
      return this.protocolError(`protocol error: ${error instanceof Error ? error.message : String(error)}`, Code.Internal);
    }
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      waiting.resolve({ done: false, value: message });
      return;
    }
    this.queue.push(message);
    this.sizes.push(bytes.byteLength);
    this.queuedBytes += bytes.byteLength;
    if (!this.paused && this.queuedBytes >= queuedBytesToPause) {
      this.paused = true;
      this.call.stream.pause();
    }
  }

  private protocolError(message: string, code: Code): void {
    // The error first: cancelling the stream ends the call too, and the first end is the one reported.
    this.end(new ConnectError(message, code));
    this.call.cancel();
  }

  /** Ends the messages: with an error after the queued ones, or done. */
  private end(error: ConnectError | undefined): void {
    if (this.done || this.error !== undefined) return;
    if (error === undefined) this.done = true;
    else this.error = error;
    const waiting = this.waiting;
    if (waiting === undefined) return;
    this.waiting = undefined;
    if (error === undefined) waiting.resolve({ done: true, value: undefined });
    else waiting.reject(error);
  }
}
