export * from "./typed-data.ts";
export * from "./abi/contracts.ts";
export * from "./deployment.ts";
export * from "./usdc.ts";
