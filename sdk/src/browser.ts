/**
 * The SDK modules that run in a browser as they are (`@agentmesh/sdk/browser`): typed ABIs, EIP-712
 * definitions, USDC messages, pricing, receipt hashing, agents' pending payouts and session read
 * signatures, and finding relayers on-chain. Nothing here
 * touches Node built-ins or WebAssembly; signature recovery in a browser uses viem over these
 * typed-data definitions.
 */
export * from "./abi/contracts.ts";
export * from "./typed-data.ts";
export * from "./usdc.ts";
export * from "./registry.ts";
export * from "./pricing.ts";
export * from "./receipts.ts";
export * from "./agent-payouts.ts";
export * from "./session-read.ts";
export * from "./contract-errors.ts";
export * from "./discovery.ts";
