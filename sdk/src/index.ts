export * from "./typed-data.ts";
export * from "./abi/contracts.ts";
export * from "./deployment.ts";
export * from "./usdc.ts";
export * from "./pricing.ts";
export * from "./receipts.ts";
export * from "./vouchers.ts";
export * from "./metering.ts";
