/**
 * Preloaded into a process under benchmark (`node --import <this file> script.ts`, spawned with an
 * IPC channel: `ChildProcesses.spawnNode(…, { watchEventLoop: true })` in `bench.ts`). It watches
 * that process's main event loop with `perf_hooks.monitorEventLoopDelay` and answers the parent's
 * {@link EventLoopDelayRequest} with an {@link EventLoopDelayReport}, so the figure is measured
 * inside the process itself, without changing its code.
 *
 * The histogram records the interval between runs of a timer due every `RESOLUTION_MS`; a delay is
 * how much later than due it ran, so `RESOLUTION_MS` is taken off each figure.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

export interface EventLoopDelayRequest {
  type: "event-loop-delay";
  /** Start the histogram over after answering. */
  reset: boolean;
}

export interface EventLoopDelayReport {
  type: "event-loop-delay";
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  /** Timer runs measured. */
  samples: number;
}

const RESOLUTION_MS = 10;

if (process.send !== undefined) {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const delayMs = (nanoseconds: number) => (histogram.count === 0 ? 0 : Math.max(0, nanoseconds / 1e6 - RESOLUTION_MS));
  process.on("message", (message: EventLoopDelayRequest) => {
    if (message?.type !== "event-loop-delay") return;
    const report: EventLoopDelayReport = {
      type: "event-loop-delay",
      maxMs: delayMs(histogram.max),
      p99Ms: delayMs(histogram.percentile(99)),
      meanMs: delayMs(histogram.mean),
      samples: histogram.count,
    };
    process.send!(report);
    if (message.reset) histogram.reset();
  });
  process.channel?.unref(); // the probe never keeps the process alive
}
