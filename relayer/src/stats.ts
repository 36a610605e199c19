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

/** In-memory per-provider counters behind routing by latency, the provider views and `/metrics`. */
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

  /** Mean latency of recent successful calls (0 when none: untried providers are tried first). */
  averageLatency(providerId: number): number {
    const latencies = this.byProvider.get(providerId)?.latencies ?? [];
    return latencies.length === 0 ? 0 : latencies.reduce((sum, value) => sum + value, 0) / latencies.length;
  }

  /** The `p`-th percentile (0–100) of recent latencies, or null without samples. */
  latencyPercentile(providerId: number, p: number): number | null {
    const latencies = [...(this.byProvider.get(providerId)?.latencies ?? [])].sort((a, b) => a - b);
    if (latencies.length === 0) return null;
    return latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  }

  /** Prometheus text exposition of every counter. */
  prometheus(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, value: (c: ProviderCounters) => number | bigint) => {
      lines.push(`# HELP agentmesh_${name} ${help}`, `# TYPE agentmesh_${name} ${type}`);
      for (const [providerId, counters] of this.byProvider) lines.push(`agentmesh_${name}{provider="${providerId}"} ${value(counters)}`);
    };
    metric("upstream_calls_total", "counter", "Calls made to providers.", (c) => c.upstreamCalls);
    metric("upstream_failures_total", "counter", "Provider calls that failed (not billed).", (c) => c.upstreamFailures);
    metric("billed_calls_total", "counter", "Calls billed with a receipt.", (c) => c.billedCalls);
    metric("input_tokens_total", "counter", "Input tokens billed.", (c) => c.inputTokens);
    metric("output_tokens_total", "counter", "Output tokens billed.", (c) => c.outputTokens);
    metric("billed_usdc_atomic_total", "counter", "Atomic USDC billed.", (c) => c.billedAtomic);
    metric("token_mismatches_total", "counter", "Receipts whose provider usage disagreed with the relayer's tokenizer.", (c) => c.tokenMismatches);
    metric("health_probes_total", "counter", "Health probes of provider endpoints.", (c) => c.probes);
    metric("health_probe_successes_total", "counter", "Health probes answered with a 2xx.", (c) => c.probeSuccesses);
    return `${lines.join("\n")}\n`;
  }
}
