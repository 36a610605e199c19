import type { ReadinessView } from "@agentmesh/sdk/protocol";
import { ApiError } from "@agentmesh/sdk/http";
import { ReorgTooDeepError, type IndexerStatus } from "./indexer.ts";

/** One reason the relayer is not ready, as `GET /readyz` lists it. */
export type ReadinessProblem = ReadinessView["problems"][number];

/**
 * Whether the relayer can serve calls, and why not. The relayer listens at once; until the chain
 * answers (chain id, escrow limits) and the indexer has caught up with the head once, it is not
 * ready: `GET /readyz` answers 503 naming what is missing, and calls that need the chain index
 * (chat, sessions, agent calls) are refused with 503 `relayer_not_ready`. It also stops being ready
 * while the RPC fails (the last indexer pass failed) and once shutdown begins.
 */
export class Readiness {
  private readonly indexer: () => IndexerStatus;
  /** Set while start-up cannot reach the chain (before the indexer runs). */
  private startupError: Error | undefined;
  /** A configuration the chain refuses (wrong chain id, batch above the escrow's): never ready. */
  private fatal: Error | undefined;
  private started = false;
  private draining = false;
  /** What the last operating check found wrong with the store and the gas account (see operating-checks.ts). */
  private storeProblem: string | undefined;
  private gasProblem: string | undefined;
  /** What the last directory pass could not announce (see directory-announcer.ts). */
  private directoryProblem: string | undefined;

  constructor(indexer: () => IndexerStatus) {
    this.indexer = indexer;
  }

  /** Start-up could not reach the chain yet (it retries). */
  startupFailed(error: Error): void {
    this.startupError = error;
  }

  /** Start-up checked the chain and started the indexer. */
  chainChecked(): void {
    this.startupError = undefined;
    this.started = true;
  }

  /** The chain refuses this configuration: the relayer will never be ready. */
  configurationRefused(error: Error): void {
    this.fatal = error;
  }

  /** The last write to the store failed (`problem`), or succeeded (undefined). */
  storeChecked(problem: string | undefined): void {
    this.storeProblem = problem;
  }

  /** The gas account cannot pay for a settlement (`problem`), or can (undefined). */
  gasChecked(problem: string | undefined): void {
    this.gasProblem = problem;
  }

  /** The directory points some receipt signer elsewhere than here (`problem`), or none (undefined). */
  directoryChecked(problem: string | undefined): void {
    this.directoryProblem = problem;
  }

  /** Shutdown began: no new calls. */
  drain(): void {
    this.draining = true;
  }

  /** What keeps the relayer from being ready; empty when it is. */
  problems(): ReadinessProblem[] {
    const problems: ReadinessProblem[] = [];
    if (this.draining) problems.push({ check: "shutdown", message: "the relayer is shutting down" });
    if (this.fatal !== undefined) problems.push({ check: "configuration", message: this.fatal.message });
    if (this.storeProblem !== undefined) problems.push({ check: "store", message: this.storeProblem });
    if (this.gasProblem !== undefined) problems.push({ check: "gas", message: this.gasProblem });
    if (this.directoryProblem !== undefined) problems.push({ check: "directory", message: this.directoryProblem });
    const status = this.indexer();
    if (status.lastError instanceof ReorgTooDeepError) problems.push({ check: "indexer", message: status.lastError.message });
    const rpcError = this.startupError ?? (this.started && !(status.lastError instanceof ReorgTooDeepError) ? status.lastError : undefined);
    if (rpcError !== undefined) problems.push({ check: "rpc", message: `the chain's RPC failed: ${firstLine(rpcError.message)}` });
    else if (!this.started && this.fatal === undefined) problems.push({ check: "rpc", message: "the chain's RPC has not answered yet" });
    if (!this.started || !status.synced) {
      const behind = status.target === undefined ? null : Math.max(0, status.target - (status.lastBlock ?? -1));
      problems.push({
        check: "indexer",
        behindBlocks: behind,
        message: behind === null ? "the indexer has not seen the chain's head yet" : `the indexer is ${behind} blocks behind the confirmed head`,
      });
    }
    return problems;
  }

  /**
   * Refuses a call that needs the chain index until it has caught up once (and during shutdown):
   * 503 `relayer_not_ready` with Retry-After. Once caught up, a passing RPC failure does not stop
   * calls already possible (sessions are served from the index and the store).
   */
  requireServing(): void {
    if (this.draining) throw new ApiError(503, "relayer_shutting_down", "the relayer is shutting down; retry on another relayer or later", { headers: { "retry-after": "5" } });
    const status = this.indexer();
    // An index the chain reorganized away from too deeply to follow says nothing true any more.
    if (this.started && status.synced && !(status.lastError instanceof ReorgTooDeepError)) return;
    const reasons = this.problems().map((problem) => problem.message).join("; ");
    throw new ApiError(503, "relayer_not_ready", `the relayer is starting and not ready to serve: ${reasons}`, { headers: { "retry-after": "5" } });
  }
}

const firstLine = (text: string) => text.split("\n")[0];
