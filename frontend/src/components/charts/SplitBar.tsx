import { shortHex } from "../../lib/explorer.ts";
import { formatShare, SHARE_SCALE, type SplitSlice } from "../../lib/splits.ts";

const COLORS = ["#1f6f5c", "#e0a100", "#3b6fd8", "#c2410c", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];

/** Who gets what of a split: one stacked bar and a legend, with labels for known accounts. */
export default function SplitBar({ slices, names = {} }: { slices: readonly SplitSlice[]; names?: Record<string, string> }) {
  let offset = 0;
  return (
    <figure className="chart">
      <svg viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label={slices.map((slice) => `${names[slice.account] ?? slice.account} ${formatShare(slice.share)}`).join(", ")}>
        {slices.map((slice, index) => {
          const width = (slice.share / SHARE_SCALE) * 100;
          const rect = <rect key={slice.account + index} x={offset} y={0} width={width} height={8} fill={COLORS[index % COLORS.length]} />;
          offset += width;
          return rect;
        })}
      </svg>
      <ul className="legend">
        {slices.map((slice, index) => (
          <li key={slice.account + index}>
            <span className="swatch" style={{ background: COLORS[index % COLORS.length] }} />
            <span className="mono" title={slice.account}>
              {names[slice.account] ?? shortHex(slice.account)}
            </span>{" "}
            {formatShare(slice.share)}
            {slice.remainder && " (remainder)"}
          </li>
        ))}
      </ul>
    </figure>
  );
}
