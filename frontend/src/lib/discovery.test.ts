import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RelayerDiscoveryError, type FoundRelayer } from "@agentmesh/sdk/browser";
import { chooseRelayer, discoverySentence, relayerLabel, relayerOfProvider } from "./discovery.ts";

const SIGNER_A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SIGNER_B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

describe("which relayer a view uses", () => {
  const about = {} as FoundRelayer["about"];
  const relayers: FoundRelayer[] = [
    { url: "https://relayer-a.example.com", signers: [SIGNER_A], providerIds: [1, 2], about },
    { url: "https://relayer-b.example.com:8443", signers: [SIGNER_B], providerIds: [3], about },
  ];

  it("serves the marketplace from the user's pick when it was found, else from the first", () => {
    assert.equal(chooseRelayer(relayers, "https://relayer-b.example.com:8443")?.url, "https://relayer-b.example.com:8443");
    assert.equal(chooseRelayer(relayers, "https://gone.example.com")?.url, "https://relayer-a.example.com");
    assert.equal(chooseRelayer(relayers, undefined)?.url, "https://relayer-a.example.com");
    assert.equal(chooseRelayer([], "https://relayer-a.example.com"), undefined);
  });

  it("serves a provider's session from that provider's relayer", () => {
    assert.equal(relayerOfProvider(relayers, 3)?.url, "https://relayer-b.example.com:8443");
    assert.equal(relayerOfProvider(relayers, 2)?.url, "https://relayer-a.example.com");
    assert.equal(relayerOfProvider(relayers, 4), undefined);
  });

  it("names relayers by host and providers served, and shows discovery errors as sentences", () => {
    assert.deepEqual(relayers.map(relayerLabel), ["relayer-a.example.com (2 providers)", "relayer-b.example.com:8443 (1 provider)"]);
    assert.equal(
      discoverySentence(new RelayerDiscoveryError("the deployment on chain 84532 has no RelayerDirectory: give the relayer's URL")),
      "The deployment on chain 84532 has no RelayerDirectory: give the relayer's URL.",
    );
    assert.equal(discoverySentence(new Error("Already a sentence.")), "Already a sentence.");
    // A relayer that did not answer may have refused this page's origin: the browser cannot tell.
    const silent = new RelayerDiscoveryError("no relayer announced for any active provider serves this deployment: https://r.example.com does not answer GET /v1/relayer as a relayer: Failed to fetch");
    assert.equal(
      discoverySentence(silent, "https://app.example.com"),
      "No relayer announced for any active provider serves this deployment: https://r.example.com does not answer GET /v1/relayer as a relayer: Failed to fetch. A relayer that does not allow calls from https://app.example.com (its --cors-origin) cannot answer this page either.",
    );
    assert.equal(discoverySentence(new RelayerDiscoveryError("provider 4 is not registered"), "https://app.example.com"), "Provider 4 is not registered.");
  });
});
