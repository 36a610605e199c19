import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";
import type { Receipt } from "@agentmesh/sdk";

/** Latency samples kept per provider for percentiles. */
const WINDOW = 1_000;

interface ProviderCounters {
  upstreamCalls: number;
  upstreamFailures: number;
  billedCalls: number;
  inputTokens: number;
  outputTokens: number;
  billedAtomic: bigint;
  tokenMismatches: number;
  /** Sum of billed calls' latencies, for throughput. */
  billedLatencyMs: number;
  probes: number;
  probeSuccesses: number;
  latencies: number[];
  nextSlot: number;
}

/** In-memory per-provider counters behind the provider views and `/metrics`. */
export class ProviderStats {
  private readonly byProvider = new Map<number, ProviderCounters>();

  private counters(providerId: number): ProviderCounters {
    let counters = this.byProvider.get(providerId);
    if (counters === undefined) {
      counters = {
        upstreamCalls: 0,
        upstreamFailures: 0,
        billedCalls: 0,
        inputTokens: 0,
        outputTokens: 0,
        billedAtomic: 0n,
        tokenMismatches: 0,
        billedLatencyMs: 0,
        probes: 0,
        probeSuccesses: 0,
        latencies: [],
        nextSlot: 0,
      };
      this.byProvider.set(providerId, counters);
    }
    return counters;
  }

  /** One upstream call and how long it took. */
  recordUpstream(providerId: number, latencyMs: number, failed: boolean): void {
    const counters = this.counters(providerId);
    counters.upstreamCalls++;
    if (failed) {
      counters.upstreamFailures++;
      return;
    }
    if (counters.latencies.length < WINDOW) counters.latencies.push(latencyMs);
    else counters.latencies[counters.nextSlot] = latencyMs;
    counters.nextSlot = (counters.nextSlot + 1) % WINDOW;
  }

  /** One billed call. */
  recordCall(providerId: number, receipt: Receipt, tokenMismatch: boolean): void {
    const counters = this.counters(providerId);
    counters.billedCalls++;
    counters.inputTokens += receipt.inputTokens;
    counters.outputTokens += receipt.outputTokens;
    counters.billedAtomic += receipt.cost;
    counters.billedLatencyMs += receipt.latencyMs;
    if (tokenMismatch) counters.tokenMismatches++;
  }

  /** One health probe of a provider's endpoint. */
  recordProbe(providerId: number, ok: boolean): void {
    const counters = this.counters(providerId);
    counters.probes++;
    if (ok) counters.probeSuccesses++;
  }

  /** Share of health probes answered (0–1), or null before the first probe. */
  uptime(providerId: number): number | null {
    const counters = this.byProvider.get(providerId);
    return counters === undefined || counters.probes === 0 ? null : counters.probeSuccesses / counters.probes;
  }

  /** Output tokens per second over billed calls, or null before the first. */
  throughput(providerId: number): number | null {
    const counters = this.byProvider.get(providerId);
    return counters === undefined || counters.billedLatencyMs === 0 ? null : (counters.outputTokens * 1000) / counters.billedLatencyMs;
  }

  /** The `p`-th percentile (0–100) of recent latencies, or null without samples. */
  latencyPercentile(providerId: number, p: number): number | null {
    const latencies = [...(this.byProvider.get(providerId)?.latencies ?? [])].sort((a, b) => a - b);
    if (latencies.length === 0) return null;
    return latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  }

  /**
   * The Prometheus registry behind `/metrics` (prom-client), this instance's own: the per-provider
   * counters above (read at scrape time), HTTP request durations, settlements, and, once
   * {@link collectProcessMetrics} is called, the process's metrics.
   */
  readonly registry = new Registry();

  /** HTTP requests by method, route pattern (never the raw path: ids would explode it) and status. */
  private readonly httpDuration = new Histogram({
    name: "agentmesh_http_request_duration_seconds",
    help: "HTTP request durations, by method, route pattern and status.",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  /** Sessions settled (their vouchers mined), settlements retried, and sessions whose vouchers can never settle. */
  private readonly settlements = new Counter({
    name: "agentmesh_settlements_total",
    help: "Session settlements by outcome: settled (mined), retried (failed, backed off), unsettleable (refused for good).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  constructor() {
    const byProvider = this.byProvider;
    const counter = (name: string, help: string, value: (c: ProviderCounters) => number | bigint) =>
      new Counter({
        name: `agentmesh_${name}`,
        help,
        labelNames: ["provider"] as const,
        registers: [this.registry],
        // Read at scrape time from the counters that routing and provider views use too.
        collect() {
          this.reset();
          for (const [providerId, counters] of byProvider) this.inc({ provider: String(providerId) }, Number(value(counters)));
        },
      });
    counter("upstream_calls_total", "Calls made to providers.", (c) => c.upstreamCalls);
    counter("upstream_failures_total", "Provider calls that failed (not billed).", (c) => c.upstreamFailures);
    counter("billed_calls_total", "Calls billed with a receipt.", (c) => c.billedCalls);
    counter("input_tokens_total", "Input tokens billed.", (c) => c.inputTokens);
    counter("output_tokens_total", "Output tokens billed.", (c) => c.outputTokens);
    counter("billed_usdc_atomic_total", "Atomic USDC billed.", (c) => c.billedAtomic);
    counter("token_mismatches_total", "Receipts whose provider usage disagreed with the relayer's tokenizer.", (c) => c.tokenMismatches);
    counter("health_probes_total", "Health probes of provider endpoints.", (c) => c.probes);
    counter("health_probe_successes_total", "Health probes answered with a 2xx.", (c) => c.probeSuccesses);
  }

  /** Adds the process's metrics (CPU, memory, event-loop lag, GC, handles) to {@link registry}; once per process's relayer. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
  }

  /** One HTTP request answered (or cut) after `seconds`. */
  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status: String(status) }, seconds);
  }

  /** `count` sessions' settlements ended as `outcome`. */
  recordSettlements(outcome: "settled" | "retried" | "unsettleable", count: number): void {
    this.settlements.inc({ outcome }, count);
  }

  /** The Prometheus text exposition of {@link registry}. */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }
}
