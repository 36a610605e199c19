import type { RelayerContext } from "./context.ts";
import { PeriodicPass } from "./periodic.ts";
import { checkEndpoint } from "./upstream.ts";

/** Time a provider has to answer a probe. */
const PROBE_TIMEOUT_MS = 5_000;

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
    this.passes = new PeriodicPass("health probes", intervalMs, () => this.probeRound());
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
      this.ctx.chainIndex
        .providers()
        .filter((provider) => this.ctx.receiptSigners.serves(provider))
        .map(async (provider) => {
          let ok = false;
          try {
            const url = checkEndpoint(provider.endpoint, this.ctx.limits.allowPrivateEndpoints);
            const response = await fetch(`${url.href.replace(/\/$/, "")}/models`, {
              signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
              redirect: "error",
            });
            ok = response.ok;
            await response.body?.cancel();
          } catch {
            ok = false;
          }
          this.ctx.stats.recordProbe(provider.id, ok);
        }),
    );
  }
}
