import { useEffect, useRef, useState } from "preact/hooks";
import { Stream } from "../../../gen/drce/v1/task_pb.js";
import { errorText, useApi } from "../api.js";
import { Terminal, type TerminalHandle } from "../terminal.js";

/** Bytes of one stream drawn at once: a larger output is read page by page from its offsets. */
export const outputPageBytes = 256 * 1024;

/** Props of {@link TaskOutput}. */
export interface TaskOutputProps {
  /** The task id. */
  readonly task: string;
  /** Which stream this pane shows. */
  readonly stream: "stdout" | "stderr";
  /** The stream's size as the node last reported it (GetTask), to place the first page at its tail. */
  readonly size: bigint;
  /** Whether the task may still write: the last page then follows new output as it comes. */
  readonly active: boolean;
}

/**
 * One output stream of a task in a terminal, read with `StreamTaskOutput` from an offset and
 * never whole: a page of {@link outputPageBytes} at a time, the last page first. On the last
 * page of a running task the call follows, so output appears as the command writes it; earlier
 * pages are read to their end and the call is closed. Bytes the node did not keep are marked
 * where they were.
 */
export function TaskOutput(props: TaskOutputProps) {
  const api = useApi();
  const [start, setStart] = useState<bigint | undefined>(undefined);
  const [shownSize, setShownSize] = useState(props.size);
  const [error, setError] = useState("");
  const terminal = useRef<TerminalHandle | undefined>(undefined);
  const [ready, setReady] = useState(false);
  const lastPage = (size: bigint): bigint => (size > BigInt(outputPageBytes) ? ((size - 1n) / BigInt(outputPageBytes)) * BigInt(outputPageBytes) : 0n);
  const from = start ?? lastPage(props.size);
  const end = from + BigInt(outputPageBytes);
  const following = start === undefined;
  const stream = props.stream === "stdout" ? Stream.STDOUT : Stream.STDERR;
  useEffect(() => {
    const term = terminal.current;
    if (!ready || term === undefined) return undefined;
    term.clear();
    setError("");
    const abort = new AbortController();
    // The other stream is read from its end: its bytes are not this pane's.
    const far = 1n << 62n;
    const offsets = props.stream === "stdout" ? { stdoutOffset: from, stderrOffset: far } : { stdoutOffset: far, stderrOffset: from };
    const read = async (): Promise<void> => {
      try {
        for await (const reply of api.tasks.streamTaskOutput({ task: props.task, follow: following && props.active, ...offsets }, { signal: abort.signal })) {
          const event = reply.event;
          if (event.case === "output" && event.value.stream === stream) {
            const chunk = event.value;
            const room = following ? chunk.data.length : Number(end - chunk.offset);
            if (room <= 0) break;
            term.write(room < chunk.data.length ? chunk.data.subarray(0, room) : chunk.data);
            const reached = chunk.offset + BigInt(chunk.data.length);
            setShownSize((size) => (reached > size ? reached : size));
            if (!following && reached >= end) break;
          } else if (event.case === "gap" && event.value.stream === stream) {
            term.write(`\r\n\x1b[2m[${event.value.bytes} bytes not kept by the node]\x1b[0m\r\n`);
          }
        }
      } catch (failure) {
        if (!abort.signal.aborted) setError(`The output could not be read: ${errorText(failure)}`);
      }
    };
    void read();
    return () => abort.abort();
  }, [ready, from, following, props.active, props.task]);
  const size = shownSize > props.size ? shownSize : props.size;
  const pages = size === 0n ? 1n : (size - 1n) / BigInt(outputPageBytes) + 1n;
  const page = from / BigInt(outputPageBytes) + 1n;
  const label = `${props.stream} of task ${props.task}`;
  return (
    <div class="card output">
      <div class="toolbar">
        <h2>{props.stream}</h2>
        <span class="notice" data-output-size={String(size)}>
          {size === 0n ? "empty so far" : `bytes ${from}–${end < size ? end : size} of ${size}`}
          {pages > 1n ? ` · page ${page} of ${pages}` : ""}
        </span>
        {pages > 1n && (
          <span class="actions">
            <button type="button" class="quiet" disabled={from === 0n} onClick={() => setStart(from - BigInt(outputPageBytes) < 0n ? 0n : from - BigInt(outputPageBytes))}>
              Earlier
            </button>
            <button type="button" class="quiet" disabled={following} onClick={() => setStart(end >= lastPage(size) ? undefined : end)}>
              Later
            </button>
            <button type="button" class="quiet" disabled={following} onClick={() => setStart(undefined)}>
              Latest
            </button>
          </span>
        )}
      </div>
      {error !== "" && <p class="error">{error}</p>}
      <Terminal
        label={label}
        rows={props.stream === "stdout" ? 20 : 8}
        onReady={(handle) => {
          terminal.current = handle;
          setReady(true);
        }}
      />
    </div>
  );
}
