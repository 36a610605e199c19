import { getAddress, parseEventLogs, type Address } from "viem";
import { z } from "zod";
import { providerRegistryAbi } from "../abi/contracts.ts";
import { describeContractError } from "../contract-errors.ts";
import type { ProviderConfig } from "../registry.ts";
import { approveIfNeeded, connect, signPermit, usdcText, type Context } from "./context.ts";
import { addressSchema, idSchema, isHttpUrl, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh provider register --endpoint <url> --model <name:in:out:context>... --stake <usdc>
                              [--type self-hosted|cloud|decentralized] [--rate-limit 60] [--min-charge <usdc>]
                              [--features 0] [--receipt-signer 0x…] [--payout 0x…]
  agentmesh provider update <providerId> [--endpoint] [--type] [--rate-limit] [--min-charge] [--features] [--payout]
  agentmesh provider models <providerId> [--add <name:in:out:context>]... [--reprice <modelId:in:out>]... [--retire <modelId>]...
  agentmesh provider stake|unstake <providerId> <amount>
  agentmesh provider withdraw <providerId>          the unstaked USDC, once its delay is over
  agentmesh provider delegate-signer <providerId> <signer 0x…>
  agentmesh provider show <providerId>
(prices in USDC per 1,000 tokens, e.g. llama-3.1-8b:0.00015:0.0006:8192)`;

const PROVIDER_TYPES = { "self-hosted": 0, cloud: 1, decentralized: 2 } as const;
const TYPE_NAMES = Object.keys(PROVIDER_TYPES);
const UINT32_MAX = 2n ** 32n - 1n;

const uint32Schema = z
  .string()
  .regex(/^\d{1,10}$/, "must be a whole number")
  .transform(Number)
  .refine((value) => value <= 0xffff_ffff, "must fit in 32 bits");
const uint64Schema = z
  .string()
  .regex(/^\d{1,20}$/, "must be a whole number")
  .transform((text) => BigInt(text))
  .refine((value) => value < 2n ** 64n, "must fit in 64 bits");

/** A price per 1,000 tokens or a minimum charge: a USDC amount that fits the registry's uint32. */
function smallUsdc(field: string, text: string | undefined): number {
  const atomic = parseUsdcAmount(field, text, { allowZero: true });
  if (atomic > UINT32_MAX) throw new UsageError(`${field} must be at most ${usdcText(UINT32_MAX)}`);
  return Number(atomic);
}

/**
 * A model as typed on the command line, `name:inputPer1K:outputPer1K:maxContextTokens`, prices in
 * USDC (six decimals at most).
 *
 * @example
 * parseModelSpec("llama-3.1-8b:0.00015:0.0006:8192");
 */
export function parseModelSpec(text: string): { name: string; inputPricePer1K: number; outputPricePer1K: number; maxContextTokens: number } {
  const parts = text.split(":");
  if (parts.length !== 4 || parts[0] === "") throw new UsageError(`--model must be name:inputPer1K:outputPer1K:maxContextTokens, got "${text}"`);
  const [name, input, output, context] = parts as [string, string, string, string];
  return {
    name,
    inputPricePer1K: smallUsdc(`--model ${name} input price`, input),
    outputPricePer1K: smallUsdc(`--model ${name} output price`, output),
    maxContextTokens: parseField(`--model ${name} context`, uint32Schema, context),
  };
}

const CONFIG_OPTIONS = {
  endpoint: { type: "string" },
  type: { type: "string" },
  "rate-limit": { type: "string" },
  "min-charge": { type: "string" },
  features: { type: "string" },
  payout: { type: "string" },
} as const;

type ConfigValues = Partial<Record<keyof typeof CONFIG_OPTIONS, string>>;

/** The registry's config from the options, each one absent taken from `base`. */
function configFrom(values: ConfigValues, base: ProviderConfig): ProviderConfig {
  const endpoint = values.endpoint === undefined ? base.endpoint : parseField("--endpoint", z.string().refine(isHttpUrl, "must be an http(s) URL"), values.endpoint);
  let providerType = base.providerType;
  if (values.type !== undefined) {
    if (!(values.type in PROVIDER_TYPES)) throw new UsageError(`--type must be one of ${TYPE_NAMES.join(", ")}, got "${values.type}"`);
    providerType = PROVIDER_TYPES[values.type as keyof typeof PROVIDER_TYPES];
  }
  return {
    endpoint,
    providerType,
    rateLimitPerMinute: values["rate-limit"] === undefined ? base.rateLimitPerMinute : parseField("--rate-limit", uint32Schema, values["rate-limit"]),
    minChargePerCall: values["min-charge"] === undefined ? base.minChargePerCall : smallUsdc("--min-charge", values["min-charge"]),
    features: values.features === undefined ? base.features : parseField("--features", uint64Schema, values.features),
    receiptSigner: base.receiptSigner,
    payout: values.payout === undefined ? base.payout : getAddress(parseField("--payout", addressSchema, values.payout)),
  };
}

/** `agentmesh provider <action>` on the ProviderRegistry. */
export async function provider(args: readonly string[]): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case "register":
      return register(rest);
    case "update":
      return update(rest);
    case "models":
      return models(rest);
    case "stake":
    case "unstake":
      return stake(rest, action);
    case "withdraw":
      return withdrawUnstaked(rest);
    case "delegate-signer":
      return delegateSigner(rest);
    case "show":
      return show(rest);
    default:
      throw new UsageError(action === undefined ? USAGE : `unknown provider action "${action}"\n${USAGE}`);
  }
}

/** Reads a provider; the registry refuses an unknown id (RegistryUnknownProvider), and so do we. */
function readProvider(ctx: Context, providerId: bigint) {
  return ctx.client.readContract({ address: ctx.deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getProvider", args: [providerId] });
}

function currentConfig(found: Awaited<ReturnType<typeof readProvider>>): ProviderConfig {
  return {
    endpoint: found.endpoint,
    providerType: found.providerType,
    rateLimitPerMinute: found.rateLimitPerMinute,
    minChargePerCall: found.minChargePerCall,
    features: found.features,
    receiptSigner: found.receiptSigner,
    payout: found.payout,
  };
}

async function printProvider(ctx: Context, providerId: bigint): Promise<void> {
  const found = await readProvider(ctx, providerId);
  const models = await Promise.all(
    Array.from({ length: found.modelCount }, (_, index) =>
      ctx.client.readContract({ address: ctx.deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getModel", args: [providerId, BigInt(index)] }),
    ),
  );
  ctx.out.set("provider", {
    id: providerId.toString(),
    owner: found.owner,
    active: found.active,
    slashed: found.slashed,
    type: TYPE_NAMES[found.providerType],
    endpoint: found.endpoint,
    rateLimitPerMinute: found.rateLimitPerMinute,
    minChargePerCall: found.minChargePerCall.toString(),
    features: found.features.toString(),
    receiptSigner: found.receiptSigner,
    payout: found.payout,
    stake: found.stake.toString(),
    pendingUnstake: found.pendingUnstake.toString(),
    unstakeAvailableAt: Number(found.unstakeAvailableAt),
    models: models.map((model, index) => ({ id: index, ...model })),
  });
  ctx.out.say(`provider #${providerId} (${found.active ? "active" : "inactive"}${found.slashed ? ", slashed" : ""}) ${found.endpoint}`);
  ctx.out.say(`  owner ${found.owner}, receipt signer ${found.receiptSigner}, payout ${found.payout}`);
  ctx.out.say(`  stake ${usdcText(found.stake)}, pending unstake ${usdcText(found.pendingUnstake)}${found.pendingUnstake > 0n ? ` from ${new Date(Number(found.unstakeAvailableAt) * 1000).toISOString()}` : ""}`);
  ctx.out.say(`  min charge ${usdcText(BigInt(found.minChargePerCall))}, ${found.rateLimitPerMinute} calls a minute`);
  models.forEach((model, index) =>
    ctx.out.say(
      `  model #${index} ${model.name}${model.active ? "" : " (retired)"}: ${usdcText(BigInt(model.inputPricePer1K))} / ${usdcText(BigInt(model.outputPricePer1K))} per 1K tokens in / out, ${model.maxContextTokens} tokens`,
    ),
  );
}

/** Registers a provider and stakes in one transaction (the stake approved with a permit signed here). */
async function register(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, {
    ...CONFIG_OPTIONS,
    "receipt-signer": { type: "string" },
    model: { type: "string", multiple: true },
    stake: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError(USAGE);
  if (values.endpoint === undefined) throw new UsageError("--endpoint is required");
  const modelSpecs = (values.model ?? []).map(parseModelSpec);
  if (modelSpecs.length === 0) throw new UsageError("--model is required (name:inputPer1K:outputPer1K:maxContextTokens)");
  const stakeAmount = parseUsdcAmount("--stake", values.stake);
  const signerOption = values["receipt-signer"] === undefined ? undefined : getAddress(parseField("--receipt-signer", addressSchema, values["receipt-signer"]));
  const defaults = { endpoint: "", providerType: PROVIDER_TYPES["self-hosted"], rateLimitPerMinute: 60, minChargePerCall: 0, features: 0n };
  // Checked before connecting: a bad option sends nothing. The signer's address fills in later.
  const zero = "0x0000000000000000000000000000000000000000" as Address;
  configFrom(values, { ...defaults, receiptSigner: zero, payout: zero });
  const ctx = await connect(common);
  const owner = (await ctx.account()).address;
  const config = configFrom(values, { ...defaults, receiptSigner: signerOption ?? owner, payout: owner });
  const registry = ctx.deployment.contracts.ProviderRegistry;
  const { deadline, v, r, s } = await signPermit(ctx, registry, stakeAmount);
  const { logs } = await ctx.send(`register provider ${config.endpoint} staking ${usdcText(stakeAmount)}`, {
    address: registry,
    abi: providerRegistryAbi,
    functionName: "registerWithPermit",
    args: [config, modelSpecs, stakeAmount, deadline, v, r, s],
  });
  const registered = parseEventLogs({ abi: providerRegistryAbi, eventName: "ProviderRegistered", logs: logs as never });
  const providerId = registered[0]?.args.providerId;
  if (providerId === undefined) throw new Error("the registry emitted no ProviderRegistered event");
  ctx.out.set("providerId", providerId);
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

function idOnly(args: readonly string[], extra: Parameters<typeof parseCommand>[1], usage: string) {
  const parsed = parseCommand(args, extra);
  if (parsed.positionals.length !== 1) throw new UsageError(`usage: ${usage}`);
  return { ...parsed, providerId: parseField("providerId", idSchema, parsed.positionals[0]) };
}

async function update(args: readonly string[]): Promise<void> {
  const { common, values, providerId } = idOnly(args, CONFIG_OPTIONS, "agentmesh provider update <providerId> [--endpoint] [--type] [--rate-limit] [--min-charge] [--features] [--payout]");
  const given = values as ConfigValues;
  if (Object.keys(CONFIG_OPTIONS).every((key) => given[key as keyof ConfigValues] === undefined)) throw new UsageError("update needs at least one of --endpoint, --type, --rate-limit, --min-charge, --features, --payout");
  const ctx = await connect(common);
  const config = configFrom(given, currentConfig(await readProvider(ctx, providerId)));
  await ctx.send(`update provider #${providerId}`, { address: ctx.deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "updateProvider", args: [providerId, config] });
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

async function delegateSigner(args: readonly string[]): Promise<void> {
  const { common, positionals } = parseCommand(args, {});
  if (positionals.length !== 2) throw new UsageError("usage: agentmesh provider delegate-signer <providerId> <signer 0x…>");
  const providerId = parseField("providerId", idSchema, positionals[0]);
  const signer = getAddress(parseField("signer", addressSchema, positionals[1]));
  const ctx = await connect(common);
  const config = { ...currentConfig(await readProvider(ctx, providerId)), receiptSigner: signer };
  await ctx.send(`delegate provider #${providerId}'s receipts to ${signer}`, {
    address: ctx.deployment.contracts.ProviderRegistry,
    abi: providerRegistryAbi,
    functionName: "updateProvider",
    args: [providerId, config],
  });
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

const repriceSchema = z.string().regex(/^\d{1,10}:[^:]+:[^:]+$/, "must be modelId:inputPer1K:outputPer1K");
/** Model ids count from 0 within their provider. */
const modelIdSchema = z
  .string()
  .regex(/^\d{1,10}$/, "must be a model id (0, 1, …)")
  .transform((text) => BigInt(text));

/** Lists a provider's models, or adds, reprices and retires them (one transaction each). */
async function models(args: readonly string[]): Promise<void> {
  const { common, values, providerId } = idOnly(
    args,
    { add: { type: "string", multiple: true }, reprice: { type: "string", multiple: true }, retire: { type: "string", multiple: true } },
    "agentmesh provider models <providerId> [--add <name:in:out:context>]... [--reprice <modelId:in:out>]... [--retire <modelId>]...",
  );
  const adds = ((values.add as string[] | undefined) ?? []).map(parseModelSpec);
  const reprices = ((values.reprice as string[] | undefined) ?? []).map((text) => {
    const [id, input, output] = parseField("--reprice", repriceSchema, text).split(":") as [string, string, string];
    return { modelId: BigInt(id), input: smallUsdc("--reprice input price", input), output: smallUsdc("--reprice output price", output) };
  });
  const retires = ((values.retire as string[] | undefined) ?? []).map((text) => parseField("--retire", modelIdSchema, text));
  const ctx = await connect(common);
  await readProvider(ctx, providerId);
  const registry = ctx.deployment.contracts.ProviderRegistry;
  for (const model of adds) {
    await ctx.send(`add model ${model.name} to provider #${providerId}`, { address: registry, abi: providerRegistryAbi, functionName: "addModel", args: [providerId, model] });
  }
  for (const { modelId, input, output } of reprices) {
    await ctx.send(`reprice model #${modelId} of provider #${providerId}`, { address: registry, abi: providerRegistryAbi, functionName: "repriceModel", args: [providerId, modelId, input, output] });
  }
  for (const modelId of retires) {
    await ctx.send(`retire model #${modelId} of provider #${providerId}`, { address: registry, abi: providerRegistryAbi, functionName: "retireModel", args: [providerId, modelId] });
  }
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

/** `stake` adds to the stake (approving the registry if needed); `unstake` starts the unstake delay. */
async function stake(args: readonly string[], action: "stake" | "unstake"): Promise<void> {
  const { common, positionals } = parseCommand(args, {});
  if (positionals.length !== 2) throw new UsageError(`usage: agentmesh provider ${action} <providerId> <amount>`);
  const providerId = parseField("providerId", idSchema, positionals[0]);
  const amount = parseUsdcAmount("amount", positionals[1]);
  const ctx = await connect(common);
  const found = await readProvider(ctx, providerId);
  const registry = ctx.deployment.contracts.ProviderRegistry;
  if (action === "stake") {
    // The approval comes first, so what would make addStake revert is checked before it.
    if (found.slashed) throw new Error(describeContractError("RegistryProviderSlashed", [providerId]));
    await approveIfNeeded(ctx, registry, amount);
    await ctx.send(`stake ${usdcText(amount)} on provider #${providerId}`, { address: registry, abi: providerRegistryAbi, functionName: "addStake", args: [providerId, amount] });
  } else {
    await ctx.send(`request to unstake ${usdcText(amount)} from provider #${providerId}`, { address: registry, abi: providerRegistryAbi, functionName: "requestUnstake", args: [providerId, amount] });
  }
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

async function withdrawUnstaked(args: readonly string[]): Promise<void> {
  const { common, providerId } = idOnly(args, {}, "agentmesh provider withdraw <providerId>");
  const ctx = await connect(common);
  await readProvider(ctx, providerId);
  await ctx.send(`withdraw provider #${providerId}'s unstaked USDC`, { address: ctx.deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "withdrawUnstaked", args: [providerId] });
  await printProvider(ctx, providerId);
  ctx.out.finish();
}

async function show(args: readonly string[]): Promise<void> {
  const { common, providerId } = idOnly(args, {}, "agentmesh provider show <providerId>");
  const ctx = await connect(common);
  await printProvider(ctx, providerId);
  ctx.out.finish();
}
