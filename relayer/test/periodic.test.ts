import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PeriodicPass } from "../src/periodic.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("periodic passes", () => {
  it("runs requested passes one after another, each with its own result", async () => {
    const events: string[] = [];
    let count = 0;
    const passes = new PeriodicPass("test", 60_000, async () => {
      const pass = ++count;
      events.push(`start ${pass}`);
      await sleep(20);
      events.push(`end ${pass}`);
      return pass;
    });
    assert.deepEqual(await Promise.all([passes.run(), passes.run()]), [1, 2]);
    assert.deepEqual(events, ["start 1", "end 1", "start 2", "end 2"]);
  });

  it("skips ticks while a pass is under way, so slow passes never pile up", async () => {
    let started = 0;
    const passes = new PeriodicPass("test", 5, async () => {
      started++;
      await sleep(100);
    });
    passes.start();
    await sleep(150);
    await passes.stop();
    assert.ok(started >= 1 && started <= 2, `${started} passes in 150 ms of 100 ms passes, ticking every 5 ms`);
    const after = started;
    await sleep(30);
    assert.equal(started, after, "no tick after stop");
  });

  it("goes on after a failed pass", async () => {
    let calls = 0;
    const passes = new PeriodicPass("test", 60_000, async () => {
      if (++calls === 1) throw new Error("first pass fails");
      return calls;
    });
    await assert.rejects(passes.run(), /first pass fails/);
    assert.equal(await passes.run(), 2);
  });
});
