import { expect } from "chai";
import { hashTypedData, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { announcementTypes, directoryDomain } from "../../sdk/src/typed-data.ts";
import { deployFixture } from "./fixture.ts";

const HOUR = 3_600n;

describe("RelayerDirectory", () => {
  async function setup() {
    const fixture = await deployFixture();
    const { ethers, directory } = fixture;
    const directoryAddress = (await directory.getAddress()) as Address;
    const chainId = Number((await ethers.provider.getNetwork()).chainId);
    /** A receipt signer with no ETH: only its signature goes on-chain, submitted by someone else. */
    const signer = privateKeyToAccount(generatePrivateKey());
    const now = BigInt((await ethers.provider.getBlock("latest"))!.timestamp);
    const sign = (url: string, nonce: bigint, deadline = now + HOUR, by = signer) =>
      by.signTypedData({
        domain: directoryDomain(chainId, directoryAddress),
        types: announcementTypes,
        primaryType: "Announcement",
        message: { signer: signer.address, url, nonce, deadline },
      });
    return { ...fixture, directoryAddress, chainId, signer, now, sign };
  }

  it("stores the caller's own URL, and an empty one withdraws it", async () => {
    const { directory, providerOwner, receiptSigner } = await setup();
    await expect(directory.connect(receiptSigner).announce("https://relayer.example"))
      .to.emit(directory, "RelayerAnnounced")
      .withArgs(receiptSigner.address, "https://relayer.example", 0n);
    expect(await directory.relayerUrl(receiptSigner.address)).to.equal("https://relayer.example");
    // Another account's announcement sets its own entry only.
    await directory.connect(providerOwner).announce("https://elsewhere.example");
    expect(await directory.relayerUrl(receiptSigner.address)).to.equal("https://relayer.example");
    await directory.connect(receiptSigner).announce("");
    expect(await directory.relayerUrl(receiptSigner.address)).to.equal("");
    expect(await directory.nonces(receiptSigner.address)).to.equal(2n);
  });

  it("takes a signer's announcement submitted by anyone, once", async () => {
    const { directory, stranger, signer, now, sign } = await setup();
    const signature = await sign("https://relayer.example/", 0n);
    await expect(directory.connect(stranger).announceWithSignature(signer.address, "https://relayer.example/", now + HOUR, signature))
      .to.emit(directory, "RelayerAnnounced")
      .withArgs(signer.address, "https://relayer.example/", 0n);
    expect(await directory.relayerUrl(signer.address)).to.equal("https://relayer.example/");
    // Replayed after the signer moved on, it would point the signer back to an old URL.
    await directory.connect(stranger).announceWithSignature(signer.address, "https://new.example", now + HOUR, await sign("https://new.example", 1n));
    await expect(directory.connect(stranger).announceWithSignature(signer.address, "https://relayer.example/", now + HOUR, signature))
      .to.be.revertedWithCustomError(directory, "DirectoryInvalidSignature")
      .withArgs(signer.address);
    expect(await directory.relayerUrl(signer.address)).to.equal("https://new.example");
    expect(await directory.nonces(signer.address)).to.equal(2n);
  });

  it("refuses an announcement not signed by the signer, for another URL, or past its deadline", async () => {
    const { directory, stranger, signer, now, sign } = await setup();
    const impostor = privateKeyToAccount(generatePrivateKey());
    const url = "https://relayer.example";
    const attempts: [string, bigint, Hex][] = [
      [url, now + HOUR, await sign(url, 0n, now + HOUR, impostor)],
      ["https://attacker.example", now + HOUR, await sign(url, 0n)],
      [url, now + HOUR, await sign(url, 1n)],
    ];
    for (const [announced, deadline, signature] of attempts) {
      await expect(directory.connect(stranger).announceWithSignature(signer.address, announced, deadline, signature))
        .to.be.revertedWithCustomError(directory, "DirectoryInvalidSignature")
        .withArgs(signer.address);
    }
    const expired = now - 1n;
    await expect(directory.connect(stranger).announceWithSignature(signer.address, url, expired, await sign(url, 0n, expired)))
      .to.be.revertedWithCustomError(directory, "DirectoryAnnouncementExpired")
      .withArgs(expired);
    expect(await directory.relayerUrl(signer.address)).to.equal("");
    expect(await directory.nonces(signer.address)).to.equal(0n);
  });

  it("stores URLs up to 256 bytes and refuses longer ones", async () => {
    const { directory, receiptSigner } = await setup();
    const longest = `https://${"a".repeat(248)}`;
    await directory.connect(receiptSigner).announce(longest);
    expect(await directory.relayerUrl(receiptSigner.address)).to.equal(longest);
    await expect(directory.connect(receiptSigner).announce(`${longest}b`))
      .to.be.revertedWithCustomError(directory, "DirectoryUrlTooLong")
      .withArgs(257n, 256n);
    expect(await directory.relayerUrl(receiptSigner.address)).to.equal(longest);
  });

  it("signs the digest the SDK's typed data describes", async () => {
    const { directory, directoryAddress, chainId, signer } = await setup();
    const message = { signer: signer.address, url: "https://relayer.example", nonce: 7n, deadline: 123n };
    const expected = hashTypedData({ domain: directoryDomain(chainId, directoryAddress), types: announcementTypes, primaryType: "Announcement", message });
    expect(await directory.announcementDigest(message.signer, message.url, message.nonce, message.deadline)).to.equal(expected);
  });
});
