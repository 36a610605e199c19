import { getAbiItem, getAddress, type Hex } from "viem";
import { z } from "zod";
import { computeEscrowAbi } from "../abi/contracts.ts";
import { describeContractError } from "../contract-errors.ts";
import type { SessionTerms } from "../typed-data.ts";
import { connect, usdcText, type Context } from "./context.ts";
import { addressSchema, idSchema, parseCommand, parseField, UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh session list [--budget <id>] [--agent 0x…]
  agentmesh session close <sessionId>   the agent or budget creator starts a close; the provider's
                                        owner or receipt signer finalizes at once; anyone finalizes
                                        once the claim window is over`;

/** Largest block range one `eth_getLogs` asks for (public Base RPCs accept 10,000). */
const LOG_RANGE = 10_000n;
/** `ComputeEscrow.FINALIZED`: the `claimEnd` of a finalized session. */
const FINALIZED = 1;

const sessionOpened = getAbiItem({ abi: computeEscrowAbi, name: "SessionOpened" });
const sessionIdSchema = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte session id") as z.ZodType<Hex>;

/** `agentmesh session list|close` on the ComputeEscrow. */
export async function session(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action === "list") return list(rest);
  if (action === "close") return close(rest);
  throw new UsageError(action === undefined ? USAGE : `unknown session action "${action}"\n${USAGE}`);
}

/** The SessionOpened logs matching `filter`, read from the deployment's start block in bounded ranges. */
async function openedSessions(ctx: Context, filter: { sessionId?: Hex; budgetId?: bigint; agent?: Hex }) {
  const head = await ctx.client.getBlockNumber();
  const found = [];
  for (let from = BigInt(ctx.deployment.startBlock); from <= head; from += LOG_RANGE) {
    const to = from + LOG_RANGE - 1n < head ? from + LOG_RANGE - 1n : head;
    found.push(
      ...(await ctx.client.getLogs({ address: ctx.deployment.contracts.ComputeEscrow, event: sessionOpened, args: filter, fromBlock: from, toBlock: to, strict: true })),
    );
  }
  return found.map((log) => ({ sessionId: log.args.sessionId, terms: log.args.terms as SessionTerms }));
}

function statusOf(claimEnd: number, now: bigint): string {
  if (claimEnd === FINALIZED) return "finalized";
  return BigInt(claimEnd) <= now ? "claim window over (anyone may finalize)" : `open, claims until ${new Date(claimEnd * 1000).toISOString()}`;
}

async function list(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { budget: { type: "string" }, agent: { type: "string" } });
  if (positionals.length > 0) throw new UsageError(USAGE);
  const budgetId = values.budget === undefined ? undefined : parseField("--budget", idSchema, values.budget);
  const agent = values.agent === undefined ? undefined : getAddress(parseField("--agent", addressSchema, values.agent));
  const ctx = await connect(common);
  const opened = await openedSessions(ctx, { ...(budgetId !== undefined ? { budgetId } : {}), ...(agent !== undefined ? { agent } : {}) });
  const now = (await ctx.client.getBlock()).timestamp;
  const states = await Promise.all(
    opened.map(({ sessionId }) => ctx.client.readContract({ address: ctx.deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] })),
  );
  const sessions = opened.map(({ sessionId, terms }, index) => ({ sessionId, terms, state: states[index]! }));
  ctx.out.set(
    "sessions",
    sessions.map(({ sessionId, terms, state }) => ({
      sessionId,
      budgetId: terms.budgetId.toString(),
      agent: terms.agent,
      providerId: Number(terms.providerId),
      modelId: Number(terms.modelId),
      maxSpend: terms.maxSpend.toString(),
      settled: state.settled.toString(),
      sequence: state.sequence,
      claimEnd: state.claimEnd,
      status: state.claimEnd === FINALIZED ? "finalized" : BigInt(state.claimEnd) <= now ? "claimable" : "open",
    })),
  );
  if (sessions.length === 0) ctx.out.say("no sessions");
  for (const { sessionId, terms, state } of sessions) {
    ctx.out.say(`session ${sessionId}: ${statusOf(state.claimEnd, now)}`);
    ctx.out.say(
      `  budget #${terms.budgetId}, agent ${terms.agent}, provider #${terms.providerId} model #${terms.modelId}, settled ${usdcText(state.settled)} of ${usdcText(BigInt(terms.maxSpend))}`,
    );
  }
  ctx.out.finish();
}

async function close(args: readonly string[]): Promise<void> {
  const { common, positionals } = parseCommand(args, {});
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const sessionId = parseField("sessionId", sessionIdSchema, positionals[0]);
  const ctx = await connect(common);
  const [opened] = await openedSessions(ctx, { sessionId });
  if (opened === undefined) throw new Error(describeContractError("EscrowUnknownSession", [sessionId]));
  const escrow = ctx.deployment.contracts.ComputeEscrow;
  const state = await ctx.client.readContract({ address: escrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] });
  if (state.claimEnd === FINALIZED) throw new Error(describeContractError("EscrowSessionNotOpen", [sessionId]));
  const { terms } = opened;
  const signer = (await ctx.account()).address;
  const now = (await ctx.client.getBlock()).timestamp;
  const creator = (await ctx.client.readContract({ address: escrow, abi: computeEscrowAbi, functionName: "getBudget", args: [BigInt(terms.budgetId)] })).creator;
  const call = { address: escrow, abi: computeEscrowAbi, args: [terms] as const };
  if (BigInt(state.claimEnd) <= now) {
    await ctx.send(`finalize session ${sessionId}`, { ...call, functionName: "finalize" });
  } else if (signer === getAddress(terms.agent) || signer === creator) {
    await ctx.send(`request to close session ${sessionId}`, { ...call, functionName: "requestClose" });
  } else {
    await ctx.send(`close session ${sessionId} as its provider`, { ...call, functionName: "closeByProvider" });
  }
  const after = await ctx.client.readContract({ address: escrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] });
  const later = (await ctx.client.getBlock()).timestamp;
  ctx.out.set("sessionId", sessionId);
  ctx.out.set("claimEnd", after.claimEnd, `session ${sessionId}: ${statusOf(after.claimEnd, later)}`);
  ctx.out.set("settled", after.settled);
  ctx.out.finish();
}
