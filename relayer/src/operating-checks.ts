import { formatEther, formatGwei, type Address, type PublicClient } from "viem";
import { log } from "./log.ts";
import { PeriodicPass } from "./periodic.ts";
import type { Readiness } from "./readiness.ts";
import type { Repository } from "./store/repository.ts";

/** Gas of a settlement of one voucher (`npm run bench:gas`: settleSingleGas 105,960), rounded up. */
export const SETTLEMENT_GAS = 110_000n;

/** What the checks read and where they report. */
export interface OperatingCheckDeps {
  repo: Pick<Repository, "probeWrite">;
  publicClient: Pick<PublicClient, "getBalance" | "estimateFeesPerGas">;
  gasAddress: Address;
  /** The most the relayer pays per gas: the fee a settlement is priced at when the chain asks more. */
  maxFeePerGas: bigint;
  readiness: Pick<Readiness, "storeChecked" | "gasChecked">;
}

/**
 * What else the relayer needs to do its job, checked every `intervalMs` for `GET /readyz`: a store
 * that takes writes (receipts must be durable before they leave), and a gas account that can pay
 * for at least one settlement at the current fee (capped at the relayer's `maxFeePerGas`). Calls on
 * open sessions are still served meanwhile (their vouchers wait, within their claim windows, for
 * the account to be refilled); /readyz tells the operator and the load balancer.
 */
export class OperatingChecks {
  private readonly pass: PeriodicPass<void>;
  private readonly deps: OperatingCheckDeps;

  constructor(deps: OperatingCheckDeps, intervalMs = 15_000) {
    this.deps = deps;
    this.pass = new PeriodicPass("operating checks", intervalMs, () => this.check());
  }

  /** Checks now, then every interval. */
  async start(): Promise<void> {
    this.pass.start();
    await this.pass.run();
  }

  async stop(): Promise<void> {
    await this.pass.stop();
  }

  /** One check of the store and the gas account. */
  async check(): Promise<void> {
    const { repo, publicClient, gasAddress, maxFeePerGas, readiness } = this.deps;
    try {
      await repo.probeWrite(Date.now());
      readiness.storeChecked(undefined);
    } catch (error) {
      readiness.storeChecked(`the store takes no writes: ${(error as Error).message}`);
    }
    let balance: bigint;
    let feePerGas: bigint;
    try {
      [balance, { maxFeePerGas: feePerGas }] = await Promise.all([publicClient.getBalance({ address: gasAddress }), publicClient.estimateFeesPerGas()]);
    } catch (error) {
      log.warn({ err: error }, "the gas account's balance could not be read (the RPC check reports the RPC)");
      return;
    }
    const fee = feePerGas < maxFeePerGas ? feePerGas : maxFeePerGas;
    const needed = SETTLEMENT_GAS * fee;
    readiness.gasChecked(
      balance >= needed
        ? undefined
        : `the gas account ${gasAddress} holds ${formatEther(balance)} ETH; a settlement needs about ${formatEther(needed)} ETH (${SETTLEMENT_GAS} gas at ${formatGwei(fee)} gwei)`,
    );
  }
}
