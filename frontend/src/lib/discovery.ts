import type { PublicClient } from "viem";
import { checkRelayer, relayersOnChain, RelayerDiscoveryError, type FoundRelayer, type RelayerCandidate } from "@agentmesh/sdk/browser";
import type { RelayerInfo } from "@agentmesh/sdk/protocol";
import type { ChainDeployment } from "./config.ts";

/**
 * Which relayer the dApp talks to. The local stack file names its relayer (`relayerUrl`, an
 * explicit override); on public networks the relayers are found on-chain with the SDK's discovery
 * (`relayersOnChain`: active providers → receipt signers → RelayerDirectory URLs) and each is asked
 * whether it serves this deployment (`checkRelayer`). The marketplace views use the one the user
 * picked among those that checked (the first by default); a session's page uses its provider's.
 */

/** The relayers that passed their check, in the order found (most providers first). */
export type Relayers = readonly FoundRelayer[];

/**
 * The candidates that `check` accepts, checked all at once, in their order.
 *
 * @throws {RelayerDiscoveryError} none does: naming why each was refused, or that there was none.
 */
export async function acceptedRelayers(candidates: readonly RelayerCandidate[], check: (candidate: RelayerCandidate) => Promise<RelayerInfo>): Promise<Relayers> {
  const results = await Promise.allSettled(candidates.map(check));
  const found = candidates.flatMap((candidate, index) => {
    const result = results[index];
    return result.status === "fulfilled" ? [{ ...candidate, about: result.value }] : [];
  });
  if (found.length > 0) return found;
  if (candidates.length === 0) throw new RelayerDiscoveryError("no relayer is announced in the RelayerDirectory for any active provider's receipt signer");
  const refusals = results.map((result) => (result.status === "rejected" ? (result.reason as Error).message : ""));
  throw new RelayerDiscoveryError(`no relayer announced for any active provider serves this deployment: ${refusals.join("; ")}`);
}

/**
 * Every relayer announced on-chain for the deployment's active providers that confirms it serves
 * the deployment, most providers first.
 *
 * @throws {RelayerDiscoveryError} the deployment has no RelayerDirectory, or no relayer checks.
 */
export async function discoverRelayers(client: PublicClient, deployment: ChainDeployment): Promise<Relayers> {
  const candidates = await relayersOnChain(client, deployment);
  return acceptedRelayers(candidates, (candidate) => checkRelayer(candidate.url, deployment, candidate.signers));
}

/** The relayer serving the marketplace views: `preferred` (the user's pick) when it is among `relayers`, else the first. */
export function chooseRelayer(relayers: Relayers, preferred: string | undefined): FoundRelayer | undefined {
  return relayers.find((relayer) => relayer.url === preferred) ?? relayers[0];
}

/** The relayer among `relayers` that serves provider `providerId`, if any. */
export function relayerOfProvider(relayers: Relayers, providerId: number): FoundRelayer | undefined {
  return relayers.find((relayer) => relayer.providerIds.includes(providerId));
}

/**
 * A discovery error (a lowercase clause) as a sentence to show. Where a relayer did not answer and
 * the page's `origin` is given, it adds that a relayer refusing this origin (CORS) looks the same:
 * a browser cannot tell the two apart.
 */
export function discoverySentence(error: unknown, origin?: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const capitalized = message.charAt(0).toUpperCase() + message.slice(1);
  const sentence = /[.!?]$/.test(capitalized) ? capitalized : `${capitalized}.`;
  if (origin === undefined || !message.includes("does not answer GET /v1/relayer")) return sentence;
  return `${sentence} A relayer that does not allow calls from ${origin} (its --cors-origin) cannot answer this page either.`;
}

/** How a relayer is named in a picker: its host, and how many providers it serves. */
export function relayerLabel(relayer: FoundRelayer): string {
  const count = relayer.providerIds.length;
  return `${new URL(relayer.url).host} (${count} provider${count === 1 ? "" : "s"})`;
}
