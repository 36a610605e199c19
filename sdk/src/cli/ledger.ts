import { getAddress } from "viem";
import { mockUSDCAbi, splitsLedgerAbi } from "../abi/contracts.ts";
import { connect, usdcText } from "./context.ts";
import { addressSchema, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";

/** `agentmesh balance [--address 0x…]`: an account's SplitsLedger balance and its wallet's USDC. */
export async function balance(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { address: { type: "string" } });
  if (positionals.length > 0) throw new UsageError(`balance takes no arguments, got "${positionals.join(" ")}"`);
  const ctx = await connect(common);
  const account = values.address !== undefined ? getAddress(parseField("--address", addressSchema, values.address)) : (await ctx.account()).address;
  const [ledger, wallet] = await Promise.all([
    ctx.client.readContract({ address: ctx.deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] }),
    ctx.client.readContract({ address: ctx.deployment.usdc, abi: mockUSDCAbi, functionName: "balanceOf", args: [account] }),
  ]);
  ctx.out.set("address", account, `account ${account}`);
  ctx.out.set("ledger", ledger, `ledger balance  ${usdcText(ledger)} (withdraw with \`agentmesh withdraw <amount>\`)`);
  ctx.out.set("wallet", wallet, `wallet USDC     ${usdcText(wallet)}`);
  ctx.out.finish();
}

/** `agentmesh withdraw <amount> [--to 0x…]`: moves ledger balance to a wallet (the signer's by default). */
export async function withdraw(args: readonly string[]): Promise<void> {
  const { common, values, positionals } = parseCommand(args, { to: { type: "string" } });
  if (positionals.length !== 1) throw new UsageError("usage: agentmesh withdraw <amount> [--to 0x…]");
  const amount = parseUsdcAmount("amount", positionals[0]);
  const to = values.to === undefined ? undefined : getAddress(parseField("--to", addressSchema, values.to));
  const ctx = await connect(common);
  const signer = await ctx.account();
  const receiver = to ?? signer.address;
  await ctx.send(`withdraw ${usdcText(amount)} to ${receiver}`, {
    address: ctx.deployment.contracts.SplitsLedger,
    abi: splitsLedgerAbi,
    functionName: "withdraw",
    args: [receiver, amount],
  });
  const left = await ctx.client.readContract({ address: ctx.deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [signer.address] });
  ctx.out.set("withdrawn", amount);
  ctx.out.set("to", receiver);
  ctx.out.set("ledger", left, `ledger balance now ${usdcText(left)}`);
  ctx.out.finish();
}
