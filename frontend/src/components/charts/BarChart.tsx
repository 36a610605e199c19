import { linearScale, niceCeiling } from "../../lib/chart.ts";

export interface BarDatum {
  label: string;
  value: number;
  /** The value as shown next to its bar. */
  display: string;
}

const ROW = 22;
const LABEL = 120;
const WIDTH = 360;
const VALUE = 92;

/** A small horizontal bar chart comparing a few values. */
export default function BarChart({ title, data }: { title: string; data: readonly BarDatum[] }) {
  const x = linearScale(niceCeiling(Math.max(0, ...data.map((datum) => datum.value))), WIDTH - LABEL - VALUE);
  const height = data.length * ROW;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={`${title}: ${data.map((datum) => `${datum.label} ${datum.display}`).join(", ")}`}>
        {data.map((datum, index) => (
          <g key={datum.label} transform={`translate(0 ${index * ROW})`}>
            <text x={0} y={ROW / 2 + 4} className="chart-label">
              {datum.label}
            </text>
            <rect x={LABEL} y={4} width={Math.max(1, x(datum.value))} height={ROW - 8} rx={3} className="chart-bar" />
            <text x={LABEL + x(datum.value) + 6} y={ROW / 2 + 4} className="chart-value">
              {datum.display}
            </text>
          </g>
        ))}
      </svg>
    </figure>
  );
}
