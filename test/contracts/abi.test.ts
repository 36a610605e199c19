import { readFile } from "node:fs/promises";
import { expect } from "chai";
import { ABI_MODULE_PATH, renderAbiModule } from "../../scripts/generate-abis.ts";

describe("generated ABIs", () => {
  it("sdk/src/abi/contracts.ts matches the compiled contracts (run `npm run build` when it does not)", async () => {
    expect(await readFile(ABI_MODULE_PATH, "utf8")).to.equal(await renderAbiModule());
  });
});
