import { Terminal as XTerm } from "@xterm/xterm";
import { useEffect, useRef } from "preact/hooks";

/** What a {@link Terminal} hands its owner once it is on the page. */
export interface TerminalHandle {
  /** Writes bytes as a terminal shows them: colors and control sequences rendered, UTF-8 decoded across calls. */
  write(bytes: Uint8Array | string): void;
  /** Empties the screen and the scrollback. */
  clear(): void;
}

/** Props of {@link Terminal}. */
export interface TerminalProps {
  /**
   * Called once, when the terminal is on the page, with its handle; the owner feeds it
   * output from then on (from `StreamTaskOutput`, `RunTask`, one node's part of a fan-out).
   * The handle stops working when the component is removed.
   */
  readonly onReady: (terminal: TerminalHandle) => void;
  /** Rows shown (24 by default); more scroll back, up to `scrollback` lines. */
  readonly rows?: number;
  /** Lines kept above the screen (10,000 by default): older output is paged from the node, not kept here. */
  readonly scrollback?: number;
  /** The accessible name of the output area, such as "stdout of task 42". */
  readonly label: string;
}

/**
 * A read-only xterm.js terminal that renders a task's output as the command's terminal would.
 * Its width follows its container (columns from the measured cell width); new lines are
 * written as carriage return and line feed, since commands write bare `\n`.
 */
export function Terminal(props: TerminalProps) {
  const host = useRef<HTMLDivElement>(null);
  const { onReady, rows = 24, scrollback = 10_000, label } = props;
  useEffect(() => {
    const element = host.current;
    if (element === null) return undefined;
    const term = new XTerm({
      rows,
      cols: 80,
      scrollback,
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      cursorStyle: "underline",
      fontSize: 13,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      theme: { background: "#111418", foreground: "#d8dee4" },
    });
    term.open(element);
    let closed = false;
    const fit = (): void => {
      // The cell width is only known once xterm has measured its font on the page.
      const cell = element.querySelector<HTMLElement>(".xterm-rows > div > span, .xterm-char-measure-element");
      const width = cell?.getBoundingClientRect().width ?? 0;
      const perChar = width > 0 && cell?.textContent !== null && (cell?.textContent?.length ?? 0) > 0 ? width / (cell?.textContent?.length ?? 1) : 7.8;
      const cols = Math.max(20, Math.floor((element.clientWidth - 4) / perChar));
      if (cols !== term.cols) term.resize(cols, rows);
    };
    const observer = new ResizeObserver(() => fit());
    observer.observe(element);
    fit();
    onReady({
      write: (bytes) => {
        if (!closed) term.write(bytes);
      },
      clear: () => {
        if (!closed) term.reset();
      },
    });
    return () => {
      closed = true;
      observer.disconnect();
      term.dispose();
    };
    // The terminal is made once per mount; a new owner mounts a new one (give it a key).
  }, []);
  return <div class="terminal" ref={host} role="log" aria-label={label} />;
}
