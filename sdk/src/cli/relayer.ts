import { z } from "zod";
import { relayerInfoSchema, type RelayerInfo } from "../protocol.ts";
import { parseField, UsageError } from "./options.ts";

/** `--relayer`: the relayer's http(s) URL, without a trailing slash. */
export const relayerUrlSchema = z.url({ protocol: /^https?$/, error: "must be the relayer's http(s) URL" }).transform((url) => url.replace(/\/$/, ""));

/**
 * The relayer at `--relayer` (`value`), once its `GET /v1/relayer` names the deployment's chain and
 * escrow: a relayer of another chain or escrow is refused before anything is signed or opened.
 */
export async function checkedRelayer(value: unknown, deployment: { chainId: number; escrow: string }): Promise<{ url: string; about: RelayerInfo }> {
  const url = parseField("--relayer", relayerUrlSchema, value);
  let about: RelayerInfo;
  try {
    about = relayerInfoSchema.parse(await (await fetch(`${url}/v1/relayer`)).json());
  } catch (error) {
    throw new UsageError(`--relayer ${url} does not answer GET /v1/relayer as a relayer: ${(error as Error).message.split("\n")[0]}`);
  }
  if (about.chainId !== deployment.chainId || about.contracts.ComputeEscrow.toLowerCase() !== deployment.escrow.toLowerCase()) {
    throw new UsageError(
      `--relayer ${url} serves the escrow ${about.contracts.ComputeEscrow} on chain ${about.chainId}, not this deployment's ${deployment.escrow} on chain ${deployment.chainId}`,
    );
  }
  return { url, about };
}
