import { getAddress, type Address, type PublicClient } from "viem";
import { providerRegistryAbi, relayerDirectoryAbi } from "./abi/contracts.ts";
import type { Deployment } from "./deployment.ts";
import { relayerInfoSchema, type RelayerInfo } from "./protocol.ts";
import { relayerJson } from "./relayer-client.ts";

/**
 * Finding the relayer that serves a provider from the chain alone: a provider's registration names
 * its receipt signer, and the RelayerDirectory holds the URL that signer's relayer announced. Only
 * active providers count (each staked at least the registry's minimum), so an announcement nobody
 * registered behind is never offered. What the chain says is then checked with the relayer itself
 * (`GET /v1/relayer`): the same chain and escrow, and the signer among its published ones. Receipts
 * are verified against the registered signer whatever relayer serves them, so a wrong URL costs
 * availability, never money.
 */

/** A relayer URL announced on-chain, with the active providers whose signers point at it. */
export interface RelayerCandidate {
  url: string;
  /** The receipt signers that announced it. */
  signers: Address[];
  /** Active providers whose registered receipt signer is one of `signers`. */
  providerIds: number[];
}

/** A relayer found on-chain that confirmed it serves the deployment. */
export interface FoundRelayer extends RelayerCandidate {
  about: RelayerInfo;
}

/** Thrown when no relayer serving the deployment (or the asked provider) can be found. */
export class RelayerDiscoveryError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RelayerDiscoveryError";
  }
}

/** The contracts discovery reads. */
type DiscoveryDeployment = Pick<Deployment, "chainId" | "contracts">;

/** `url` as an http(s) base URL without a trailing slash, or undefined when it is not one. */
function baseUrl(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return undefined;
    return parsed.href.replace(/\/+$/, "");
  } catch {
    return undefined;
  }
}

/**
 * Every relayer URL announced for an active provider's receipt signer, the one serving the most
 * providers first; or, with `providerId`, the URL announced for that provider's signer, active or
 * not (its past sessions are still read there). Not yet checked with the relayers.
 *
 * @throws {RelayerDiscoveryError} the deployment has no RelayerDirectory, or `providerId` is not registered.
 */
export async function relayersOnChain(client: PublicClient, deployment: DiscoveryDeployment, providerId?: number): Promise<RelayerCandidate[]> {
  const { ProviderRegistry: registry, RelayerDirectory: directory } = deployment.contracts;
  if (directory === undefined) throw new RelayerDiscoveryError(`the deployment on chain ${deployment.chainId} has no RelayerDirectory: give the relayer's URL`);
  const count = Number(await client.readContract({ address: registry, abi: providerRegistryAbi, functionName: "providerCount" }));
  const ids = providerId === undefined ? Array.from({ length: count }, (_, index) => index + 1) : providerId >= 1 && providerId <= count ? [providerId] : [];
  if (providerId !== undefined && ids.length === 0) throw new RelayerDiscoveryError(`provider ${providerId} is not registered`);
  const providers = await Promise.all(
    ids.map(async (id) => ({ id, ...(await client.readContract({ address: registry, abi: providerRegistryAbi, functionName: "getProvider", args: [BigInt(id)] })) })),
  );
  const active = providerId === undefined ? providers.filter((provider) => provider.active) : providers;
  const signers = [...new Set(active.map((provider) => getAddress(provider.receiptSigner)))];
  const urls = await Promise.all(signers.map((signer) => client.readContract({ address: directory, abi: relayerDirectoryAbi, functionName: "relayerUrl", args: [signer] })));
  const byUrl = new Map<string, RelayerCandidate>();
  signers.forEach((signer, index) => {
    const url = baseUrl(urls[index]);
    if (url === undefined) return;
    const candidate = byUrl.get(url) ?? { url, signers: [], providerIds: [] };
    candidate.signers.push(signer);
    candidate.providerIds.push(...active.filter((provider) => getAddress(provider.receiptSigner) === signer).map((provider) => provider.id));
    byUrl.set(url, candidate);
  });
  return [...byUrl.values()].sort((a, b) => b.providerIds.length - a.providerIds.length);
}

/**
 * The relayer at `url`'s `GET /v1/relayer`, once it names the deployment's chain and escrow (and,
 * when given, publishes `signers` among its receipt signers).
 *
 * @throws {RelayerDiscoveryError} it does not answer as a relayer, or serves something else.
 */
export async function checkRelayer(url: string, deployment: DiscoveryDeployment, signers: readonly Address[] = []): Promise<RelayerInfo> {
  let about: RelayerInfo;
  try {
    about = await relayerJson(`${url}/v1/relayer`, relayerInfoSchema, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new RelayerDiscoveryError(`${url} does not answer GET /v1/relayer as a relayer: ${(error as Error).message.split("\n")[0]}`, { cause: error });
  }
  const escrow = deployment.contracts.ComputeEscrow;
  if (about.chainId !== deployment.chainId || getAddress(about.contracts.ComputeEscrow) !== getAddress(escrow)) {
    throw new RelayerDiscoveryError(`${url} serves the escrow ${about.contracts.ComputeEscrow} on chain ${about.chainId}, not this deployment's ${escrow} on chain ${deployment.chainId}`);
  }
  const published = new Set(about.receiptSigners.map((signer) => getAddress(signer)));
  const missing = signers.filter((signer) => !published.has(getAddress(signer)));
  if (missing.length > 0) throw new RelayerDiscoveryError(`${url} does not sign for ${missing.join(", ")}, which announced it`);
  return about;
}

/**
 * The `candidates` whose relayers pass {@link checkRelayer}, all checked at once, in their order.
 * `whose` names what they were found for, in the errors.
 *
 * @throws {RelayerDiscoveryError} none passes: naming why each was refused, or that there was none.
 */
export async function checkedRelayers(candidates: readonly RelayerCandidate[], deployment: DiscoveryDeployment, whose = "any active provider"): Promise<FoundRelayer[]> {
  const results = await Promise.allSettled(candidates.map((candidate) => checkRelayer(candidate.url, deployment, candidate.signers)));
  const found = candidates.flatMap((candidate, index) => {
    const result = results[index];
    return result.status === "fulfilled" ? [{ ...candidate, about: result.value }] : [];
  });
  if (found.length > 0) return found;
  if (candidates.length === 0) throw new RelayerDiscoveryError(`no relayer is announced in the RelayerDirectory for ${whose}'s receipt signer`);
  const refusals = results.map((result) => (result.status === "rejected" ? (result.reason as Error).message : ""));
  throw new RelayerDiscoveryError(`no relayer announced for ${whose} serves this deployment: ${refusals.join("; ")}`);
}

/**
 * The relayers serving the deployment (or provider `providerId`), found on-chain and checked:
 * the candidates of {@link relayersOnChain} that {@link checkRelayer} accepts, most providers first.
 *
 * @throws {RelayerDiscoveryError} naming why each candidate was refused, or that there was none.
 */
export async function findRelayers(client: PublicClient, deployment: DiscoveryDeployment, providerId?: number): Promise<FoundRelayer[]> {
  const candidates = await relayersOnChain(client, deployment, providerId);
  return checkedRelayers(candidates, deployment, providerId === undefined ? "any active provider" : `provider ${providerId}`);
}

/** The first of {@link findRelayers}: the relayer serving the most providers (or provider `providerId`). */
export async function findRelayer(client: PublicClient, deployment: DiscoveryDeployment, providerId?: number): Promise<FoundRelayer> {
  return (await findRelayers(client, deployment, providerId))[0];
}
