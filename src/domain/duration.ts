/** Milliseconds per duration unit, as an operator writes them (`500ms`, `30s`, `15m`, `1h`, `7d`). */
const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Reads a duration such as `7d`, `1h30m`, `90s` or `250ms` into milliseconds; `0` alone
 * needs no unit. Returns undefined for anything else: a bare number other than 0 is
 * refused, because `--retain-finished 7` could mean seconds or days.
 */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, count, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(count) * (unitMs[unit ?? ""] ?? 0);
  return Number.isSafeInteger(total) ? total : undefined;
}

/** Writes milliseconds as the largest whole unit that fits (`7d`, `90s`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  for (const unit of ["d", "h", "m", "s"] as const) {
    const size = unitMs[unit] ?? 1;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
