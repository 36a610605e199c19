import type { IncomingHttpHeaders } from "node:http";
import { ApiError } from "@agentmesh/sdk/http";
import type { ResolvedFaultOptions } from "./options.ts";
import { createSeededRandom } from "./seeded-random.ts";
import { foreignCode } from "@agentmesh/sdk/protocol";

/** The request header that injects a fault into one request. */
export const FAULT_HEADER = "x-reference-fault";

/**
 * The faults a chat completion can be given:
 * - `error`: HTTP 500 with an OpenAI-shaped error body;
 * - `timeout`: no answer at all until the client gives up;
 * - `cut-stream`: about half of the response, then the connection is dropped
 *   (for a stream: no usage chunk and no `[DONE]`);
 * - `slow`: extra latency before the first token.
 */
export const FAULT_MODES = ["error", "timeout", "cut-stream", "slow"] as const;

/** One of {@link FAULT_MODES}. */
export type FaultMode = (typeof FAULT_MODES)[number];

/** Picks the fault, if any, for each chat completion request. */
export interface FaultPlan {
  /**
   * The fault the request's {@link FAULT_HEADER} asks for, or else one drawn
   * from the process-wide rates, or `undefined` for none.
   *
   * @throws {ApiError} 400 `invalid_fault` when the header names no fault.
   */
  choose(headers: IncomingHttpHeaders): FaultMode | undefined;
}

/** Creates the {@link FaultPlan} of a provider from its fault options. */
export function createFaultPlan(options: ResolvedFaultOptions): FaultPlan {
  const random = createSeededRandom(options.seed);
  const rates: ReadonlyArray<readonly [FaultMode, number]> = [
    ["error", options.errorRate],
    ["timeout", options.timeoutRate],
    ["cut-stream", options.cutStreamRate],
    ["slow", options.slowRate],
  ];

  function draw(): FaultMode | undefined {
    let remaining = random.next();
    for (const [mode, rate] of rates) {
      if (remaining < rate) return mode;
      remaining -= rate;
    }
    return undefined;
  }

  return {
    choose: (headers) => requestedFault(headers) ?? draw(),
  };
}

/** @throws {ApiError} 400 `invalid_fault` for an unknown fault name. */
function requestedFault(headers: IncomingHttpHeaders): FaultMode | undefined {
  const value = headers[FAULT_HEADER];
  if (value === undefined) return undefined;
  const mode = FAULT_MODES.find((candidate) => candidate === value);
  if (mode === undefined) {
    throw new ApiError(
      400,
      foreignCode("invalid_fault"),
      `The ${FAULT_HEADER} header must be one of ${FAULT_MODES.join(", ")}; got ${JSON.stringify(value)}.`,
    );
  }
  return mode;
}
