import { createWalletClient, custom, getAddress, parseEventLogs, zeroAddress, type Address, type Hex } from "viem";
import { z } from "zod";
import { agentMarketplaceAbi, splitsLedgerAbi } from "../abi/contracts.ts";
import { agentViewSchema } from "../protocol.ts";
import { connect, explorerTxUrl, usdcText, type Context } from "./context.ts";
import { addressSchema, idSchema, isHttpUrl, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";
import { chosenRelayer, RELAYER_OPTION } from "./relayer.ts";

const USAGE = `usage:
  agentmesh agent publish --name <name> --endpoint <url> --price <usdc per call> [--metadata-uri <uri>]
                          [--fixed 0x…:<usdc>]... [--share 0x…:<percent>]... [--payout 0x…]
  agentmesh agent list [--owner 0x…] [--all]
  agentmesh agent call <id> --input <text> [--relayer <url>]   pays the listed price over x402 (relayer found on-chain by default)
(each payment pays the --fixed amounts first, then the --share percentages of what is left, then the
rest to --payout, the signer by default; a recipient may be an account or a ledger split; referral
rewards and budget recipients are set in the dApp)`;

/** `IAgentMarketplace.RecipientKind`. */
const RecipientKind = { Account: 0, Split: 1 } as const;

/** `IAgentMarketplace.AgentStatus` names, by value. */
const STATUS_NAMES = ["not listed", "active", "paused", "retired"] as const;

/** `agentmesh agent publish|list` on the AgentMarketplace. */
export async function agent(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action === "list") return list(rest);
  if (action === "publish") return publish(rest);
  if (action === "call") return call(rest);
  throw new UsageError(action === undefined ? USAGE : `unknown agent action "${action}"\n${USAGE}`);
}

function marketplaceOf(ctx: Context) {
  const marketplace = ctx.deployment.contracts.AgentMarketplace;
  if (marketplace === undefined) throw new UsageError(`the deployment for chain ${ctx.chainId} has no AgentMarketplace`);
  return marketplace;
}

/** Shares are parts per million on-chain; `--share` takes percent with up to 4 decimals. */
const PERCENT_TO_PPM = 10_000;

/** `--share 0x…:<percent>`: the address and its share in parts per million. */
function parseShare(text: string): { account: Address; share: number } {
  const [account, percent, ...rest] = text.split(":");
  if (rest.length > 0 || percent === undefined || !/^\d{1,3}(\.\d{1,4})?$/.test(percent)) {
    throw new UsageError(`--share must be <address>:<percent> with at most 4 decimals, such as 0x…:12.5, got "${text}"`);
  }
  const share = Math.round(Number(percent) * PERCENT_TO_PPM);
  if (share === 0 || share > 100 * PERCENT_TO_PPM) throw new UsageError(`--share must be a percentage above 0 and at most 100, got "${text}"`);
  return { account: getAddress(parseField("--share", addressSchema, account)), share };
}

/** `--fixed 0x…:<usdc>`: the address and its atomic USDC per call. */
function parseFixed(text: string): { account: Address; amount: bigint } {
  const [account, amount, ...rest] = text.split(":");
  if (rest.length > 0 || amount === undefined) throw new UsageError(`--fixed must be <address>:<usdc per call>, such as 0x…:0.01, got "${text}"`);
  return { account: getAddress(parseField("--fixed", addressSchema, account)), amount: parseUsdcAmount("--fixed", amount) };
}

/**
 * Lists an agent whose payments go to `--fixed` amounts, then `--share`s of what is left, then the
 * rest to `--payout` (the signer by default); each recipient an account or a ledger split. The
 * marketplace checks the flow (shares above 100%, fixed amounts above the price, too many parts):
 * a flow it refuses is never sent, and its reason printed.
 */
async function publish(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, {
    name: { type: "string" },
    endpoint: { type: "string" },
    price: { type: "string" },
    payout: { type: "string" },
    fixed: { type: "string", multiple: true, default: [] },
    share: { type: "string", multiple: true, default: [] },
    "metadata-uri": { type: "string", default: "" },
  });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const name = parseField("--name", z.string().min(1, "is required"), values.name ?? "");
  const endpoint = parseField("--endpoint", z.string().refine(isHttpUrl, "must be an http(s) URL"), values.endpoint ?? "");
  const price = parseUsdcAmount("--price", values.price);
  const payoutOption = values.payout === undefined ? undefined : getAddress(parseField("--payout", addressSchema, values.payout));
  const fixed = (values.fixed as string[]).map(parseFixed);
  const shares = (values.share as string[]).map(parseShare);
  const ctx = await connect(common);
  const marketplace = marketplaceOf(ctx);
  const payout = payoutOption ?? (await ctx.account()).address;
  /** An account or, when the ledger knows it as one, a split. */
  const recipient = async (account: Address) => {
    const isSplit = await ctx.client.readContract({ address: ctx.deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "isSplit", args: [account] });
    return { kind: isSplit ? RecipientKind.Split : RecipientKind.Account, account, budgetId: 0n };
  };
  const flow = {
    fixedAmounts: await Promise.all(fixed.map(async ({ account, amount }) => ({ recipient: await recipient(account), amount }))),
    shares: await Promise.all(shares.map(async ({ account, share }) => ({ recipient: await recipient(account), share }))),
    payerReferrerShare: 0,
    payeeReferrerShare: 0,
    remainder: await recipient(payout),
  };
  const isSplit = flow.remainder.kind === RecipientKind.Split;
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
  const parts = [
    ...fixed.map(({ account, amount }) => `${usdcText(amount)} to ${account}`),
    ...shares.map(({ account, share }) => `${share / PERCENT_TO_PPM}% of the rest to ${account}`),
    `${fixed.length + shares.length > 0 ? "the rest" : "all"} to ${payout}${isSplit ? " (a ledger split)" : ""}`,
  ];
  ctx.out.set("agentId", agentId, `agent #${agentId} ${name}: ${usdcText(price)} a call, paid ${parts.join(", ")}`);
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

/**
 * Calls agent `<id>` through `--relayer` or the relayer the chain names (checked to serve this deployment), paying its listed
 * price over x402 from the signer's USDC (an EIP-3009 authorization: no gas, and never more than
 * the listing's price); prints the agent's answer and the settlement transaction.
 */
async function call(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { ...RELAYER_OPTION, input: { type: "string" } });
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const agentId = parseField("agent id", idSchema, positionals[0]);
  const input = parseField("--input", z.string().min(1, "must be the text to send the agent"), values.input ?? "");
  const ctx = await connect(common);
  const { url: relayerUrl } = await chosenRelayer(ctx, values.relayer);
  const answer = await fetch(`${relayerUrl}/v1/agents/${agentId}`);
  const listing = agentViewSchema.safeParse(await answer.json().catch(() => undefined));
  if (!answer.ok || !listing.success) throw new UsageError(`the relayer lists no agent #${agentId} (it answered ${answer.status})`);
  if (listing.data.status !== "active") throw new UsageError(`agent #${agentId} is ${listing.data.status}: it takes no calls`);
  const account = await ctx.account();
  const { callAgentWithPayment } = await import("../x402-call.ts"); // the x402 libraries load only here
  const result = await callAgentWithPayment({
    url: listing.data.url,
    input,
    chainId: ctx.chainId,
    usdc: ctx.deployment.usdc,
    maxAmount: BigInt(listing.data.pricePerCallAtomic),
    walletClient: createWalletClient({ account, transport: custom(ctx.client) }),
    publicClient: ctx.client,
  });
  const transaction = (result.settlement?.transaction || undefined) as Hex | undefined;
  const link = transaction === undefined ? undefined : explorerTxUrl(ctx.chainId, transaction);
  ctx.out.set("answer", result.answer, JSON.stringify(result.answer));
  ctx.out.set("paid", listing.data.pricePerCall, `paid ${listing.data.pricePerCall} USDC to agent #${agentId}${transaction ? `: ${transaction}${link ? ` ${link}` : ""}` : ""}`);
  if (transaction !== undefined) ctx.out.set("settlementTx", transaction);
  ctx.out.finish();
}
