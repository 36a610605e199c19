import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { REORG_DEPTH, resumeBlock } from "./chain.ts";

describe("event scans", () => {
  it("read everything the first time, from the start block", () => {
    assert.equal(resumeBlock(undefined, 100n, 5_000n), 100n);
  });

  it("resume where the last scan ended, reading its last blocks again in case of a reorganization", () => {
    assert.equal(resumeBlock(5_000n, 100n, 5_010n), 5_001n - REORG_DEPTH);
    assert.equal(resumeBlock(5_000n, 100n, 5_000n), 5_001n - REORG_DEPTH, "nothing new: only the last blocks again");
  });

  it("never resume before the start block", () => {
    assert.equal(resumeBlock(120n, 100n, 130n), 100n);
  });

  it("start over when the last scan went past the block asked for", () => {
    assert.equal(resumeBlock(5_000n, 100n, 4_000n), 100n);
  });
});
