/**
 * The layering the code map promises (README, "Code map"): the services in `src/core/` hold no HTTP,
 * and the routes in `src/routes/` reach the store and the chain only through those services.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";

const SRC = new URL("../src/", import.meta.url);

/** The lines of every `.ts` file in `src/{folder}` matching `pattern`, as `file:line: text`. */
function offending(folder: string, pattern: RegExp): string[] {
  const found: string[] = [];
  for (const file of readdirSync(new URL(`${folder}/`, SRC)).filter((name) => name.endsWith(".ts"))) {
    readFileSync(new URL(`${folder}/${file}`, SRC), "utf8")
      .split("\n")
      .forEach((text, index) => {
        if (pattern.test(text)) found.push(`${folder}/${file}:${index + 1}: ${text.trim()}`);
      });
  }
  return found;
}

describe("layering", () => {
  it("keeps HTTP out of core/: no node:http, no request or response, no reading or writing of them", () => {
    assert.deepEqual(offending("core", /node:http|IncomingMessage|ServerResponse|\b(readJsonBody|sendJson|sendError|bearerToken)\b/), []);
  });

  it("keeps the store and the chain out of routes/: they call services", () => {
    // Types may be shared (a route passes a session record on); values may not.
    assert.deepEqual(offending("routes", /ctx\.repo\b|ctx\.chain\.(?!chainId\b)|ChainGateway|ctx\.marketplace\b|^import (?!type ).*from "\.\.\/(chain|store\/[a-z-]+)\.ts"/), []);
  });
});
