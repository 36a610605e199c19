import type { FoundRelayer } from "@agentmesh/sdk/browser";

/**
 * Which relayer the dApp talks to. The local stack file names its relayer (`relayerUrl`, an
 * explicit override); on public networks the relayers are found on-chain with the SDK's discovery
 * (`findRelayers`: active providers → receipt signers → RelayerDirectory URLs, each relayer asked
 * whether it serves this deployment). The marketplace views use the one the user
 * picked among those that checked (the first by default); a session's page uses its provider's.
 */

/** The relayers that passed their check, in the order found (most providers first). */
export type Relayers = readonly FoundRelayer[];

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
