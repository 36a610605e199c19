import { encodeFunctionData, type Address, type Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { announcementTypes, directoryDomain, relayerDirectoryAbi } from "@agentmesh/sdk";
import type { ChainGateway } from "./chain.ts";
import { log } from "./log.ts";
import { PeriodicPass } from "./periodic.ts";
import type { Readiness } from "./readiness.ts";
import { TxPendingError } from "./tx-manager.ts";

/** How long a signed announcement stays valid: it is sent at once, so this only bounds a stuck one. */
const ANNOUNCEMENT_VALIDITY_S = 3_600n;

/**
 * How often the entries are checked: as often as the operating checks, so that a gas account the
 * operator just funded is followed by the announcement within seconds. A pass is one read per signer.
 */
const CHECK_INTERVAL_MS = 15_000;

/** What the announcer needs. */
export interface DirectoryAnnouncerDeps {
  chain: Pick<ChainGateway, "chainId" | "publicClient" | "transactions">;
  /** The deployment's RelayerDirectory. */
  directory: Address;
  /** The receipt-signer keys whose entries must point here. */
  signerKeys: readonly Hex[];
  /** This relayer's public URL, as announced. */
  url: string;
  readiness: Pick<Readiness, "directoryChecked" | "problems">;
}

/**
 * Keeps the RelayerDirectory's entry of each of this relayer's receipt signers pointing at its
 * public URL: agents, the dApp and the CLI find the relayer serving a provider from the provider's
 * registered signer through it. A pass reads each entry (one call per signer) and, where it differs,
 * submits the signer's EIP-712 announcement from the gas account (the signers hold no ETH). It sends
 * nothing while the gas account cannot pay (the operating checks say so) or while its previous
 * announcement is still in flight, so a dry gas account never queues announcement after
 * announcement. An entry not set yet is a `/readyz` problem (`directory`) until a later pass sets it.
 */
export class DirectoryAnnouncer {
  private readonly pass: PeriodicPass<void>;
  private readonly deps: DirectoryAnnouncerDeps;
  /** The receipt signers, derived from their keys once. */
  private readonly signers: PrivateKeyAccount[];
  /** The announcement transaction sent for each signer, until its entry points here. */
  private readonly sent = new Map<Address, number>();

  constructor(deps: DirectoryAnnouncerDeps, intervalMs = CHECK_INTERVAL_MS) {
    this.deps = deps;
    this.signers = deps.signerKeys.map((key) => privateKeyToAccount(key));
    this.pass = new PeriodicPass("directory announcement", intervalMs, () => this.announce());
  }

  /** Announces now (a failure is reported, not thrown), then checks every interval. */
  async start(): Promise<void> {
    this.pass.start();
    await this.pass.run();
  }

  async stop(): Promise<void> {
    await this.pass.stop();
  }

  /** One pass over the signers; returns once every entry is checked (and set where it differed). */
  async announce(): Promise<void> {
    const problems: string[] = [];
    for (const signer of this.signers) {
      try {
        const problem = await this.announceFor(signer);
        if (problem !== undefined) problems.push(`the directory does not point receipt signer ${signer.address} at ${this.deps.url}: ${problem}`);
      } catch (error) {
        log.error({ signer: signer.address, url: this.deps.url, err: error }, "announcing this relayer in the directory failed (retried later)");
        problems.push(`the directory does not point receipt signer ${signer.address} at ${this.deps.url}: ${(error as Error).message.split("\n")[0]}`);
      }
    }
    this.deps.readiness.directoryChecked(problems.length === 0 ? undefined : problems.join("; "));
  }

  /** Sets `signer`'s entry if it differs; what still keeps it from pointing here, if anything. */
  private async announceFor(signer: PrivateKeyAccount): Promise<string | undefined> {
    const { chain, directory, url, readiness } = this.deps;
    const read = <T>(functionName: "relayerUrl" | "nonces") =>
      chain.publicClient.readContract({ address: directory, abi: relayerDirectoryAbi, functionName, args: [signer.address] }) as Promise<T>;
    if ((await read<string>("relayerUrl")) === url) {
      this.sent.delete(signer.address);
      return undefined;
    }
    const previous = this.sent.get(signer.address);
    if (previous !== undefined && (await chain.transactions.outcomeOf(previous)) === undefined) {
      return `its announcement (transaction ${(await chain.transactions.get(previous))?.hashes.at(-1)}) is not mined yet`;
    }
    if (readiness.problems().some((problem) => problem.check === "gas")) return "waiting for the gas account to be able to pay";
    const [nonce, { timestamp }] = await Promise.all([read<bigint>("nonces"), chain.publicClient.getBlock({ blockTag: "latest" })]);
    const deadline = timestamp + ANNOUNCEMENT_VALIDITY_S;
    const signature = await signer.signTypedData({
      domain: directoryDomain(chain.chainId, directory),
      types: announcementTypes,
      primaryType: "Announcement",
      message: { signer: signer.address, url, nonce, deadline },
    });
    const data = encodeFunctionData({ abi: relayerDirectoryAbi, functionName: "announceWithSignature", args: [signer.address, url, deadline, signature] });
    const sent = await chain.transactions.send("announceWithSignature", { to: directory, data });
    this.sent.set(signer.address, sent.id);
    try {
      const outcome = await chain.transactions.wait(sent.id);
      if (outcome.status !== "confirmed") return `its announcement ${outcome.status === "reverted" ? `(transaction ${outcome.hash}) reverted` : "was replaced"}`;
    } catch (error) {
      if (error instanceof TxPendingError) return `its announcement (transaction ${sent.hash}) is not mined yet`;
      throw error;
    }
    log.info({ signer: signer.address, url, tx: sent.hash }, "announced this relayer in the directory");
    return undefined;
  }
}
