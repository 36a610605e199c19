import type { RelayerContext } from "./context.ts";
import { readCapped, type OutboundHttp } from "./outbound.ts";
import { PeriodicPass } from "./periodic.ts";
import { passLeaseMs } from "./store/leases.ts";

/** Time a provider has to answer a probe. */
const PROBE_TIMEOUT_MS = 5_000;
/** Largest probe answer read; a longer one fails the probe. */
const MAX_PROBE_BYTES = 1024 * 1024;

/**
 * Whether the provider at `endpoint` answers `GET {endpoint}/models` with a 2xx within
 * `timeoutMs`. An endpoint the outbound policy refuses is not contacted, and fails the probe.
 */
export async function probeEndpoint(outbound: OutboundHttp, endpoint: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    const response = await outbound.request(outbound.endpointUrl(endpoint, "/models"), { method: "GET", signal: AbortSignal.timeout(timeoutMs) });
    await readCapped(response.body, MAX_PROBE_BYTES, response.headers);
    return response.statusCode >= 200 && response.statusCode <= 299;
  } catch {
    return false;
  }
}

/**
 * Probes every provider this relayer serves (active, with one of its receipt signers) at its endpoint
 * (`GET {endpoint}/models`, which every OpenAI-compatible server answers) on an interval; the
 * answered share is the provider's uptime score.
 */
export class HealthProber {
  private readonly ctx: RelayerContext;
  private readonly passes: PeriodicPass<void>;

  constructor(ctx: RelayerContext, intervalMs: number) {
    this.ctx = ctx;
    // Once across the fleet (the stats it feeds are the prober's instance's).
    const lease = ctx.leases && { leases: ctx.leases, name: "health-probes", ttlMs: passLeaseMs(intervalMs) };
    this.passes = new PeriodicPass("health probes", intervalMs, () => this.probeRound(), lease);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One round of probes, after any under way (also used by tests). */
  probeAll(): Promise<void> {
    return this.passes.run();
  }

  private async probeRound(): Promise<void> {
    await Promise.all(
      (await this.ctx.chainIndex.providers())
        .filter((provider) => this.ctx.receiptSigners.serves(provider))
        .map(async (provider) => this.ctx.stats.recordProbe(provider.id, await probeEndpoint(this.ctx.outbound, provider.endpoint))),
    );
  }
}
