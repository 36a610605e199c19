import { z } from "zod";
import { checkRelayer, findRelayer, RelayerDiscoveryError } from "../discovery.ts";
import type { RelayerInfo } from "../protocol.ts";
import type { Context } from "./context.ts";
import { parseField, UsageError } from "./options.ts";

/** `--relayer`: the relayer's http(s) URL, without a trailing slash. */
export const relayerUrlSchema = z.url({ protocol: /^https?$/, error: "must be the relayer's http(s) URL" }).transform((url) => url.replace(/\/$/, ""));

/** The `--relayer` option of the commands that talk to a relayer. */
export const RELAYER_OPTION = { relayer: { type: "string" } } as const;

/**
 * The relayer a command talks to: `--relayer` (`value`) when given, else the one the chain names
 * (the RelayerDirectory entry of an active provider's receipt signer, `providerId`'s when given).
 * Either way its `GET /v1/relayer` must name the deployment's chain and escrow: a relayer of another
 * chain or escrow is refused before anything is signed or opened.
 */
export async function chosenRelayer(ctx: Pick<Context, "client" | "deployment">, value: unknown, providerId?: number): Promise<{ url: string; about: RelayerInfo }> {
  try {
    if (value !== undefined) {
      const url = parseField("--relayer", relayerUrlSchema, value);
      return { url, about: await checkRelayer(url, ctx.deployment) };
    }
    const found = await findRelayer(ctx.client, ctx.deployment, providerId);
    return { url: found.url, about: found.about };
  } catch (error) {
    if (error instanceof RelayerDiscoveryError) throw new UsageError(value === undefined ? `${error.message} (or give --relayer <url>)` : `--relayer ${error.message}`);
    throw error;
  }
}
