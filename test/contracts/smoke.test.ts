import { expect } from "chai";
import { deployFixture } from "./fixture.ts";

describe("smoke", () => {
  it("deploys", async () => {
    const { escrow, registry } = await deployFixture();
    expect(await escrow.feeBps()).to.equal(250n);
    expect(await registry.minStake()).to.equal(100_000_000n);
  });
});
