import { getAddress, parseEventLogs, zeroAddress } from "viem";
import { z } from "zod";
import { agentMarketplaceAbi, splitsLedgerAbi } from "../abi/contracts.ts";
import { connect, usdcText, type Context } from "./context.ts";
import { addressSchema, isHttpUrl, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh agent publish --name <name> --endpoint <url> --price <usdc per call> [--payout 0x…] [--metadata-uri <uri>]
  agentmesh agent list [--owner 0x…] [--all]
(publish sends every payment to one account or ledger split, the signer by default; richer flows of
funds, and paying an agent over x402, are in the dApp)`;

/** `IAgentMarketplace.RecipientKind`. */
const RecipientKind = { Account: 0, Split: 1 } as const;

/** `IAgentMarketplace.AgentStatus` names, by value. */
const STATUS_NAMES = ["not listed", "active", "paused", "retired"] as const;

/** `agentmesh agent publish|list` on the AgentMarketplace. */
export async function agent(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action === "list") return list(rest);
  if (action === "publish") return publish(rest);
  throw new UsageError(action === undefined ? USAGE : `unknown agent action "${action}"\n${USAGE}`);
}

function marketplaceOf(ctx: Context) {
  const marketplace = ctx.deployment.contracts.AgentMarketplace;
  if (marketplace === undefined) throw new UsageError(`the deployment for chain ${ctx.chainId} has no AgentMarketplace`);
  return marketplace;
}

/** Lists an agent whose every payment goes to one account or ledger split (`--payout`, the signer by default). */
async function publish(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, {
    name: { type: "string" },
    endpoint: { type: "string" },
    price: { type: "string" },
    payout: { type: "string" },
    "metadata-uri": { type: "string", default: "" },
  });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const name = parseField("--name", z.string().min(1, "is required"), values.name ?? "");
  const endpoint = parseField("--endpoint", z.string().refine(isHttpUrl, "must be an http(s) URL"), values.endpoint ?? "");
  const price = parseUsdcAmount("--price", values.price);
  const payoutOption = values.payout === undefined ? undefined : getAddress(parseField("--payout", addressSchema, values.payout));
  const ctx = await connect(common);
  const marketplace = marketplaceOf(ctx);
  const payout = payoutOption ?? (await ctx.account()).address;
  const isSplit = await ctx.client.readContract({ address: ctx.deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "isSplit", args: [payout] });
  const flow = {
    fixedAmounts: [],
    shares: [],
    payerReferrerShare: 0,
    payeeReferrerShare: 0,
    remainder: { kind: isSplit ? RecipientKind.Split : RecipientKind.Account, account: payout, budgetId: 0n },
  };
  const { logs } = await ctx.send(`publish agent ${name} at ${usdcText(price)} a call`, {
    address: marketplace,
    abi: agentMarketplaceAbi,
    functionName: "list",
    args: [{ name, metadataURI: values["metadata-uri"], endpoint }, price, flow, zeroAddress],
  });
  const listed = parseEventLogs({ abi: agentMarketplaceAbi, eventName: "AgentListed", logs: logs as never });
  const agentId = listed[0]?.args.agentId;
  if (agentId === undefined) throw new Error("the marketplace emitted no AgentListed event");
  const found = await ctx.client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "getAgent", args: [agentId] });
  ctx.out.set("agentId", agentId, `agent #${agentId} ${name}: ${usdcText(price)} a call, paid to ${payout}${isSplit ? " (a ledger split)" : ""}`);
  ctx.out.set("paymentAddress", found.paymentAddress, `  its payment address ${found.paymentAddress}; a relayer serves it paid over x402 at <relayer URL>/agents/${agentId}`);
  ctx.out.finish();
}

/** The AgentMarketplace's listings (active ones unless `--all`). */
async function list(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { owner: { type: "string" }, all: { type: "boolean", default: false } });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const owner = values.owner === undefined ? undefined : getAddress(parseField("--owner", addressSchema, values.owner));
  const ctx = await connect(common);
  const marketplace = marketplaceOf(ctx);
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
