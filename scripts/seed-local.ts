/**
 * Deploys the suite to the local node and seeds it for the demo, then writes the local stack file
 * (default `.agentmesh/local.json`, override with AGENTMESH_LOCAL_FILE) read by the relayer, SDK and UI:
 * - MockUSDC balances for every demo account;
 * - two providers staked and registered with different prices;
 * - a creator's funded budget that whitelists the demo agent;
 * - the demo agent's listing on the agent marketplace, whose flow of funds pays its author a fixed
 *   amount per call and tops up the demo budget with a share, so its revenue funds its compute.
 * Run by `npm start`; on its own: `npx hardhat run scripts/seed-local.ts --network localhost`.
 */
import { network } from "hardhat";
import { HDNodeWallet, Mnemonic } from "ethers";
import { DEFAULT_SUITE_OPTIONS, LOCAL_CHAIN_ID, deploySuite } from "./lib/deploy-suite.ts";
import { describeDeployment, writeJson } from "./lib/deployment-file.ts";

/** Hardhat's well-known development mnemonic: these keys are public, for the local chain only. */
const DEV_MNEMONIC = "test test test test test test test test test test test junk";
const USDC = 1_000_000n;
const ROLES = ["admin", "treasury", "providerA", "providerB", "receiptSignerA", "receiptSignerB", "creator", "agent", "relayer", "agentAuthor"] as const;

const localFile = process.env.AGENTMESH_LOCAL_FILE ?? ".agentmesh/local.json";
const rpcUrl = process.env.AGENTMESH_RPC_URL ?? "http://127.0.0.1:8545";
const providerPorts = (process.env.AGENTMESH_PROVIDER_PORTS ?? "9001,9002").split(",").map(Number);
const demoAgentPort = Number(process.env.AGENTMESH_DEMO_AGENT_PORT ?? "9003");

const { ethers } = await network.create();
const chainId = Number((await ethers.provider.getNetwork()).chainId);
if (chainId !== LOCAL_CHAIN_ID) throw new Error(`seed-local only seeds the local chain (31337), not ${chainId}`);

const mnemonic = Mnemonic.fromPhrase(DEV_MNEMONIC);
const accounts = Object.fromEntries(
  ROLES.map((role, index) => {
    const wallet = HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${index}`);
    return [role, { address: wallet.address, privateKey: wallet.privateKey }];
  }),
) as Record<(typeof ROLES)[number], { address: string; privateKey: string }>;
const signer = (role: (typeof ROLES)[number]) => ethers.getSigner(accounts[role].address);

const admin = await signer("admin");
const suite = await deploySuite(ethers, admin, {
  ...DEFAULT_SUITE_OPTIONS,
  admin: admin.address,
  treasury: accounts.treasury.address,
});
const { usdc, registry, escrow, marketplace } = suite;

for (const role of ROLES) await (await usdc.mint(accounts[role].address, 10_000n * USDC)).wait();

const providerSpecs = [
  { role: "providerA", signer: "receiptSignerA", name: "Reference A", input: 150, output: 600, minCharge: 10 },
  { role: "providerB", signer: "receiptSignerB", name: "Reference B", input: 100, output: 400, minCharge: 20 },
] as const;
const providers = [];
for (const [index, spec] of providerSpecs.entries()) {
  const owner = await signer(spec.role);
  const endpoint = `http://127.0.0.1:${providerPorts[index]}/v1`;
  await (await usdc.connect(owner).approve(await registry.getAddress(), DEFAULT_SUITE_OPTIONS.minStake)).wait();
  await (
    await registry.connect(owner).register(
      {
        endpoint,
        providerType: 0,
        rateLimitPerMinute: 600,
        minChargePerCall: spec.minCharge,
        features: 1n,
        receiptSigner: accounts[spec.signer].address,
        payout: owner.address,
      },
      [
        { name: "agentmesh-small", inputPricePer1K: spec.input, outputPricePer1K: spec.output, maxContextTokens: 8192 },
        { name: "agentmesh-large", inputPricePer1K: spec.input * 4, outputPricePer1K: spec.output * 4, maxContextTokens: 32768 },
      ],
      DEFAULT_SUITE_OPTIONS.minStake,
    )
  ).wait();
  providers.push({ id: index + 1, name: spec.name, endpoint, owner: owner.address, receiptSigner: accounts[spec.signer].address });
}

const creator = await signer("creator");
const budgetAmount = 1_000n * USDC;
const now = (await ethers.provider.getBlock("latest"))!.timestamp;
await (await usdc.connect(creator).approve(await escrow.getAddress(), budgetAmount)).wait();
await (
  await escrow.connect(creator).createBudget(budgetAmount, 10n * USDC, now + 30 * 24 * 3600, [accounts.agent.address])
).wait();
const budgetId = Number(await escrow.budgetCount());

// The demo agent, 0.05 USDC a call: 0.01 to its author, 1% to each side's referrer (none yet, so
// the platform's), 20% of the rest to the demo budget that pays its inference, the rest to the
// platform (the zero remainder recipient).
const RECIPIENT = { account: 0, split: 1, budget: 2 } as const;
const demoAgent = { pricePerCall: 50_000n, endpoint: `http://127.0.0.1:${demoAgentPort}/` };
await (
  await marketplace.connect(await signer("agentAuthor")).list(
    { name: "AutoDev (demo)", metadataURI: "", endpoint: demoAgent.endpoint },
    demoAgent.pricePerCall,
    {
      fixedAmounts: [{ recipient: { kind: RECIPIENT.account, account: accounts.agentAuthor.address, budgetId: 0 }, amount: 10_000 }],
      shares: [{ recipient: { kind: RECIPIENT.budget, account: ethers.ZeroAddress, budgetId }, share: 200_000 }],
      payerReferrerShare: 10_000,
      payeeReferrerShare: 10_000,
      remainder: { kind: RECIPIENT.account, account: ethers.ZeroAddress, budgetId: 0 },
    },
    ethers.ZeroAddress,
  )
).wait();
const demoAgentId = Number(await marketplace.agentCount());

const local = {
  ...(await describeDeployment(chainId, suite, true)),
  rpcUrl,
  accounts,
  budgetId,
  providers,
  demoAgent: {
    id: demoAgentId,
    endpoint: demoAgent.endpoint,
    paymentAddress: await marketplace.paymentAddressOf(demoAgentId),
    pricePerCall: demoAgent.pricePerCall.toString(),
  },
};
await writeJson(localFile, local);
console.log(`Seeded the local chain; wrote ${localFile}`);
