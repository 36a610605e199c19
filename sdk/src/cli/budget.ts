import { getAddress, parseEventLogs, type Address } from "viem";
import { z } from "zod";
import { computeEscrowAbi } from "../abi/contracts.ts";
import { describeContractError } from "../contract-errors.ts";
import { approveIfNeeded, connect, signPermit, usdcText, type Context } from "./context.ts";
import { addressSchema, idSchema, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh budget create --amount <usdc> --session-limit <usdc> [--days 30] [--agent 0x…]...
  agentmesh budget top-up <budgetId> <amount>
  agentmesh budget allow|deny <budgetId> <agent 0x…>...
  agentmesh budget refund <budgetId> <amount>
  agentmesh budget show <budgetId>`;

const daysSchema = z
  .string()
  .regex(/^[1-9]\d{0,4}$/, "must be a whole number of days from 1")
  .transform(Number);

/** `agentmesh budget <action>` on the ComputeEscrow. */
export async function budget(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case "create":
      return create(rest);
    case "top-up":
      return topUp(rest);
    case "allow":
    case "deny":
      return setAgents(rest, action === "allow");
    case "refund":
      return refund(rest);
    case "show":
      return show(rest);
    default:
      throw new UsageError(action === undefined ? USAGE : `unknown budget action "${action}"\n${USAGE}`);
  }
}

function agentsOf(values: unknown): Address[] {
  return ((values as string[] | undefined) ?? []).map((agent) => getAddress(parseField("--agent", addressSchema, agent)));
}

/** Creates a budget in one transaction, approving the escrow with an EIP-2612 permit signed here. */
async function create(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, {
    amount: { type: "string" },
    "session-limit": { type: "string" },
    days: { type: "string", default: "30" },
    agent: { type: "string", multiple: true },
  });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const amount = parseUsdcAmount("--amount", values.amount);
  const sessionLimit = parseUsdcAmount("--session-limit", values["session-limit"]);
  const days = parseField("--days", daysSchema, values.days);
  const agents = agentsOf(values.agent);
  const ctx = await connect(common);
  const escrow = ctx.deployment.contracts.ComputeEscrow;
  const expiry = (await ctx.client.getBlock()).timestamp + BigInt(days) * 86_400n;
  const { deadline, v, r, s } = await signPermit(ctx, escrow, amount);
  const { logs } = await ctx.send(`create a budget of ${usdcText(amount)}`, {
    address: escrow,
    abi: computeEscrowAbi,
    functionName: "createBudgetWithPermit",
    args: [amount, sessionLimit, expiry, agents, deadline, v, r, s],
  });
  const created = parseEventLogs({ abi: computeEscrowAbi, eventName: "BudgetCreated", logs: logs as never });
  const budgetId = created[0]?.args.budgetId;
  if (budgetId === undefined) throw new Error("the escrow emitted no BudgetCreated event");
  ctx.out.set("budgetId", budgetId, `budget #${budgetId}: ${usdcText(amount)}, at most ${usdcText(sessionLimit)} a session, until ${new Date(Number(expiry) * 1000).toISOString()}`);
  await printBudget(ctx, budgetId);
  ctx.out.finish();
}

/** Reads a budget; the escrow refuses an unknown id (EscrowUnknownBudget), and so do we. */
function readBudget(ctx: Context, budgetId: bigint) {
  return ctx.client.readContract({ address: ctx.deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] });
}

async function printBudget(ctx: Context, budgetId: bigint): Promise<void> {
  const found = await readBudget(ctx, budgetId);
  ctx.out.set("budget", { id: budgetId.toString(), creator: found.creator, available: found.available.toString(), perSessionLimit: found.perSessionLimit.toString(), expiry: found.expiry });
  ctx.out.say(`  creator      ${found.creator}`);
  ctx.out.say(`  unallocated  ${usdcText(found.available)}`);
  ctx.out.say(`  per session  ${usdcText(found.perSessionLimit)}`);
  ctx.out.say(`  expires      ${new Date(found.expiry * 1000).toISOString()}`);
}

function idAndAmount(args: readonly string[], usage: string) {
  const { common, positionals } = parseCommand(args, {});
  if (positionals.length !== 2) throw new UsageError(`usage: ${usage}`);
  return { common, budgetId: parseField("budgetId", idSchema, positionals[0]), amount: parseUsdcAmount("amount", positionals[1]) };
}

/**
 * Adds USDC to a budget: checks the budget and the wallet's balance first, approves only what the
 * escrow's allowance lacks, then tops up.
 */
async function topUp(args: readonly string[]): Promise<void> {
  const { common, budgetId, amount } = idAndAmount(args, "agentmesh budget top-up <budgetId> <amount>");
  const ctx = await connect(common);
  const found = await readBudget(ctx, budgetId);
  // The approval comes first, so what would make topUp revert is checked before it: nothing is sent.
  if ((await ctx.client.getBlock()).timestamp >= BigInt(found.expiry)) throw new Error(describeContractError("EscrowBudgetExpired", [budgetId, found.expiry]));
  const escrow = ctx.deployment.contracts.ComputeEscrow;
  await approveIfNeeded(ctx, escrow, amount);
  await ctx.send(`top up budget #${budgetId} with ${usdcText(amount)}`, { address: escrow, abi: computeEscrowAbi, functionName: "topUp", args: [budgetId, amount] });
  await printBudget(ctx, budgetId);
  ctx.out.finish();
}

async function setAgents(args: readonly string[], allowed: boolean): Promise<void> {
  const { common, positionals } = parseCommand(args, {});
  if (positionals.length < 2) throw new UsageError(`usage: agentmesh budget ${allowed ? "allow" : "deny"} <budgetId> <agent 0x…>...`);
  const budgetId = parseField("budgetId", idSchema, positionals[0]);
  const agents = positionals.slice(1).map((agent) => getAddress(parseField("agent", addressSchema, agent)));
  const ctx = await connect(common);
  await ctx.send(`${allowed ? "allow" : "deny"} ${agents.length} agent(s) on budget #${budgetId}`, {
    address: ctx.deployment.contracts.ComputeEscrow,
    abi: computeEscrowAbi,
    functionName: "setAgentsAllowed",
    args: [budgetId, agents, allowed],
  });
  ctx.out.set("agents", agents);
  ctx.out.set("allowed", allowed);
  ctx.out.finish();
}

/** Sends unallocated budget funds back to the creator's wallet. */
async function refund(args: readonly string[]): Promise<void> {
  const { common, budgetId, amount } = idAndAmount(args, "agentmesh budget refund <budgetId> <amount>");
  const ctx = await connect(common);
  await ctx.send(`refund ${usdcText(amount)} from budget #${budgetId}`, {
    address: ctx.deployment.contracts.ComputeEscrow,
    abi: computeEscrowAbi,
    functionName: "refund",
    args: [budgetId, amount],
  });
  await printBudget(ctx, budgetId);
  ctx.out.finish();
}

async function show(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { agent: { type: "string", multiple: true } });
  if (positionals.length !== 1) throw new UsageError("usage: agentmesh budget show <budgetId> [--agent 0x…]...");
  const budgetId = parseField("budgetId", idSchema, positionals[0]);
  const agents = agentsOf(values.agent);
  const ctx = await connect(common);
  ctx.out.say(`budget #${budgetId}`);
  await printBudget(ctx, budgetId);
  const allowed = await Promise.all(
    agents.map((agent) => ctx.client.readContract({ address: ctx.deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "isAgentAllowed", args: [budgetId, agent] })),
  );
  if (agents.length > 0) {
    ctx.out.set("agents", Object.fromEntries(agents.map((agent, index) => [agent, allowed[index]])));
    agents.forEach((agent, index) => ctx.out.say(`  agent ${agent} ${allowed[index] ? "allowed" : "not allowed"}`));
  }
  ctx.out.finish();
}
