/** Chart geometry shared by the SVG charts: scales and axis ticks. */

/** The smallest "nice" number (1, 2 or 5 × 10^k) at or above `value`; 1 for zero or less. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((candidate) => candidate * magnitude >= value * (1 - 1e-12)) ?? 10;
  return step * magnitude;
}

/**
 * A linear scale from [0, domainMax] to [0, rangeMax], clamped to the range.
 *
 * @example
 * const y = linearScale(100, 40); y(50); // 20
 */
export function linearScale(domainMax: number, rangeMax: number): (value: number) => number {
  const max = domainMax > 0 ? domainMax : 1;
  return (value) => Math.min(rangeMax, Math.max(0, (value / max) * rangeMax));
}

/** `count` + 1 evenly spaced ticks from 0 to `max`. */
export function ticks(max: number, count = 4): number[] {
  return Array.from({ length: count + 1 }, (_, index) => (max * index) / count);
}

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Bars for `values` side by side in a `width` × `height` box, bottom-aligned, on a 0…`max` scale. */
export function barLayout(values: readonly number[], width: number, height: number, max = niceCeiling(Math.max(0, ...values)), gap = 0.2): Bar[] {
  const slot = values.length === 0 ? 0 : width / values.length;
  const y = linearScale(max, height);
  return values.map((value, index) => {
    const barHeight = y(value);
    return { x: index * slot + (slot * gap) / 2, y: height - barHeight, width: slot * (1 - gap), height: barHeight };
  });
}

/** Compact axis labels: 1500 → "1.5K", 2_000_000 → "2M". */
export function compactNumber(value: number): string {
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 }).format(value);
}
