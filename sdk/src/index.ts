export * from "./typed-data.ts";
