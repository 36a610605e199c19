import type { RelayerContext } from "./context.ts";
import { checkEndpoint } from "./upstream.ts";

/** Time a provider has to answer a probe. */
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Probes every served provider's endpoint (`GET {endpoint}/models`, which every OpenAI-compatible
 * server answers) on an interval; the answered share is the provider's uptime score.
 */
export class HealthProber {
  private readonly ctx: RelayerContext;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(ctx: RelayerContext, intervalMs: number) {
    this.ctx = ctx;
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.probeAll().finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One round of probes (also used by tests). */
  async probeAll(): Promise<void> {
    await Promise.all(
      this.ctx.chainIndex
        .providers()
        .filter((provider) => this.ctx.served.has(provider.id))
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
