import { keccak256, type Account, type Address, type Hex, type PublicClient } from "viem";
import type { Repository } from "./store/repository.ts";
import { log } from "./log.ts";

/**
 * The relayer's transaction manager: the one sender of every transaction the relayer's gas account
 * signs (opens, settlements, cooperative closes, x402 transfers, payouts).
 *
 * - **Nonces.** It owns the account's nonces: each transaction gets the next one, and is recorded
 *   (nonce, request, signed bytes) before it is broadcast, so a crash at any point leaves a row that
 *   the next run sends again. On start the next nonce is the larger of the chain's pending count and
 *   one past the highest recorded; each send takes the larger of that and the chain's pending count
 *   then, so a transaction sent from the account by anyone else does not make the next one collide.
 * - **Broadcast.** A broadcast that errors (a dropped connection, a load-balanced RPC that does not
 *   know the hash yet, "already known", "nonce too low") is never taken as a failure: the row stays
 *   pending and every pass re-broadcasts its latest signed bytes until one of its hashes has a
 *   receipt, so a dropped transaction neither fails nor blocks the nonces after it.
 * - **Replacement.** A transaction unmined `stuckAfterMs` after its last broadcast is signed again at
 *   the same nonce with fees raised by `bumpPercent` (at least the node's 10 % replacement minimum)
 *   or to the market's, whichever is higher, never above `maxFeePerGas`.
 * - **Confirmation.** A receipt for any of its hashes makes it mined; it counts as confirmed (or
 *   reverted) only once `confirmations` blocks deep. A mined transaction whose receipt disappears or
 *   moves to another block (a reorg) is pending again and re-broadcast.
 * - **Nonce taken elsewhere.** When the chain's count passes a transaction's nonce and none of its
 *   hashes has a receipt for `replacedAfterPasses` passes, it is `replaced`: its outcome is unknown,
 *   and callers reconcile with the chain's state (for a settlement: the escrow's settled sequence).
 *   Not while the block that used the nonce holds one of its own hashes: then it mined and only its
 *   receipt lags, so it is waited for, never called replaced.
 */
export interface TxManagerOptions {
  /** Blocks a receipt must be under (1 = the receipt's own block) before it counts. */
  confirmations: number;
  /** The most the relayer pays per gas (wei); fee bumps stop there. */
  maxFeePerGas: bigint;
  /** How long a broadcast may stay unmined before it is replaced with higher fees. */
  stuckAfterMs: number;
  /** Fee increase per replacement, in percent (at least 10, the node's minimum). */
  bumpPercent: number;
  /** How often pending transactions are looked at. */
  pollMs: number;
  /** Passes a nonce the chain has used may go without a receipt for any of our hashes before it counts as taken. */
  replacedAfterPasses: number;
}

export const DEFAULT_TX_MANAGER: TxManagerOptions = {
  confirmations: 3,
  maxFeePerGas: 50_000_000_000n, // 50 gwei
  stuckAfterMs: 30_000,
  bumpPercent: 15,
  pollMs: 1_000,
  replacedAfterPasses: 3,
};

/** Thrown when transaction-manager options cannot work. */
export class TxManagerOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TxManagerOptionsError";
  }
}

/**
 * `options` over the defaults (the local chain confirms at 1 block), checked.
 *
 * @throws {TxManagerOptionsError} naming the bad value.
 */
export function txManagerOptions(options: Partial<TxManagerOptions>, chainId: number): TxManagerOptions {
  const resolved = { ...DEFAULT_TX_MANAGER, ...(chainId === 31337 && { confirmations: 1, stuckAfterMs: 5_000 }), ...options };
  if (!Number.isInteger(resolved.confirmations) || resolved.confirmations < 1 || resolved.confirmations > 1_000) {
    throw new TxManagerOptionsError(`the confirmation depth (--confirmations) must be an integer from 1 to 1000, got ${resolved.confirmations}`);
  }
  if (typeof resolved.maxFeePerGas !== "bigint" || resolved.maxFeePerGas <= 0n) {
    throw new TxManagerOptionsError(`the max fee per gas (--max-fee-gwei) must be positive, got ${resolved.maxFeePerGas}`);
  }
  if (!Number.isInteger(resolved.bumpPercent) || resolved.bumpPercent < 10 || resolved.bumpPercent > 1_000) {
    throw new TxManagerOptionsError(`the fee bump must be an integer percent from 10 (the node's replacement minimum) to 1000, got ${resolved.bumpPercent}`);
  }
  for (const key of ["stuckAfterMs", "pollMs", "replacedAfterPasses"] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 1) throw new TxManagerOptionsError(`${key} must be a positive integer, got ${resolved[key]}`);
  }
  return resolved;
}

/** What to send: a contract call already simulated by the caller. */
export interface TxRequest {
  to: Address;
  data: Hex;
  value?: bigint;
}

/** One signed version of a transaction (the first, or a fee-bumped replacement at the same nonce). */
interface TxAttempt {
  hash: Hex;
  raw: Hex;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
  sentAt: number;
}

export type TxStatus = "pending" | "mined" | "confirmed" | "reverted" | "replaced";

/** A managed transaction as recorded. */
export interface TxRecord {
  id: number;
  purpose: string;
  nonce: number;
  status: TxStatus;
  /** Every hash broadcast for it, first to last. */
  hashes: Hex[];
  /** The hash that mined (confirmed, reverted, or mined and not yet deep enough). */
  minedHash: Hex | null;
  minedBlock: number | null;
}

/** A transaction recorded and broadcast (or to be re-broadcast): its row, nonce and first hash. */
export interface SentTx {
  id: number;
  nonce: number;
  hash: Hex;
}

/** The final outcome of a transaction: mined at depth (success or reverted), or its nonce taken by another. */
export type TxOutcome = { status: "confirmed" | "reverted"; hash: Hex; blockNumber: number } | { status: "replaced"; hash: null; blockNumber: null };

/** Thrown by {@link TxManager.wait} when a transaction is still in flight at the timeout: it is sent, not failed. */
export class TxPendingError extends Error {
  readonly txId: number;
  readonly hash: Hex;

  constructor(txId: number, hash: Hex, why: string) {
    super(`transaction ${hash}: ${why}; it stays sent and is followed until it is final`);
    this.name = "TxPendingError";
    this.txId = txId;
    this.hash = hash;
  }
}

/** The chain as the manager needs it. */
export interface TxChain {
  chainId: number;
  publicClient: PublicClient;
  account: Account;
}

type Row = Record<string, unknown>;

/** How far back {@link TxManager} looks for the transaction that used one of its nonces. */
const NONCE_SEARCH_BLOCKS = 1_024;

/** See {@link TxManagerOptions} for the rules. Persists in the relayer's store (`transactions`). */
export class TxManager {
  private readonly repo: Repository;
  private readonly chain: TxChain;
  private readonly options: TxManagerOptions;
  /** The next nonce to assign; undefined until {@link start} reconciled it with the chain. */
  private nextNonce: number | undefined;
  /** Serializes nonce assignment. */
  private assigning: Promise<unknown> = Promise.resolve();
  /** Passes each taken-looking transaction has gone without a receipt. */
  private readonly missing = new Map<number, number>();
  private readonly waiters = new Map<number, ((outcome: TxOutcome | TxPendingError) => void)[]>();
  private timer: NodeJS.Timeout | undefined;
  /** The pass running now, and the one queued after it, if any: passes never overlap. */
  private polling: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private stopped = true;

  /** `options` as {@link txManagerOptions} checks them. */
  constructor(repo: Repository, chain: TxChain, options: TxManagerOptions) {
    this.repo = repo;
    this.chain = chain;
    this.options = options;
  }

  get address(): Address {
    return this.chain.account.address;
  }

  /** Reconciles the next nonce with the chain, re-broadcasts what a previous run left pending, then polls. */
  async start(): Promise<void> {
    const pendingCount = await this.chain.publicClient.getTransactionCount({ address: this.address, blockTag: "pending" });
    // Rows recorded before transactions named their sender were this account's: one gas account
    // per database then.
    await this.repo.sql.run("UPDATE transactions SET sender = ? WHERE sender IS NULL", [this.sender]);
    const highest = (await this.repo.sql.get("SELECT MAX(nonce) AS nonce FROM transactions WHERE sender = ?", [this.sender]))!;
    this.nextNonce = Math.max(pendingCount, highest.nonce === null ? 0 : Number(highest.nonce) + 1);
    this.stopped = false;
    await this.poll();
    this.schedule();
  }

  /** Stops polling (pending transactions stay recorded and are followed again on the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.queued;
    await this.polling;
    // Whoever waits learns it is still in flight (recorded: the next start follows it).
    for (const [id, waiters] of [...this.waiters]) {
      const hash = (await this.get(id))!.hashes.at(-1)!;
      for (const waiter of waiters) waiter(new TxPendingError(id, hash, "the transaction manager stopped"));
    }
  }

  /**
   * Sends `request`: estimates its gas (a revert surfaces here, before anything is recorded), signs
   * it at the next nonce, records it (and runs `link` with the row and the repository bound to the
   * same database transaction, so that what it is for is on disk before it can mine), then
   * broadcasts it. Never throws after
   * recording: a failed broadcast is retried by the poller.
   */
  async send(purpose: string, request: TxRequest, link?: (sent: SentTx, repo: Repository) => Promise<void>): Promise<SentTx> {
    const [gas, fees, chainCount] = await Promise.all([
      this.chain.publicClient.estimateGas({ account: this.chain.account, to: request.to, data: request.data, value: request.value }),
      this.marketFees(),
      this.chain.publicClient.getTransactionCount({ address: this.address, blockTag: "pending" }),
    ]);
    const assigned = this.assigning.then(async () => {
      if (this.nextNonce === undefined) throw new Error("the transaction manager is not started");
      // Never below the chain's count: a transaction another sender made from this account since
      // the start (an operator, another process on the same key) took those nonces. Ours are all
      // below nextNonce, so this never reuses one, and a lagging or reorged count never lowers it.
      const nonce = Math.max(this.nextNonce, chainCount);
      const attempt = await this.sign(request, nonce, (gas * 6n) / 5n, fees);
      const sent = await this.repo.transaction(async (repo) => {
        const { rows } = await repo.sql.run(
          `INSERT INTO transactions (sender, purpose, nonce, request, attempts, status, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING id`,
          [
            this.sender,
            purpose,
            nonce,
            JSON.stringify({ ...request, value: (request.value ?? 0n).toString(), gas: ((gas * 6n) / 5n).toString() }),
            JSON.stringify([attempt]),
            Date.now(),
            Date.now(),
          ],
        );
        const result = { id: Number(rows[0].id), nonce, hash: attempt.hash };
        await link?.(result, repo);
        return result;
      });
      this.nextNonce = nonce + 1;
      return { sent, raw: attempt.raw };
    });
    this.assigning = assigned.catch(() => undefined);
    const { sent, raw } = await assigned;
    await this.broadcast(raw);
    return sent;
  }

  /**
   * The outcome of transaction `id` once final (see {@link TxOutcome}).
   *
   * @throws {TxPendingError} when it is still in flight after `timeoutMs`: it stays sent and followed.
   */
  async wait(id: number, timeoutMs = 60_000): Promise<TxOutcome> {
    const known = await this.outcomeOf(id);
    if (known !== undefined) return known;
    const hash = (await this.get(id))!.hashes.at(-1)!;
    if (this.stopped) throw new TxPendingError(id, hash, "the transaction manager is stopped");
    return new Promise<TxOutcome>((resolve, reject) => {
      const settle = (outcome: TxOutcome | TxPendingError) => {
        clearTimeout(timer);
        const others = (this.waiters.get(id) ?? []).filter((waiter) => waiter !== settle);
        if (others.length === 0) this.waiters.delete(id);
        else this.waiters.set(id, others);
        if (outcome instanceof TxPendingError) reject(outcome);
        else resolve(outcome);
      };
      const timer = setTimeout(() => settle(new TxPendingError(id, hash, `not confirmed after ${timeoutMs} ms`)), timeoutMs);
      timer.unref(); // a wait never keeps the process alive
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), settle]);
      void this.poll(); // often mined already (a fast chain): no need to wait for the next pass
    });
  }

  /** Transaction `id` as recorded. */
  async get(id: number): Promise<TxRecord | undefined> {
    const row = await this.repo.sql.get("SELECT * FROM transactions WHERE id = ? AND sender = ?", [id, this.sender]);
    return row && toRecord(row);
  }

  /** Its final outcome, or undefined while it is pending or mined but not yet deep enough. */
  async outcomeOf(id: number): Promise<TxOutcome | undefined> {
    const record = await this.get(id);
    if (record === undefined) throw new Error(`no managed transaction ${id}`);
    if (record.status === "confirmed" || record.status === "reverted") return { status: record.status, hash: record.minedHash!, blockNumber: record.minedBlock! };
    if (record.status === "replaced") return { status: "replaced", hash: null, blockNumber: null };
    return undefined;
  }

  /** Transactions not final yet (pending or mined), by nonce. */
  async inFlight(): Promise<TxRecord[]> {
    return (await this.repo.sql.all("SELECT * FROM transactions WHERE status IN ('pending', 'mined') AND sender = ? ORDER BY nonce", [this.sender])).map(toRecord);
  }

  /**
   * One pass over the transactions in flight (the poller runs it every `pollMs`, and every 250 ms
   * while someone waits for one). A pass asked for while one runs starts after it (requests made
   * meanwhile share it), so it sees the chain as of after the call.
   */
  poll(): Promise<void> {
    if (this.polling === undefined) {
      this.polling = this.pass()
        .catch((error: unknown) => log.error({ err: error }, "transaction pass failed"))
        .finally(() => (this.polling = undefined));
      return this.polling;
    }
    this.queued ??= this.polling.then(() => {
      this.queued = undefined;
      return this.poll();
    });
    return this.queued;
  }

  private async pass(): Promise<void> {
    const open = await this.repo.sql.all("SELECT * FROM transactions WHERE status IN ('pending', 'mined') AND sender = ? ORDER BY nonce", [this.sender]);
    if (open.length === 0) return;
    const [head, usedCount] = await Promise.all([
      this.chain.publicClient.getBlockNumber({ cacheTime: 0 }),
      this.chain.publicClient.getTransactionCount({ address: this.address, blockTag: "latest" }),
    ]);
    for (const row of open) {
      try {
        await this.follow(row, Number(head), usedCount);
      } catch (error) {
        log.error({ txId: row.id, nonce: row.nonce, err: error }, "transaction failed");
      }
    }
  }

  private async follow(row: Row, head: number, usedCount: number): Promise<void> {
    const id = Number(row.id);
    const nonce = Number(row.nonce);
    const attempts = JSON.parse(row.attempts as string) as TxAttempt[];
    let found: { hash: Hex; blockNumber: number; blockHash: Hex; success: boolean } | undefined;
    for (const { hash } of [...attempts].reverse()) {
      const receipt = await this.chain.publicClient.getTransactionReceipt({ hash }).catch(() => undefined);
      if (receipt !== undefined) {
        found = { hash, blockNumber: Number(receipt.blockNumber), blockHash: receipt.blockHash, success: receipt.status === "success" };
        break;
      }
    }
    if (found !== undefined) {
      this.missing.delete(id);
      if (row.status === "mined" && row.mined_block_hash !== found.blockHash) {
        log.warn({ txHash: found.hash, nonce, fromBlock: row.mined_block, toBlock: found.blockNumber }, "transaction moved to another block (reorg)");
      }
      if (head - found.blockNumber + 1 >= this.options.confirmations) {
        await this.finish(id, found.success ? "confirmed" : "reverted", found);
      } else {
        await this.write("UPDATE transactions SET status = 'mined', mined_hash = ?, mined_block = ?, mined_block_hash = ?, updated_at = ? WHERE id = ?", [
          found.hash,
          found.blockNumber,
          found.blockHash,
          Date.now(),
          id,
        ]);
      }
      return;
    }
    if (row.status === "mined") {
      // Its receipt is gone: the block that held it was reorged out. Pending again, and re-sent.
      log.warn({ txHash: row.mined_hash, nonce, block: row.mined_block }, "transaction left the chain (reorg); sending it again");
      await this.write("UPDATE transactions SET status = 'pending', mined_hash = NULL, mined_block = NULL, mined_block_hash = NULL, updated_at = ? WHERE id = ?", [Date.now(), id]);
    }
    if (nonce < usedCount) {
      // The nonce is used, by none of our hashes that this node has a receipt for. If the block that
      // used it holds one of ours, ours mined and its receipt lags (a load-balanced or slow node):
      // wait for it. Otherwise a lagging node may still show one; past a few passes the nonce was
      // taken by another transaction.
      const taker = await this.hashAtNonce(nonce, head).catch(() => undefined);
      if (taker !== undefined && attempts.some(({ hash }) => hash === taker)) {
        this.missing.delete(id);
        return;
      }
      const passes = (this.missing.get(id) ?? 0) + 1;
      this.missing.set(id, passes);
      if (passes >= this.options.replacedAfterPasses) {
        this.missing.delete(id);
        await this.finish(id, "replaced", undefined);
      }
      return;
    }
    const last = attempts.at(-1)!;
    if (Date.now() - last.sentAt >= this.options.stuckAfterMs) {
      const replacement = await this.replacement(row, last);
      if (replacement !== undefined) {
        attempts.push(replacement);
        await this.write("UPDATE transactions SET attempts = ?, updated_at = ? WHERE id = ?", [JSON.stringify(attempts), Date.now(), id]);
        await this.broadcast(replacement.raw);
        return;
      }
    }
    await this.broadcast(last.raw); // a dropped transaction comes back; a known one is a no-op
  }

  /**
   * The hash of the transaction that used `nonce` of the account: found in the block where the
   * account's count passed it (a binary search over the last {@link NONCE_SEARCH_BLOCKS} blocks);
   * undefined when it was used before them.
   */
  private async hashAtNonce(nonce: number, head: number): Promise<Hex | undefined> {
    const countAt = async (block: number) => this.chain.publicClient.getTransactionCount({ address: this.address, blockNumber: BigInt(block) });
    let low = Math.max(0, head - NONCE_SEARCH_BLOCKS);
    let high = head;
    if ((await countAt(low)) > nonce || (await countAt(high)) <= nonce) return undefined;
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if ((await countAt(middle)) > nonce) high = middle;
      else low = middle;
    }
    const block = await this.chain.publicClient.getBlock({ blockNumber: BigInt(high), includeTransactions: true });
    const address = this.address.toLowerCase();
    return block.transactions.find((tx) => tx.from.toLowerCase() === address && tx.nonce === nonce)?.hash;
  }

  /**
   * `last` signed again with fees raised by `bumpPercent` (or to the market's, if higher), capped at
   * `maxFeePerGas`; undefined when the cap leaves no room for a valid replacement.
   */
  private async replacement(row: Row, last: TxAttempt): Promise<TxAttempt | undefined> {
    const bump = (value: bigint) => (value * BigInt(100 + this.options.bumpPercent) + 99n) / 100n;
    const market = await this.marketFees();
    const maxFeePerGas = [bump(BigInt(last.maxFeePerGas)), market.maxFeePerGas].reduce((a, b) => (a > b ? a : b));
    const priority = [bump(BigInt(last.maxPriorityFeePerGas)), market.maxPriorityFeePerGas].reduce((a, b) => (a > b ? a : b));
    const capped = maxFeePerGas > this.options.maxFeePerGas ? this.options.maxFeePerGas : maxFeePerGas;
    // A replacement must raise both fees by the node's minimum (10 %); at the cap there is no room.
    if (capped * 100n < BigInt(last.maxFeePerGas) * 110n) {
      await this.write("UPDATE transactions SET error = ?, updated_at = ? WHERE id = ?", [
        `stuck at the max fee per gas (${this.options.maxFeePerGas} wei); re-broadcasting`,
        Date.now(),
        Number(row.id),
      ]);
      return undefined;
    }
    const request = JSON.parse(row.request as string) as { to: Address; data: Hex; value: string; gas: string };
    const fees = { maxFeePerGas: capped, maxPriorityFeePerGas: priority > capped ? capped : priority };
    log.warn({ txHash: last.hash, nonce: row.nonce, unminedMs: this.options.stuckAfterMs, maxFeePerGas: fees.maxFeePerGas.toString() }, "transaction unmined: replacing it");
    return this.sign({ to: request.to, data: request.data, value: BigInt(request.value) }, Number(row.nonce), BigInt(request.gas), fees);
  }

  /** EIP-1559 fees for now: twice the base fee plus the suggested tip, within the cap. */
  private async marketFees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const [block, tip] = await Promise.all([
      this.chain.publicClient.getBlock({ blockTag: "latest" }),
      this.chain.publicClient.estimateMaxPriorityFeePerGas().catch(() => 1_000_000n),
    ]);
    let maxFeePerGas = (block.baseFeePerGas ?? 0n) * 2n + tip;
    if (maxFeePerGas > this.options.maxFeePerGas) maxFeePerGas = this.options.maxFeePerGas;
    return { maxFeePerGas, maxPriorityFeePerGas: tip > maxFeePerGas ? maxFeePerGas : tip };
  }

  private async sign(
    request: TxRequest,
    nonce: number,
    gas: bigint,
    fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint },
  ): Promise<TxAttempt> {
    const { signTransaction } = this.chain.account;
    if (signTransaction === undefined) throw new Error("the relayer's account cannot sign transactions locally");
    const raw = await signTransaction({
      type: "eip1559",
      chainId: this.chain.chainId,
      nonce,
      to: request.to,
      data: request.data,
      value: request.value ?? 0n,
      gas,
      ...fees,
    });
    return {
      hash: keccak256(raw),
      raw,
      maxFeePerGas: fees.maxFeePerGas.toString(),
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
      sentAt: Date.now(),
    };
  }

  /** Broadcasts signed bytes; any error is logged only (the poller sends again, or finds it mined). */
  private async broadcast(raw: Hex): Promise<void> {
    try {
      await this.chain.publicClient.request({ method: "eth_sendRawTransaction", params: [raw] });
    } catch (error) {
      // Expected on a re-broadcast: the node has it, or it (or a replacement) already mined.
      const message = `${(error as Error).message.split("\n")[0]} ${(error as { details?: string }).details ?? ""}`.trim();
      if (!/already known|nonce too low|known transaction|replacement|underpriced/i.test(message)) log.warn({ reason: message }, "broadcast failed (it is retried)");
    }
  }

  private async finish(id: number, status: "confirmed" | "reverted" | "replaced", mined: { hash: Hex; blockNumber: number; blockHash: Hex } | undefined): Promise<void> {
    await this.write("UPDATE transactions SET status = ?, mined_hash = ?, mined_block = ?, mined_block_hash = ?, updated_at = ? WHERE id = ?", [
      status,
      mined?.hash ?? null,
      mined?.blockNumber ?? null,
      mined?.blockHash ?? null,
      Date.now(),
      id,
    ]);
    const outcome = (await this.outcomeOf(id))!;
    for (const waiter of this.waiters.get(id) ?? []) waiter(outcome);
  }

  private schedule(): void {
    if (this.stopped) return;
    const interval = this.waiters.size > 0 ? Math.min(250, this.options.pollMs) : this.options.pollMs;
    this.timer = setTimeout(() => void this.poll().finally(() => this.schedule()), interval);
    this.timer.unref();
  }

  /** One write, committed before this returns. */
  private async write(text: string, values: (string | number | null)[]): Promise<void> {
    await this.repo.sql.run(text, values);
  }

  /** This account's address as its transactions record it. */
  private get sender(): string {
    return this.address.toLowerCase();
  }
}

function toRecord(row: Row): TxRecord {
  return {
    id: Number(row.id),
    purpose: row.purpose as string,
    nonce: Number(row.nonce),
    status: row.status as TxStatus,
    hashes: (JSON.parse(row.attempts as string) as TxAttempt[]).map((attempt) => attempt.hash),
    minedHash: (row.mined_hash as Hex | null) ?? null,
    minedBlock: row.mined_block === null ? null : Number(row.mined_block),
  };
}
