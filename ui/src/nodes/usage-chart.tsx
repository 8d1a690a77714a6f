import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef } from "preact/hooks";
import { usageFigures, type UsagePoint } from "./usage-history.js";

/** Props of {@link UsageChart}. */
export interface UsageChartProps {
  /** The samples, oldest first. */
  readonly points: readonly UsagePoint[];
  /** The accessible name of the chart, such as "load history of alpha". */
  readonly label: string;
}

/** A time of day (seconds since the epoch) as hours, minutes and seconds, for the time axis. */
function clock(seconds: number): string {
  const at = new Date(seconds * 1000);
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((part) => String(part).padStart(2, "0")).join(":");
}

/** One color a figure, told apart on the light card. */
const colors = ["#0b5cad", "#9a6700", "#8250df", "#1a7f37", "#6e7781", "#bf3989", "#0a7ea4", "#b42318"];

/**
 * A small uPlot line chart of the eight load figures over time, percent, its width following
 * its container. The figures' latest values are in the card beside it in text, so the
 * chart is an image for screen readers, named by `label` with its sample count.
 */
export function UsageChart(props: UsageChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  const data = (): uPlot.AlignedData => [props.points.map((point) => point.atMs / 1000), ...usageFigures.map((_, index) => props.points.map((point) => point.figures[index] ?? 0))];
  useEffect(() => {
    const element = host.current;
    if (element === null) return undefined;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height: 150,
      legend: { show: false },
      cursor: { show: false },
      scales: { y: { range: (_, min, max) => [0, Math.max(100, Math.ceil(max > min ? max : 100))] } },
      axes: [
        { size: 28, space: 90, font: "11px system-ui", values: (_, ticks) => ticks.map((tick) => clock(tick)) },
        { size: 52, font: "11px system-ui", values: (_, ticks) => ticks.map((tick) => `${tick}%`) },
      ],
      series: [{}, ...usageFigures.map((figure, index) => ({ label: figure.title, stroke: colors[index] ?? "#000", width: 1.5, points: { show: false } }))],
    };
    const plot = new uPlot(options, data(), element);
    chart.current = plot;
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(200, element.clientWidth), height: 150 }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.destroy();
      chart.current = undefined;
    };
    // The chart is made once per mount; new points go through setData below.
  }, []);
  useEffect(() => {
    chart.current?.setData(data());
  }, [props.points]);
  return <div class="usage-chart" ref={host} role="img" aria-label={`${props.label}: ${props.points.length} samples`} data-points={props.points.length} />;
}

/** The chart's key: each figure's name in its line's color. */
export function UsageKey() {
  return (
    <ul class="usage-key" aria-hidden="true">
      {usageFigures.map((figure, index) => (
        <li>
          <span class="usage-swatch" style={{ background: colors[index] }} /> {figure.title}
        </li>
      ))}
    </ul>
  );
}
