import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explorerTxUrl } from "./context.ts";
import { idSchema, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";
import { parseModelSpec } from "./provider.ts";

const HASH = `0x${"ab".repeat(32)}` as const;

describe("command-line options", () => {
  it("reads USDC amounts at six decimals, refusing a seventh rather than rounding", () => {
    assert.equal(parseUsdcAmount("amount", "12"), 12_000_000n);
    assert.equal(parseUsdcAmount("amount", "0.25"), 250_000n);
    assert.equal(parseUsdcAmount("amount", "1.000001"), 1_000_001n);
    assert.equal(parseUsdcAmount("amount", "0", { allowZero: true }), 0n);
    assert.throws(() => parseUsdcAmount("amount", "1.0000001"), { name: "UsageError", message: 'amount has 7 decimals, but USDC has 6: "1.0000001"' });
    for (const bad of ["", "-1", "1e6", "0x10", "1.", ".5", "1,5", " 1"]) {
      assert.throws(() => parseUsdcAmount("--stake", bad), { name: "UsageError", message: `--stake must be a USDC amount such as 12 or 0.25, got "${bad}"` });
    }
    assert.throws(() => parseUsdcAmount("amount", undefined), /amount must be a USDC amount/);
    assert.throws(() => parseUsdcAmount("amount", "0.000000"), { message: "amount must be above 0" });
    assert.throws(() => parseUsdcAmount("amount", "340282366920938463463374607431768.211456"), { message: "amount is too large" });
  });

  it("takes exactly one of --network and --deployment, and names the field it refuses", () => {
    const ok = parseCommand(["--network", "base-sepolia", "--json", "extra"], {}, {});
    assert.deepEqual(ok.common, { network: "base-sepolia", "local-file": ".agentmesh/local.json", rpc: undefined, json: true });
    assert.deepEqual(ok.positionals, ["extra"]);
    const refused = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      try {
        parseCommand(args, {}, env);
      } catch (error) {
        assert.ok(error instanceof UsageError);
        return error.message;
      }
      assert.fail(`accepted ${args.join(" ")}`);
    };
    assert.match(refused([]), /^--network give exactly one of --network/);
    assert.match(refused(["--network", "base", "--deployment", "d.json"]), /^--network give exactly one/);
    assert.equal(refused(["--network", "mainnet"]), "--network must be base-sepolia, base or local");
    assert.equal(refused(["--network", "base", "--rpc", "ftp://node"]), "--rpc must be an http(s) URL");
    assert.equal(refused(["--network", "base"], { AGENTMESH_RPC_URL: "not a url" }), "--rpc must be an http(s) URL");
    assert.match(refused(["--network", "base", "--to", "0x1"]), /Unknown option '--to'/);
  });

  it("names a required option that is missing as required, not by the validator's type message", () => {
    assert.throws(() => parseField("--budget", idSchema, undefined), (error: Error) => error instanceof UsageError && error.message === "--budget is required");
    assert.throws(() => parseField("--budget", idSchema, "0"), /^UsageError: --budget must be a positive whole number$/);
    assert.equal(parseField("--budget", idSchema, "12"), 12n);
  });

  it("takes the RPC from AGENTMESH_RPC_URL unless --rpc is given", () => {
    const env = { AGENTMESH_RPC_URL: "https://from-env.example" };
    assert.equal(parseCommand(["--network", "base"], {}, env).common.rpc, "https://from-env.example");
    assert.equal(parseCommand(["--network", "base", "--rpc", "http://127.0.0.1:8545"], {}, env).common.rpc, "http://127.0.0.1:8545");
  });

  it("links transactions to BaseScan on Base and Base Sepolia, and nowhere on a local chain", () => {
    assert.equal(explorerTxUrl(8453, HASH), `https://basescan.org/tx/${HASH}`);
    assert.equal(explorerTxUrl(84532, HASH), `https://sepolia.basescan.org/tx/${HASH}`);
    assert.equal(explorerTxUrl(31337, HASH), undefined);
  });

  it("reads a model as name:inputPer1K:outputPer1K:context with USDC prices", () => {
    assert.deepEqual(parseModelSpec("llama-3.1-8b:0.00015:0.0006:8192"), { name: "llama-3.1-8b", inputPricePer1K: 150, outputPricePer1K: 600, maxContextTokens: 8192 });
    assert.throws(() => parseModelSpec("llama:0.00015:0.0006"), /--model must be name:inputPer1K:outputPer1K:maxContextTokens/);
    assert.throws(() => parseModelSpec("llama:0.0000001:0:1"), /--model llama input price has 7 decimals/);
    assert.throws(() => parseModelSpec("llama:4295:0:1"), /--model llama input price must be at most 4,?294\.967295 USDC/);
    assert.throws(() => parseModelSpec("llama:0:0:4294967296"), /--model llama context must fit in 32 bits/);
  });
});
