import { barLayout, compactNumber, niceCeiling, ticks } from "../../lib/chart.ts";

export interface ColumnDatum {
  /** Axis label under the column. */
  label: string;
  value: number;
}

const WIDTH = 640;
const HEIGHT = 200;
const AXIS = 44;
const FOOT = 22;

/** Columns over time (such as volume per period) with a value axis. */
export default function ColumnChart({ title, data, unit }: { title: string; data: readonly ColumnDatum[]; unit: string }) {
  const max = niceCeiling(Math.max(0, ...data.map((datum) => datum.value)));
  const plotHeight = HEIGHT - FOOT;
  const bars = barLayout(data.map((datum) => datum.value), WIDTH - AXIS, plotHeight, max);
  const labelEvery = Math.max(1, Math.ceil(data.length / 6));
  return (
    <figure className="chart chart-wide">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title}, ${unit}: ${data.map((datum) => `${datum.label} ${datum.value}`).join(", ")}`}>
        {ticks(max).map((tick) => {
          const y = plotHeight - (tick / max) * plotHeight;
          return (
            <g key={tick}>
              <line x1={AXIS} x2={WIDTH} y1={y} y2={y} className="chart-grid" />
              <text x={AXIS - 6} y={y + 4} textAnchor="end" className="chart-label">
                {compactNumber(tick)}
              </text>
            </g>
          );
        })}
        {bars.map((bar, index) => (
          <g key={data[index].label + index}>
            <rect x={AXIS + bar.x} y={bar.y} width={bar.width} height={bar.height} className="chart-bar">
              <title>{`${data[index].label}: ${data[index].value} ${unit}`}</title>
            </rect>
            {index % labelEvery === 0 && (
              <text x={AXIS + bar.x + bar.width / 2} y={HEIGHT - 6} textAnchor="middle" className="chart-label">
                {data[index].label}
              </text>
            )}
          </g>
        ))}
      </svg>
    </figure>
  );
}
