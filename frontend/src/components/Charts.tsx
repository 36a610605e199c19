import { lazy, Suspense, type ComponentProps } from "react";

/**
 * The charts, loaded on first use (they are not needed for the first paint): each export renders a
 * lazily imported chart with a placeholder of the same role while it loads.
 */
const LazyBarChart = lazy(() => import("./charts/BarChart.tsx"));
const LazyColumnChart = lazy(() => import("./charts/ColumnChart.tsx"));
const LazySplitBar = lazy(() => import("./charts/SplitBar.tsx"));

const placeholder = <div className="chart chart-placeholder" aria-hidden="true" />;

export function BarChart(props: ComponentProps<typeof LazyBarChart>) {
  return <Suspense fallback={placeholder}><LazyBarChart {...props} /></Suspense>;
}

export function ColumnChart(props: ComponentProps<typeof LazyColumnChart>) {
  return <Suspense fallback={placeholder}><LazyColumnChart {...props} /></Suspense>;
}

export function SplitBar(props: ComponentProps<typeof LazySplitBar>) {
  return <Suspense fallback={placeholder}><LazySplitBar {...props} /></Suspense>;
}
