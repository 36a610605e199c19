import { getAddress } from "viem";
import { agentMarketplaceAbi } from "../abi/contracts.ts";
import { connect, usdcText } from "./context.ts";
import { addressSchema, parseCommand, parseField, UsageError } from "./options.ts";

const USAGE = "usage: agentmesh agent list [--owner 0x…] [--all]   (publish and call are not built yet: use the dApp)";

/** `IAgentMarketplace.AgentStatus` names, by value. */
const STATUS_NAMES = ["not listed", "active", "paused", "retired"] as const;

/** `agentmesh agent list`: the AgentMarketplace's listings (active ones unless `--all`). */
export async function agent(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action !== "list") throw new UsageError(action === undefined ? USAGE : `unknown agent action "${action}"\n${USAGE}`);
  const { common, values, positionals } = parseCommand(rest, { owner: { type: "string" }, all: { type: "boolean", default: false } });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const owner = values.owner === undefined ? undefined : getAddress(parseField("--owner", addressSchema, values.owner));
  const ctx = await connect(common);
  const marketplace = ctx.deployment.contracts.AgentMarketplace;
  if (marketplace === undefined) throw new UsageError(`the deployment for chain ${ctx.chainId} has no AgentMarketplace`);
  const count = await ctx.client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "agentCount" });
  const listings = await Promise.all(
    Array.from({ length: Number(count) }, (_, index) =>
      ctx.client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "getAgent", args: [BigInt(index + 1)] }).then((found) => ({ id: index + 1, ...found })),
    ),
  );
  const shown = listings.filter((listing) => (values.all || listing.status === 1) && (owner === undefined || listing.owner === owner));
  ctx.out.set(
    "agents",
    shown.map((listing) => ({
      id: listing.id,
      name: listing.metadata.name,
      status: STATUS_NAMES[listing.status] ?? String(listing.status),
      pricePerCall: listing.pricePerCall.toString(),
      owner: listing.owner,
      paymentAddress: listing.paymentAddress,
      endpoint: listing.metadata.endpoint,
      metadataURI: listing.metadata.metadataURI,
    })),
  );
  if (shown.length === 0) ctx.out.say("no agents listed");
  for (const listing of shown) {
    ctx.out.say(`agent #${listing.id} ${listing.metadata.name} (${STATUS_NAMES[listing.status] ?? listing.status}): ${usdcText(listing.pricePerCall)} a call`);
    ctx.out.say(`  owner ${listing.owner}, pays into ${listing.paymentAddress}, endpoint ${listing.metadata.endpoint}`);
  }
  ctx.out.finish();
}
