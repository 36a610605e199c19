import { expect } from "chai";
import { Wallet, toBeHex, zeroPadValue, type BaseWallet, type TypedDataDomain } from "ethers";
import { hashTypedData, type Address, type Hex } from "viem";
import { escrowDomain, voucherTypes } from "../../sdk/src/typed-data.ts";
import { DEFAULT_SUITE_OPTIONS, deploySuite } from "../../scripts/lib/deploy-suite.ts";
import type {
  ComputeEscrow,
  FeeOnTransferToken,
  MockUSDC,
  ReentrantToken,
} from "../../types/ethers-contracts/index.ts";
import {
  DAY,
  NO_SIGNATURE,
  USDC,
  buildTerms,
  createBudget,
  feeOf,
  openByAgent,
  registerProvider,
  sessionIdOf,
  setupMarket,
  signBoth,
  signOpen,
  signVoucher,
  voucher,
  type CompactSignature,
  type Market,
  type SessionTerms,
  type SignedVoucher,
  type Voucher,
} from "./helpers/escrow.ts";

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const PARITY_BIT = 1n << 255n;

/**
 * The high-s twin of a valid signature (s' = n − s, parity flipped), squeezed into the compact form.
 * s' almost never fits the 255 bits ERC-2098 leaves for s, so what the contract sees is some other s.
 */
function highS(signature: CompactSignature): CompactSignature {
  const word = BigInt(signature.yParityAndS);
  const s = word & (PARITY_BIT - 1n);
  const flippedParity = (word & PARITY_BIT) ^ PARITY_BIT;
  return { r: signature.r, yParityAndS: zeroPadValue(toBeHex(flippedParity | ((SECP256K1_N - s) % PARITY_BIT)), 32) as Hex };
}

/** The same r and s with the recovery parity flipped: a valid signature of some other key. */
function flippedParity(signature: CompactSignature): CompactSignature {
  return { r: signature.r, yParityAndS: zeroPadValue(toBeHex(BigInt(signature.yParityAndS) ^ PARITY_BIT), 32) as Hex };
}

/** USDC held by every relevant party, to prove nothing moved. */
async function snapshot(m: Market, extra: string[] = []) {
  const who = [
    await m.escrow.getAddress(),
    await m.ledger.getAddress(),
    await m.registry.getAddress(),
    m.creator.address,
    m.agent.address,
    m.providerOwner.address,
    m.treasury.address,
    m.stranger.address,
    ...extra,
  ];
  const usdc = await Promise.all(who.map((a) => m.usdc.balanceOf(a)));
  const ledger = await Promise.all(who.map((a) => m.ledger.balanceOf(a)));
  return { usdc, ledger, budget: (await m.escrow.getBudget(m.budgetId)).available };
}

/** Sets the next block's timestamp unless the chain is already there. */
async function at(m: Market, timestamp: number) {
  if ((await m.time.latest()) < timestamp) await m.time.setNextBlockTimestamp(timestamp);
}

describe("ComputeEscrow: security checklist (SECURITY.md 1–21)", () => {
  it("SECURITY 1: same-session replay — a voucher at or below what was settled pays nothing", async () => {
    const m = await setupMarket();
    const { escrow, agent, stranger, terms, sign } = m;
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    const v2 = await sign(voucher(t, { sequence: 2, cumulativeCost: 3n * USDC }));
    await escrow.connect(stranger).settle([v2]);
    const before = await snapshot(m);
    // The very same voucher again.
    await expect(escrow.connect(stranger).settle([v2]))
      .to.be.revertedWithCustomError(escrow, "EscrowVoucherStale")
      .withArgs(id, 2n, 2n);
    // An older, cheaper voucher.
    const v1 = await sign(voucher(t, { sequence: 1, cumulativeCost: 1n * USDC }));
    await expect(escrow.connect(stranger).settle([v1]))
      .to.be.revertedWithCustomError(escrow, "EscrowVoucherStale")
      .withArgs(id, 2n, 1n);
    // A newer sequence with a lower cost.
    const lower = await sign(voucher(t, { sequence: 3, cumulativeCost: 2n * USDC, requestCount: 9, inputTokens: 9000, outputTokens: 9000, latencyMs: 9000 }));
    await expect(escrow.connect(stranger).settle([lower])).to.be.revertedWithCustomError(escrow, "EscrowVoucherNotMonotonic").withArgs(id);
    // In a batch, too (the duplicate inside one batch is stale after the first).
    const v3 = await sign(voucher(t, { sequence: 3, cumulativeCost: 3n * USDC }));
    await expect(escrow.connect(stranger).settle([v3, v3]))
      .to.be.revertedWithCustomError(escrow, "EscrowVoucherStale")
      .withArgs(id, 3n, 3n);
    expect(await snapshot(m)).to.deep.equal(before);
    // A newer sequence with the same cost is accepted but pays exactly nothing.
    await expect(escrow.connect(stranger).settle([v3])).to.emit(escrow, "VoucherSettled").withArgs(id, 3n, 0n);
    expect(await snapshot(m)).to.deep.equal(before);
  });

  it("SECURITY 2: cross-session replay — closed sessions and other sessions of the same pair reject vouchers", async () => {
    const m = await setupMarket();
    const { escrow, agent, stranger, terms, sign } = m;
    const a = await terms();
    const b = await terms(); // same agent, provider, model and prices; only the salt differs
    const idA = await openByAgent(escrow, agent, a);
    const idB = await openByAgent(escrow, agent, b);
    expect(idA).to.not.equal(idB);
    await escrow.closeCooperative([await sign(voucher(a, { sequence: 1, cumulativeCost: 1n * USDC, isFinal: true }))]);
    const before = await snapshot(m);
    // A newer voucher of the closed session.
    const late = await sign(voucher(a, { sequence: 2, cumulativeCost: 5n * USDC }));
    await expect(escrow.connect(stranger).settle([late])).to.be.revertedWithCustomError(escrow, "EscrowSessionNotOpen").withArgs(idA);
    await expect(escrow.connect(stranger).finalize(a)).to.be.revertedWithCustomError(escrow, "EscrowSessionNotOpen").withArgs(idA);
    // Session A's voucher replayed against the still open session B: the voucher's terms are signed
    // with it, so relabelling them as B's breaks both signatures.
    await expect(escrow.connect(stranger).settle([{ ...late, voucher: { ...late.voucher, terms: b } }]))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(idB, agent.address);
    // Re-opening the closed session's terms is impossible.
    await expect(escrow.connect(agent).openSession(a, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowSessionExists").withArgs(idA);
    expect(await snapshot(m)).to.deep.equal(before);
  });

  it("SECURITY 3: cross-chain / cross-contract replay — signatures for chain id 1 or another contract fail", async () => {
    const m = await setupMarket();
    const { escrow, ledger, agent, receiptSigner, stranger, terms } = m;
    const t = await terms();
    const id = sessionIdOf(t);
    const address = (await escrow.getAddress()) as Address;
    const mainnet = escrowDomain(1, address) as TypedDataDomain;
    const otherContract = escrowDomain(m.chainId, (await ledger.getAddress()) as Address) as TypedDataDomain;
    for (const domain of [mainnet, otherContract]) {
      await expect(escrow.connect(stranger).openSession(t, await signOpen(agent, domain, t)))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
        .withArgs(id, agent.address);
    }
    await openByAgent(escrow, agent, t);
    const v = voucher(t, { sequence: 1, cumulativeCost: 1n * USDC });
    for (const domain of [mainnet, otherContract]) {
      await expect(escrow.connect(stranger).settle([await signBoth(domain, v, agent, receiptSigner)]))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
        .withArgs(id, agent.address);
      // Only the provider's signature from the wrong domain.
      const good = await m.sign(v);
      await expect(escrow.connect(stranger).settle([{ ...good, providerSignature: await signVoucher(receiptSigner, domain, v) }]))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
        .withArgs(id, receiptSigner.address);
    }
    expect((await escrow.getSession(id)).settled).to.equal(0n);
  });

  it("SECURITY 4: EIP-712 encoding — contract digests equal viem's hashTypedData (see also escrow.test.ts)", async () => {
    const m = await setupMarket();
    const t = await m.terms();
    const v = voucher(t, { sequence: 7, cumulativeCost: 123n, receiptHead: `0x${"cd".repeat(32)}`, isFinal: true });
    const domain = escrowDomain(m.chainId, (await m.escrow.getAddress()) as Address);
    expect(await m.escrow.voucherDigest(v)).to.equal(hashTypedData({ domain, types: voucherTypes, primaryType: "Voucher", message: v }));
    // Each field is bound: flipping any one changes the digest.
    const base = await m.escrow.voucherDigest(v);
    for (const key of Object.keys(v) as (keyof Voucher)[]) {
      const changed = tweak(v, key);
      expect(await m.escrow.voucherDigest(changed), key).to.not.equal(base);
    }
  });

  it("SECURITY 5: signature malleability — high-s twins and flipped parities are rejected", async () => {
    const m = await setupMarket();
    const { escrow, agent, receiptSigner, stranger, terms, domain } = m;
    const t = await terms();
    const id = sessionIdOf(t);
    const openSig = await signOpen(agent, domain, t);
    await expect(escrow.connect(stranger).openSession(t, highS(openSig)))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, agent.address);
    await expect(escrow.connect(stranger).openSession(t, flippedParity(openSig)))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, agent.address);
    await escrow.connect(stranger).openSession(t, openSig);

    const signed = await m.sign(voucher(t, { sequence: 1, cumulativeCost: 1n * USDC }));
    await expect(escrow.settle([{ ...signed, agentSignature: highS(signed.agentSignature) }]))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, agent.address);
    await expect(escrow.settle([{ ...signed, providerSignature: highS(signed.providerSignature) }]))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, receiptSigner.address);
    await expect(escrow.settle([{ ...signed, agentSignature: flippedParity(signed.agentSignature) }]))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, agent.address);
    await expect(escrow.settle([{ ...signed, providerSignature: flippedParity(signed.providerSignature) }]))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(id, receiptSigner.address);
    await escrow.settle([signed]);
    // Nothing is keyed on signature bytes: new bytes for the same state are still stale.
    const resigned = await m.sign({ ...signed.voucher });
    await expect(escrow.settle([{ ...resigned, agentSignature: highS(resigned.agentSignature) }])).to.be.revertedWithCustomError(escrow, "EscrowVoucherStale");
  });

  it("SECURITY 6: wrong signers — address(0) recovery, non-whitelisted, removed and other budgets' agents revert", async () => {
    const m = await setupMarket();
    const { escrow, usdc, agent, creator, stranger, others, budgetId, terms, domain, receiptSigner } = m;
    // A garbage signature recovers to address(0), which never matches (and agent 0 is refused).
    const one = zeroPadValue("0x01", 32) as Hex;
    const garbage: CompactSignature = { r: one, yParityAndS: one };
    const t = await terms();
    await expect(escrow.connect(stranger).openSession(t, garbage))
      .to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature")
      .withArgs(sessionIdOf(t), agent.address);
    await expect(escrow.connect(stranger).openSession(t, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    const zeroAgent = { ...t, agent: "0x0000000000000000000000000000000000000000" as Address };
    await expect(escrow.connect(stranger).openSession(zeroAgent, garbage)).to.be.revertedWithCustomError(escrow, "EscrowZeroAddress");
    // A non-whitelisted agent, calling itself or signing.
    const rogue = await terms({ agent: stranger.address });
    await expect(escrow.connect(stranger).openSession(rogue, NO_SIGNATURE))
      .to.be.revertedWithCustomError(escrow, "EscrowAgentNotAllowed")
      .withArgs(budgetId, stranger.address);
    // Another budget's agent.
    const other = others[0];
    const budget2 = await createBudget(usdc, escrow, { creator: others[1], amount: 10n * USDC, agents: [other.address] });
    await expect(escrow.connect(other).openSession(await terms({ agent: other.address }), NO_SIGNATURE))
      .to.be.revertedWithCustomError(escrow, "EscrowAgentNotAllowed")
      .withArgs(budgetId, other.address);
    expect(await escrow.isAgentAllowed(budget2, other.address)).to.equal(true);
    // Garbage / wrong voucher signatures.
    await openByAgent(escrow, agent, t);
    const v = voucher(t, { sequence: 1, cumulativeCost: 1n * USDC });
    const signed = await m.sign(v);
    await expect(escrow.settle([{ ...signed, agentSignature: garbage }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature").withArgs(sessionIdOf(t), agent.address);
    await expect(escrow.settle([{ ...signed, providerSignature: garbage }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature").withArgs(sessionIdOf(t), receiptSigner.address);
    await expect(escrow.settle([{ ...signed, agentSignature: await signVoucher(stranger, domain, v) }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature").withArgs(sessionIdOf(t), agent.address);
    await expect(escrow.settle([{ ...signed, providerSignature: await signVoucher(agent, domain, v) }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature").withArgs(sessionIdOf(t), receiptSigner.address);
    await expect(escrow.settle([{ ...signed, agentSignature: NO_SIGNATURE }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    // An agent removed from the whitelist can no longer open (neither itself nor by signature).
    await escrow.connect(creator).setAgentsAllowed(budgetId, [agent.address], false);
    const t2 = await terms();
    await expect(escrow.connect(agent).openSession(t2, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowAgentNotAllowed").withArgs(budgetId, agent.address);
    await expect(escrow.connect(stranger).openSession(t2, await signOpen(agent, domain, t2))).to.be.revertedWithCustomError(escrow, "EscrowAgentNotAllowed").withArgs(budgetId, agent.address);
  });

  it("SECURITY 7: sequences only increase; an equal sequence does not extend the challenge window", async () => {
    const m = await setupMarket();
    const { escrow, agent, creator, stranger, terms, sign, window } = m;
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    await escrow.settle([await sign(voucher(t, { sequence: 5, cumulativeCost: 1n * USDC }))]);
    const requestedAt = (await m.time.latest()) + 10;
    await m.time.setNextBlockTimestamp(requestedAt);
    await escrow.connect(agent).requestClose(t);
    const end = BigInt(requestedAt + window);
    expect((await escrow.getSession(id)).claimEnd).to.equal(end);
    // An equal sequence with more money is rejected and changes nothing.
    await expect(escrow.connect(stranger).settle([await sign(voucher(t, { sequence: 5, cumulativeCost: 2n * USDC }))]))
      .to.be.revertedWithCustomError(escrow, "EscrowVoucherStale")
      .withArgs(id, 5n, 5n);
    expect((await escrow.getSession(id)).claimEnd).to.equal(end);
    // A second request (by either party) never extends the window.
    await m.time.increase(3600);
    await expect(escrow.connect(creator).requestClose(t)).to.emit(escrow, "CloseRequested").withArgs(id, creator.address, end);
    expect((await escrow.getSession(id)).claimEnd).to.equal(end);
    // A newer voucher is accepted and does not move the window either.
    await escrow.settle([await sign(voucher(t, { sequence: 6, cumulativeCost: 2n * USDC }))]);
    const state = await escrow.getSession(id);
    expect(state.sequence).to.equal(6n);
    expect(state.claimEnd).to.equal(end);
    // Once the window is over, a request is refused: the session can only be finalized.
    await m.time.increaseTo(end);
    await expect(escrow.connect(agent).requestClose(t)).to.be.revertedWithCustomError(escrow, "EscrowClaimWindowOver").withArgs(id, end);
  });

  it("SECURITY 7: every usage counter only increases — lowering requestCount, inputTokens, outputTokens or latencyMs alone reverts", async () => {
    const m = await setupMarket();
    const { escrow, registry, agent, stranger, terms, sign, providerId } = m;
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    // Counters after sequence 2: requestCount 2, inputTokens 2000, outputTokens 1000, latencyMs 240.
    await escrow.connect(stranger).settle([await sign(voucher(t, { sequence: 2, cumulativeCost: 2n * USDC }))]);
    const next = voucher(t, { sequence: 3, cumulativeCost: 3n * USDC });
    const lowered: [string, Voucher][] = [
      ["requestCount", { ...next, requestCount: 1 }],
      ["inputTokens", { ...next, inputTokens: 1999 }],
      ["outputTokens", { ...next, outputTokens: 999 }],
      ["latencyMs", { ...next, latencyMs: 239 }],
    ];
    for (const [field, v] of lowered) {
      await expect(escrow.connect(stranger).settle([await sign(v)]), field)
        .to.be.revertedWithCustomError(escrow, "EscrowVoucherNotMonotonic")
        .withArgs(id);
    }
    const state = await escrow.getSession(id);
    expect([state.sequence, state.settled, state.requestCount]).to.deep.equal([2n, 2n * USDC, 2n]);
    const metrics = await registry.getMetrics(providerId);
    expect([metrics.requests, metrics.inputTokens, metrics.outputTokens, metrics.latencyMs]).to.deep.equal([2n, 2000n, 1000n, 240n]);
  });

  it("SECURITY 8: stale close — the provider's newer voucher wins at end−1; at end and end+1 settle reverts, finalize works", async () => {
    const m = await setupMarket();
    const { escrow, ledger, agent, stranger, providerOwner, budgetId, terms, sign, window } = m;
    const t1 = await terms();
    const t2 = await terms();
    const id1 = await openByAgent(escrow, agent, t1);
    const id2 = await openByAgent(escrow, agent, t2);
    const newer = (t: SessionTerms, seq: number, cost: bigint) => sign(voucher(t, { sequence: seq, cumulativeCost: cost }));
    // The consumer settles an old voucher and requests the close of both sessions.
    await escrow.connect(agent).settle([await newer(t1, 1, 1n * USDC)]);
    await escrow.connect(agent).settle([await newer(t2, 1, 1n * USDC)]);
    const requestedAt = (await m.time.latest()) + 5;
    await m.time.setNextBlockTimestamp(requestedAt);
    await escrow.connect(agent).requestClose(t1);
    await m.time.setNextBlockTimestamp(requestedAt + 1);
    await escrow.connect(agent).requestClose(t2);
    const end1 = requestedAt + window;
    const end2 = requestedAt + 1 + window;

    // end − 1: the provider's newer voucher wins.
    await m.time.setNextBlockTimestamp(end1 - 1);
    await expect(escrow.connect(stranger).settle([await newer(t1, 3, 6n * USDC)])).to.emit(escrow, "VoucherSettled").withArgs(id1, 3n, 5n * USDC);
    // end: too late to settle, finalize works.
    await at(m, end1);
    await expect(escrow.connect(stranger).settle([await newer(t1, 4, 7n * USDC)]))
      .to.be.revertedWithCustomError(escrow, "EscrowClaimWindowOver")
      .withArgs(id1, end1);
    await at(m, end1);
    await expect(escrow.connect(stranger).finalize(t1)).to.emit(escrow, "SessionFinalized").withArgs(id1, 6n * USDC, 4n * USDC);
    expect(await m.time.latest()).to.equal(end1);
    // end + 1 on the second session: settle reverts, finalize works.
    await at(m, end2 + 1);
    await expect(escrow.connect(stranger).settle([await newer(t2, 2, 2n * USDC)]))
      .to.be.revertedWithCustomError(escrow, "EscrowClaimWindowOver")
      .withArgs(id2, end2);
    await at(m, end2 + 1);
    await expect(escrow.connect(stranger).finalize(t2)).to.emit(escrow, "SessionFinalized").withArgs(id2, 1n * USDC, 9n * USDC);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(7n * USDC - feeOf(1n * USDC) * 2n - feeOf(5n * USDC));
    expect((await escrow.getBudget(budgetId)).available).to.equal(93n * USDC);
  });

  it("SECURITY 8: finalize reverts at end−1 (the provider's last second) and works at end", async () => {
    const m = await setupMarket();
    const { escrow, agent, stranger, terms, window } = m;
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    const requestedAt = (await m.time.latest()) + 5;
    await m.time.setNextBlockTimestamp(requestedAt);
    await escrow.connect(agent).requestClose(t);
    const end = requestedAt + window;
    // Really mined at end − 1 (an explicit gas limit skips estimation).
    await m.time.setNextBlockTimestamp(end - 1);
    await expect(escrow.connect(stranger).finalize(t, { gasLimit: 300_000 }))
      .to.be.revertedWithCustomError(escrow, "EscrowClaimWindowOpen")
      .withArgs(id, end);
    expect(await m.time.latest()).to.equal(end - 1);
    await m.time.setNextBlockTimestamp(end);
    await expect(escrow.connect(stranger).finalize(t)).to.emit(escrow, "SessionFinalized").withArgs(id, 0n, t.maxSpend);
  });

  it("SECURITY 9: refund front-running — the creator cannot pull funds a signed voucher can still claim", async () => {
    const m = await setupMarket();
    const { escrow, usdc, ledger, agent, creator, providerOwner, budgetId, terms, sign } = m;
    const t = await terms({ maxSpend: 10n * USDC });
    const id = await openByAgent(escrow, agent, t);
    const signed = await sign(voucher(t, { sequence: 1, cumulativeCost: 10n * USDC }));
    await expect(escrow.connect(creator).refund(budgetId, 90n * USDC + 1n))
      .to.be.revertedWithCustomError(escrow, "EscrowInsufficientBudget")
      .withArgs(budgetId, 90n * USDC, 90n * USDC + 1n);
    await escrow.connect(creator).refund(budgetId, 90n * USDC);
    // The creator also tries to cut the agent off and shorten the budget: the voucher still settles.
    await escrow.connect(creator).setAgentsAllowed(budgetId, [agent.address], false);
    await escrow.connect(creator).setBudgetTerms(budgetId, 1n, (await m.time.latest()) + 10);
    await m.time.increase(100);
    await expect(escrow.connect(creator).returnExpired(budgetId)).to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount").withArgs(0n);
    await escrow.settle([signed]);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(10n * USDC - feeOf(10n * USDC));
    expect(await usdc.balanceOf(creator.address)).to.equal(90n * USDC);
    expect((await escrow.getSession(id)).settled).to.equal(10n * USDC);
  });

  it("SECURITY 10: partial redemption — cumulativeCost > maxSpend reverts EscrowVoucherExceedsLock and consumes nothing", async () => {
    const m = await setupMarket();
    const { escrow, agent, terms, sign } = m;
    const t = await terms({ maxSpend: 5n * USDC });
    const id = await openByAgent(escrow, agent, t);
    const before = await snapshot(m);
    const over = await sign(voucher(t, { sequence: 1, cumulativeCost: 5n * USDC + 1n }));
    await expect(escrow.settle([over])).to.be.revertedWithCustomError(escrow, "EscrowVoucherExceedsLock").withArgs(id, 5n * USDC, 5n * USDC + 1n);
    const finalOver = await sign(voucher(t, { sequence: 1, cumulativeCost: 5n * USDC + 1n, isFinal: true }));
    await expect(escrow.closeCooperative([finalOver])).to.be.revertedWithCustomError(escrow, "EscrowVoucherExceedsLock");
    expect(await snapshot(m)).to.deep.equal(before);
    const state = await escrow.getSession(id);
    expect(state.sequence).to.equal(0n);
    expect(state.settled).to.equal(0n);
    // The same sequence is still usable for the full lock.
    await expect(escrow.settle([await sign(voucher(t, { sequence: 1, cumulativeCost: 5n * USDC }))])).to.emit(escrow, "VoucherSettled").withArgs(id, 1n, 5n * USDC);
  });

  describe("SECURITY 11: slashing", () => {
    async function doubleSigned(m: Market) {
      const t = await m.terms();
      await openByAgent(m.escrow, m.agent, t);
      const a = voucher(t, { sequence: 3, cumulativeCost: 1n * USDC });
      const b = voucher(t, { sequence: 3, cumulativeCost: 2n * USDC });
      return { t, a, b, sa: await signVoucher(m.receiptSigner, m.domain, a), sb: await signVoucher(m.receiptSigner, m.domain, b) };
    }

    it("SECURITY 11: a valid double-sign proof slashes stake + pending unstake: 10% to the reporter, 90% to the treasury", async () => {
      const m = await setupMarket();
      const { escrow, registry, ledger, usdc, providerOwner, stranger, treasury, receiptSigner, providerId } = m;
      const { a, b, sa, sb } = await doubleSigned(m);
      // A pending unstake stays slashable.
      await registry.connect(providerOwner).requestUnstake(providerId, 30n * USDC);
      const ledgerUsdc = await usdc.balanceOf(await ledger.getAddress());
      await expect(escrow.connect(stranger).slashDoubleSign(a, sa, b, sb))
        .to.emit(escrow, "DoubleSignSlashed")
        .withArgs(providerId, receiptSigner.address, stranger.address, 100n * USDC, 10n * USDC);
      expect(await ledger.balanceOf(stranger.address)).to.equal(10n * USDC);
      expect(await ledger.balanceOf(treasury.address)).to.equal(90n * USDC);
      // Slashing moves ledger credits only: the stake left the registry's ledger balance, no token moved.
      expect(await ledger.balanceOf(await registry.getAddress())).to.equal(0n);
      expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(ledgerUsdc);
      const provider = await registry.getProvider(providerId);
      expect(provider.stake).to.equal(0n);
      expect(provider.pendingUnstake).to.equal(0n);
      expect(provider.slashed).to.equal(true);
      expect(provider.active).to.equal(false);
      // Nothing left to take: a second proof pays nothing.
      await expect(escrow.connect(stranger).slashDoubleSign(a, sa, b, sb)).to.emit(escrow, "DoubleSignSlashed").withArgs(providerId, receiptSigner.address, stranger.address, 0n, 0n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(10n * USDC);
      await expect(registry.connect(providerOwner).withdrawUnstaked(providerId)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady");
    });

    it("SECURITY 11: invalid proofs revert EscrowInvalidSlashProof", async () => {
      const m = await setupMarket();
      const { escrow, registry, agent, stranger, receiptSigner, domain, providerId } = m;
      const { t, a, b, sa, sb } = await doubleSigned(m);
      const bad = async (x: Voucher, sx: CompactSignature, y: Voucher, sy: CompactSignature) =>
        expect(escrow.connect(stranger).slashDoubleSign(x, sx, y, sy)).to.be.revertedWithCustomError(escrow, "EscrowInvalidSlashProof");
      await bad(a, sa, a, sa); // the same voucher twice
      await bad(a, sa, a, highS(sa)); // the same voucher, malleated signature
      const c = voucher(t, { sequence: 4, cumulativeCost: 2n * USDC });
      await bad(a, sa, c, await signVoucher(receiptSigner, domain, c)); // different sequences
      const otherTerms = await m.terms();
      await openByAgent(escrow, agent, otherTerms);
      const other = voucher(otherTerms, { sequence: 3, cumulativeCost: 2n * USDC });
      await bad(a, sa, other, await signVoucher(receiptSigner, domain, other)); // different sessions
      await bad(a, await signVoucher(agent, domain, a), b, await signVoucher(agent, domain, b)); // agent-signed
      await bad(a, await signVoucher(stranger, domain, a), b, await signVoucher(stranger, domain, b)); // unknown signer
      await bad(a, sa, b, await signVoucher(agent, domain, b)); // two different signers
      await bad(a, NO_SIGNATURE, b, NO_SIGNATURE); // both recover to address(0)
      expect((await registry.getProvider(providerId)).stake).to.equal(100n * USDC);
      await escrow.connect(stranger).slashDoubleSign(a, sa, b, sb); // while the genuine proof works
      expect((await registry.getProvider(providerId)).stake).to.equal(0n);
    });

    it("SECURITY 11: only the bound escrow can slash in the registry", async () => {
      const { registry, stranger, admin, providerId } = await setupMarket();
      await expect(registry.connect(stranger).slash(providerId)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(stranger.address);
      await expect(registry.connect(admin).slash(providerId)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(admin.address);
    });

    it("SECURITY 22 / issue 11 §2: two states of a session never opened are no proof, however well signed", async () => {
      const m = await setupMarket();
      const { escrow, registry, stranger, receiptSigner, domain, providerId } = m;
      const t = await m.terms(); // terms naming the provider and its real signer, but never opened
      const a = voucher(t, { sequence: 1, cumulativeCost: 1n });
      const b = voucher(t, { sequence: 1, cumulativeCost: 2n });
      await expect(escrow.connect(stranger).slashDoubleSign(a, await signVoucher(receiptSigner, domain, a), b, await signVoucher(receiptSigner, domain, b)))
        .to.be.revertedWithCustomError(escrow, "EscrowUnknownSession")
        .withArgs(sessionIdOf(t));
      expect((await registry.getProvider(providerId)).stake).to.equal(100n * USDC);
    });

    it("SECURITY 22 / issue 11 §2: another provider's session, or a key that was not its signer, proves nothing against a provider", async () => {
      const m = await setupMarket();
      const { escrow, registry, usdc, agent, stranger, others, receiptSigner, domain, providerId } = m;
      const [owner2, signer2] = [others[0], others[1]];
      const provider2 = await registerProvider(usdc, registry, { owner: owner2, receiptSigner: signer2.address, payout: owner2.address });
      // A session of provider 2: provider 1's signer double-signing in it binds nobody (not its signer).
      const t2 = await m.terms({ providerId: provider2 });
      await openByAgent(escrow, agent, t2);
      const a = voucher(t2, { sequence: 1, cumulativeCost: 1n * USDC });
      const b = voucher(t2, { sequence: 1, cumulativeCost: 2n * USDC });
      await expect(escrow.connect(stranger).slashDoubleSign(a, await signVoucher(receiptSigner, domain, a), b, await signVoucher(receiptSigner, domain, b)))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidSlashProof");
      // Terms claiming provider 1 with provider 2's signer were refused at open: no such session exists.
      const forged = { ...(await m.terms()), receiptSigner: signer2.address as Address };
      await expect(escrow.connect(agent).openSession(forged, NO_SIGNATURE))
        .to.be.revertedWithCustomError(escrow, "EscrowReceiptSignerMismatch")
        .withArgs(providerId, receiptSigner.address, signer2.address);
      expect((await registry.getProvider(providerId)).stake).to.equal(100n * USDC);
      expect((await registry.getProvider(provider2)).stake).to.equal(100n * USDC);
    });

    it("SECURITY 22 / issue 11 §2: a rotated-away signer binds only the sessions it signed for, never new ones", async () => {
      const m = await setupMarket();
      const { escrow, registry, agent, stranger, others, providerOwner, receiptSigner, domain, providerId } = m;
      const oldSession = await m.terms();
      await openByAgent(escrow, agent, oldSession);
      // Rotate to a new signer.
      const newSigner = others[9];
      const provider = await registry.getProvider(providerId);
      await registry.connect(providerOwner).updateProvider(providerId, {
        endpoint: provider.endpoint,
        providerType: provider.providerType,
        rateLimitPerMinute: provider.rateLimitPerMinute,
        minChargePerCall: provider.minChargePerCall,
        features: provider.features,
        receiptSigner: newSigner.address,
        payout: provider.payout,
      });
      const newSession = await m.terms();
      expect(newSession.receiptSigner).to.equal(newSigner.address);
      await openByAgent(escrow, agent, newSession);
      // The retired key double-signing in a new session proves nothing.
      const a = voucher(newSession, { sequence: 1, cumulativeCost: 1n });
      const b = voucher(newSession, { sequence: 1, cumulativeCost: 2n });
      await expect(escrow.connect(stranger).slashDoubleSign(a, await signVoucher(receiptSigner, domain, a), b, await signVoucher(receiptSigner, domain, b)))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidSlashProof");
      // The old session still settles with the old key (its terms fixed it) and the new key cannot sign for it.
      const old1 = voucher(oldSession, { sequence: 1, cumulativeCost: 1n * USDC });
      await expect(escrow.settle([await signBoth(domain, old1, agent, newSigner)])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
      await escrow.settle([await signBoth(domain, old1, agent, receiptSigner)]);
      expect((await escrow.getSession(sessionIdOf(oldSession))).settled).to.equal(1n * USDC);
      expect((await registry.getProvider(providerId)).stake).to.equal(100n * USDC);
      // ...and the old key double-signing there is still slashable: it was that session's signer.
      const x = voucher(oldSession, { sequence: 2, cumulativeCost: 2n * USDC });
      const y = voucher(oldSession, { sequence: 2, cumulativeCost: 3n * USDC });
      await expect(escrow.connect(stranger).slashDoubleSign(x, await signVoucher(receiptSigner, domain, x), y, await signVoucher(receiptSigner, domain, y)))
        .to.emit(escrow, "DoubleSignSlashed")
        .withArgs(providerId, receiptSigner.address, stranger.address, 100n * USDC, 10n * USDC);
    });

    it("SECURITY 22 / issue 11 §2: a proven double sign deactivates a provider whose stake is too small for a reward", async () => {
      for (const stake of [1n, 9n]) {
        const m = await setupMarket();
        const { escrow, registry, ledger, admin, providerOwner, stranger, treasury, receiptSigner, providerId } = m;
        const { a, b, sa, sb } = await doubleSigned(m);
        // Leave only `stake` units: lower the minimum, then unstake the rest and let it be withdrawn.
        await registry.connect(admin).setMinStake(1n);
        await registry.connect(providerOwner).requestUnstake(providerId, 100n * USDC - stake);
        await m.time.increase(Number(await registry.unstakeDelay()));
        await registry.connect(providerOwner).withdrawUnstaked(providerId);
        expect((await registry.getProvider(providerId)).stake).to.equal(stake);
        await expect(escrow.connect(stranger).slashDoubleSign(a, sa, b, sb))
          .to.emit(escrow, "DoubleSignSlashed")
          .withArgs(providerId, receiptSigner.address, stranger.address, stake, 0n);
        const provider = await registry.getProvider(providerId);
        expect(provider.active, `stake ${stake}`).to.equal(false);
        expect(provider.slashed).to.equal(true);
        expect(await ledger.balanceOf(treasury.address)).to.equal(stake);
        expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
        await expect(registry.connect(providerOwner).reactivate(providerId)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed");
      }
    });
  });

  it("SECURITY 12: the relayer cannot change payer, payee or amount — tampering any signed field reverts", async () => {
    const m = await setupMarket();
    const { escrow, usdc, registry, agent, stranger, others, domain, terms, ethers } = m;
    // A second provider the relayer might want to redirect payment to, with identical prices.
    await registerProvider(usdc, registry, { owner: others[0], receiptSigner: others[1].address, payout: stranger.address });
    const t = await terms();
    await openByAgent(escrow, agent, t);
    const signed = await m.sign(voucher(t, { sequence: 2, cumulativeCost: 3n * USDC }));
    const before = await snapshot(m);
    for (const key of Object.keys(signed.voucher) as (keyof Voucher)[]) {
      await expect(escrow.connect(stranger).settle([{ ...signed, voucher: tweak(signed.voucher, key) }]), `voucher.${key}`).to.be.revert(m.ethers);
    }
    for (const key of Object.keys(t) as (keyof SessionTerms)[]) {
      const value = t[key];
      const changed = typeof value === "string" ? stranger.address : typeof value === "bigint" ? value + 1n : value + 1;
      const tampered = { ...t, [key]: changed };
      // Other terms are another session: one that was never opened.
      await expect(escrow.connect(stranger).settle([{ ...signed, voucher: { ...signed.voucher, terms: tampered as SessionTerms } }]), `terms.${key}`)
        .to.be.revertedWithCustomError(escrow, "EscrowSessionNotOpen")
        .withArgs(sessionIdOf(tampered as SessionTerms));
    }
    // Swapping the two signatures, or using one for both.
    await expect(escrow.connect(stranger).settle([{ ...signed, agentSignature: signed.providerSignature, providerSignature: signed.agentSignature }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    await expect(escrow.connect(stranger).settle([{ ...signed, providerSignature: signed.agentSignature }])).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    // Opening with the agent's signature but other terms (bigger lock, another provider).
    const t2 = await terms();
    const sig = await signOpen(agent, domain, t2);
    await expect(escrow.connect(stranger).openSession({ ...t2, maxSpend: t2.maxSpend + 1n }, sig)).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    await expect(escrow.connect(stranger).openSession({ ...t2, providerId: 2 }, sig)).to.be.revertedWithCustomError(escrow, "EscrowInvalidSignature");
    // Non-canonical ABI encodings of the signed data: each value with a dirty bit above its width.
    // The escrow hashes vouchers as sent, so such bytes match no signature and no session.
    const calldata = escrow.interface.encodeFunctionData("settle", [[signed]]);
    const word = (index: number) => 4 + 64 + index * 32; // selector, array offset and length, then the element
    const fields = [["terms.modelId", 3, 32], ["terms.receiptSigner", 4, 160], ["terms.feeBps", 8, 16], ["terms.salt", 11, 64], ["sequence", 12, 32], ["cumulativeCost", 13, 64], ["isFinal", 19, 8]] as const;
    for (const [field, index, bitWidth] of fields) {
      const bytes = ethers.getBytes(calldata);
      bytes[word(index) + 31 - bitWidth / 8] |= 1;
      await expect(stranger.sendTransaction({ to: await escrow.getAddress(), data: ethers.hexlify(bytes) }), field).to.be.revert(m.ethers);
    }
    expect(await snapshot(m)).to.deep.equal(before);
    await escrow.connect(stranger).settle([signed]);
  });

  it("SECURITY 12: a relayer's settlement credits the registered payout and the treasury, never the relayer", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, registry, agent, stranger, others, providerOwner, treasury, terms, sign } = m;
    // The relayer is also another provider's payout: it still must not receive this provider's earnings.
    await registerProvider(usdc, registry, { owner: others[0], receiptSigner: others[1].address, payout: stranger.address });
    const t = await terms();
    await openByAgent(escrow, agent, t);
    await escrow.connect(stranger).settle([await sign(voucher(t, { sequence: 2, cumulativeCost: 3n * USDC }))]);
    expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(3n * USDC - feeOf(3n * USDC));
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(3n * USDC));
  });

  it("SECURITY 13: no multicall / trusted forwarder; msg.sender-gated functions reject strangers", async () => {
    const m = await setupMarket();
    const { escrow, agent, stranger, creator, budgetId, terms } = m;
    const names: string[] = [];
    escrow.interface.forEachFunction((f) => names.push(f.name.toLowerCase()));
    for (const banned of ["multicall", "execute", "forwarder", "trustedforwarder", "delegate", "permitandcall", "batchcall"]) {
      expect(names.some((n) => n.includes(banned)), banned).to.equal(false);
    }
    expect(names).to.not.include("istrustedforwarder");
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    await expect(escrow.connect(stranger).refund(budgetId, 1n)).to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator").withArgs(budgetId, stranger.address);
    await expect(escrow.connect(stranger).requestClose(t)).to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized").withArgs(id, stranger.address);
    await expect(escrow.connect(stranger).closeByProvider(t)).to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized").withArgs(id, stranger.address);
    // ERC-2771 style spoofing: appending the creator's address to the calldata changes nothing.
    const data = escrow.interface.encodeFunctionData("refund", [budgetId, 1n]) + creator.address.slice(2);
    await expect(stranger.sendTransaction({ to: await escrow.getAddress(), data })).to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator");
  });

  it("SECURITY 14: payouts are pull-based — a frozen payout account does not block settlement", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, admin, agent, treasury, providerOwner, terms, sign } = m;
    await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address);
    const until = (await m.time.latest()) + 10 * DAY;
    await ledger.connect(admin).freeze(providerOwner.address, until, 1);
    const t = await terms();
    await openByAgent(escrow, agent, t);
    await escrow.settle([await sign(voucher(t, { sequence: 1, cumulativeCost: 4n * USDC }))]);
    const earned = 4n * USDC - feeOf(4n * USDC);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(earned);
    await expect(ledger.connect(providerOwner).withdraw(providerOwner.address, earned)).to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen").withArgs(providerOwner.address, until);
    // The treasury withdraws its fee regardless.
    await ledger.connect(treasury).withdraw(treasury.address, feeOf(4n * USDC));
    expect(await usdc.balanceOf(treasury.address)).to.equal(feeOf(4n * USDC));
    // A frozen treasury does not block settlement either.
    await ledger.connect(admin).freeze(treasury.address, until, 1);
    await escrow.closeCooperative([await sign(voucher(t, { sequence: 2, cumulativeCost: 6n * USDC, isFinal: true }))]);
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(2n * USDC));
  });

  it("SECURITY 15: the USDC address is immutable — no setter in the ABI", async () => {
    const { escrow, usdc } = await setupMarket();
    expect(await escrow.token()).to.equal(await usdc.getAddress());
    const mutators: string[] = [];
    escrow.interface.forEachFunction((f) => {
      if (!f.constant) mutators.push(f.name);
    });
    mutators.sort();
    expect(mutators).to.deep.equal(
      [
        "acceptDefaultAdminTransfer", "beginDefaultAdminTransfer", "cancelDefaultAdminTransfer", "changeDefaultAdminDelay",
        "closeByProvider", "closeCooperative", "createBudget", "createBudgetWithPermit",
        "finalize", "grantRole", "openSession", "openSessions", "refund", "renounceRole", "requestClose",
        "returnExpired", "revokeRole", "rollbackDefaultAdminDelay", "setAgentsAllowed", "setBudgetTerms", "setFee",
        "setTreasury", "settle", "slashDoubleSign", "topUp", "topUpFromBalance",
      ].sort(),
    );
    for (const n of mutators) expect(n.toLowerCase()).to.not.match(/token|usdc|registry|ledger/);
  });

  it("SECURITY 15: escrow and registry deposits revert TokenDepositMismatch when the token delivers less than sent", async () => {
    const m = await setupMarket();
    const { ethers, admin, treasury, creator, agent, providerOwner, receiptSigner } = m;
    const fot = (await ethers.deployContract("FeeOnTransferToken")) as unknown as FeeOnTransferToken;
    const suite = await deploySuite(ethers, admin, { ...DEFAULT_SUITE_OPTIONS, admin: admin.address, treasury: treasury.address, minStake: 1_000n }, await fot.getAddress());
    const escrowAddress = await suite.escrow.getAddress();
    await fot.mint(creator.address, 10_000n);
    await fot.connect(creator).approve(escrowAddress, 10_000n);
    await expect(suite.escrow.connect(creator).createBudget(10_000n, 10_000n, (await m.time.latest()) + DAY, [agent.address]))
      .to.be.revertedWithCustomError(suite.escrow, "TokenDepositMismatch")
      .withArgs(10_000n, 9_900n);
    expect(await suite.escrow.budgetCount()).to.equal(0n);
    expect(await fot.balanceOf(escrowAddress)).to.equal(0n);
    // Stakes are checked the same way.
    await expect(
      registerProvider(fot as unknown as MockUSDC, suite.registry, { owner: providerOwner, receiptSigner: receiptSigner.address, payout: providerOwner.address, stake: 1_000n }),
    )
      .to.be.revertedWithCustomError(suite.registry, "TokenDepositMismatch")
      .withArgs(1_000n, 990n);
    expect(await suite.registry.providerCount()).to.equal(0n);
  });

  describe("SECURITY 16: reentrancy through a malicious token", () => {
    async function reentrantSuite() {
      const m = await setupMarket();
      const { ethers, admin, treasury, creator, agent, providerOwner, receiptSigner } = m;
      const token = (await ethers.deployContract("ReentrantToken")) as unknown as ReentrantToken;
      const { ledger, registry, escrow } = await deploySuite(ethers, admin, { ...DEFAULT_SUITE_OPTIONS, admin: admin.address, treasury: treasury.address }, await token.getAddress());
      const providerId = await registerProvider(token as unknown as MockUSDC, registry, { owner: providerOwner, receiptSigner: receiptSigner.address, payout: providerOwner.address });
      await token.mint(creator.address, 50n * USDC);
      await token.connect(creator).approve(await escrow.getAddress(), 50n * USDC);
      await escrow.connect(creator).createBudget(50n * USDC, 10n * USDC, (await m.time.latest()) + 30 * DAY, [agent.address]);
      const t = await buildTerms(registry, { agent: agent.address, budgetId: 1n, providerId, maxSpend: 10n * USDC });
      await escrow.connect(agent).openSession(t, NO_SIGNATURE);
      const domain = escrowDomain(m.chainId, (await escrow.getAddress()) as Address) as TypedDataDomain;
      const sign = (v: Voucher) => signBoth(domain, v, agent, receiptSigner);
      return { m, token, ledger, escrow, t, sign, providerOwner };
    }

    const reentrancySelector = (escrow: ComputeEscrow) => escrow.interface.getError("ReentrancyGuardReentrantCall")!.selector;

    it("SECURITY 16: reentry into refund from the token's transfer is blocked", async () => {
      const { m, token, ledger, escrow } = await reentrantSuite();
      const escrowAddress = await escrow.getAddress();
      await token.arm(escrowAddress, escrow.interface.encodeFunctionData("refund", [1n, 1n * USDC]));
      await escrow.connect(m.creator).refund(1n, 5n * USDC);
      expect(await token.attempted()).to.equal(true);
      expect(await token.reentryReverted()).to.equal(true);
      expect(await token.reentryRevertData()).to.equal(reentrancySelector(escrow));
      expect(await token.balanceOf(m.creator.address)).to.equal(5n * USDC);
      expect((await escrow.getBudget(1n)).available).to.equal(35n * USDC);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(45n * USDC); // 35 available + 10 locked
    });

    it("SECURITY 16: settlement never calls the token, so a token cannot reenter it", async () => {
      const { m, token, ledger, escrow, t, sign, providerOwner } = await reentrantSuite();
      const first = await sign(voucher(t, { sequence: 1, cumulativeCost: 2n * USDC }));
      await token.arm(await escrow.getAddress(), escrow.interface.encodeFunctionData("settle", [[first]]));
      const ledgerTokens = await token.balanceOf(await ledger.getAddress());
      await escrow.connect(m.stranger).settle([first]);
      expect(await token.attempted()).to.equal(false);
      expect((await escrow.getSession(sessionIdOf(t))).settled).to.equal(2n * USDC);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(2n * USDC - feeOf(2n * USDC));
      expect(await token.balanceOf(await ledger.getAddress())).to.equal(ledgerTokens);
    });

    it("SECURITY 16: reentry into createBudget/topUp from a deposit pull is blocked", async () => {
      const { m, token, escrow } = await reentrantSuite();
      await token.mint(m.stranger.address, 2n * USDC);
      await token.connect(m.stranger).approve(await escrow.getAddress(), 2n * USDC);
      await token.arm(await escrow.getAddress(), escrow.interface.encodeFunctionData("returnExpired", [1n]));
      await escrow.connect(m.stranger).topUp(1n, 2n * USDC);
      expect(await token.reentryRevertData()).to.equal(reentrancySelector(escrow));
      expect((await escrow.getBudget(1n)).available).to.equal(42n * USDC);
    });

    it("SECURITY 16: reentry into the ledger from a withdrawal's transfer is blocked", async () => {
      const { m, token, ledger, escrow, t, sign, providerOwner } = await reentrantSuite();
      await escrow.connect(m.stranger).settle([await sign(voucher(t, { sequence: 1, cumulativeCost: 2n * USDC }))]);
      const earned = 2n * USDC - feeOf(2n * USDC);
      await token.arm(await ledger.getAddress(), ledger.interface.encodeFunctionData("withdraw", [providerOwner.address, 1n]));
      await ledger.connect(providerOwner).withdraw(providerOwner.address, earned);
      expect(await token.reentryRevertData()).to.equal(reentrancySelector(escrow));
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(0n);
      expect(await token.balanceOf(providerOwner.address)).to.equal(earned);
    });
  });

  it("SECURITY 17: split rounding — not an escrow concern; covered in the ledger tests (escrow pays a split once per settlement)", () => {
    // Repeated small distributions and dust accounting are properties of SplitsLedger and are tested
    // there; escrow.test.ts checks that a payout split's recipients get floor(amount × share) exactly.
  });

  describe("SECURITY 18: batch cap", () => {
    it("SECURITY 18: MAX_BATCH = 100; 0 and 101 revert EscrowInvalidBatchSize", async () => {
      const m = await setupMarket();
      const { escrow, agent, terms, sign } = m;
      expect(await escrow.MAX_BATCH()).to.equal(100n);
      const t = await terms();
      await openByAgent(escrow, agent, t);
      const signed = await sign(voucher(t, { sequence: 1, cumulativeCost: 1n, isFinal: true }));
      const many = Array.from({ length: 101 }, () => signed);
      await expect(escrow.settle(many)).to.be.revertedWithCustomError(escrow, "EscrowInvalidBatchSize").withArgs(101n, 100n);
      await expect(escrow.closeCooperative(many)).to.be.revertedWithCustomError(escrow, "EscrowInvalidBatchSize").withArgs(101n, 100n);
      await expect(escrow.settle([])).to.be.revertedWithCustomError(escrow, "EscrowInvalidBatchSize").withArgs(0n, 100n);
      const requests = Array.from({ length: 101 }, () => ({ terms: t, agentSignature: NO_SIGNATURE }));
      await expect(escrow.connect(agent).openSessions(requests)).to.be.revertedWithCustomError(escrow, "EscrowInvalidBatchSize").withArgs(101n, 100n);
      await expect(escrow.connect(agent).openSessions([])).to.be.revertedWithCustomError(escrow, "EscrowInvalidBatchSize").withArgs(0n, 100n);
    });

    it("SECURITY 18 / issue 11 §5: the worst full batches (a different provider, budget and fresh payout per session) fit Base's 2^24 gas cap", async () => {
      const m = await setupMarket();
      const { escrow, ledger, registry, usdc, agent, stranger, treasury, ethers } = m;
      const GAS_CAP = 16_777_216n;
      const batch = Number(await escrow.MAX_BATCH());
      // Every session its own provider (fresh metrics, a payout that never held a balance, its own
      // signer) and its own budget (its creator checked once each at open). One set is settled, the
      // other closed, each touching everything for the first time.
      type Session = { terms: SessionTerms; signer: BaseWallet; payout: string };
      async function freshSessions(): Promise<Session[]> {
        const sessions: Session[] = [];
        for (let i = 0; i < batch; i++) {
          const signer = Wallet.createRandom();
          const payout = Wallet.createRandom().address;
          const providerId = await registerProvider(usdc, registry, { owner: m.others[i % 8], receiptSigner: signer.address, payout });
          const budgetId = await createBudget(usdc, escrow, { creator: m.others[8 + (i % 4)], amount: 2n * USDC, agents: [agent.address] });
          sessions.push({ terms: await buildTerms(registry, { agent: agent.address, budgetId, providerId, maxSpend: 2n * USDC }), signer, payout });
        }
        return sessions;
      }
      const signed = (s: Session, v: Voucher) => Promise.all([signVoucher(agent, m.domain, v), signVoucher(s.signer, m.domain, v)]).then(([agentSignature, providerSignature]) => ({ voucher: v, agentSignature, providerSignature }));
      const open = async (sessions: Session[]) => (await escrow.connect(agent).openSessions(sessions.map((s) => ({ terms: s.terms, agentSignature: NO_SIGNATURE })))).wait();
      const toSettle = await freshSessions();
      const toClose = await freshSessions();
      const opened = await open(toSettle);
      await open(toClose);
      const settled = await (await escrow.connect(stranger).settle(await Promise.all(toSettle.map((s) => signed(s, voucher(s.terms, { sequence: 1, cumulativeCost: 2n * USDC })))))).wait();
      const closed = await (await escrow.connect(stranger).closeCooperative(await Promise.all(toClose.map((s) => signed(s, voucher(s.terms, { sequence: 1, cumulativeCost: 2n * USDC, isFinal: true })))))).wait();
      for (const [name, receipt] of [["openSessions", opened], ["settle", settled], ["closeCooperative", closed]] as const) {
        console.log(`      worst ${name}(${batch}): ${receipt!.gasUsed} gas`);
        expect(receipt!.gasUsed < GAS_CAP, name).to.equal(true);
      }
      for (const s of [...toSettle, ...toClose]) expect(await ledger.balanceOf(s.payout)).to.equal(2n * USDC - feeOf(2n * USDC));
      expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(2n * USDC) * 2n * BigInt(batch));
      expect((await ethers.provider.getBlock("latest"))!.gasLimit).to.equal(GAS_CAP);
    });
  });

  it("SECURITY 19: fee farming — open/close loops credit nothing to anyone", async () => {
    const m = await setupMarket();
    const { escrow, registry, agent, creator, providerOwner, receiptSigner, treasury, stranger, terms, sign, providerId } = m;
    const before = await snapshot(m);
    for (let i = 0; i < 3; i++) {
      const a = await terms();
      await openByAgent(escrow, agent, a);
      await escrow.connect(providerOwner).closeByProvider(a);
      const b = await terms();
      await openByAgent(escrow, agent, b);
      await escrow.closeCooperative([await sign(voucher(b, { sequence: 1, cumulativeCost: 0n, requestCount: 0, inputTokens: 0, outputTokens: 0, latencyMs: 0, isFinal: true }))]);
      const c = await terms();
      await openByAgent(escrow, agent, c);
      await escrow.connect(creator).requestClose(c);
      await m.time.increase(m.window);
      await escrow.connect(stranger).finalize(c);
      await escrow.connect(creator).refund(m.budgetId, 1n);
      await m.usdc.connect(creator).approve(await escrow.getAddress(), 1n);
      await escrow.connect(creator).topUp(m.budgetId, 1n);
    }
    expect(await snapshot(m)).to.deep.equal(before);
    for (const who of [treasury, providerOwner, receiptSigner, creator, agent, stranger]) {
      expect(await m.ledger.balanceOf(who.address)).to.equal(0n);
    }
    expect((await registry.getMetrics(providerId)).earnings).to.equal(0n);
  });

  it("SECURITY 19: metrics cannot be padded for free — a voucher must charge requestCount × minChargePerCall", async () => {
    const m = await setupMarket();
    const { escrow, registry, agent, terms, sign, providerId } = m;
    const t = await terms();
    const sessionId = await openByAgent(escrow, agent, t);
    const minimum = BigInt(t.minChargePerCall) * 50n;
    const padded = voucher(t, { sequence: 1, cumulativeCost: minimum - 1n, requestCount: 50, inputTokens: 1_000_000, outputTokens: 1_000_000, latencyMs: 1 });
    await expect(escrow.settle([await sign(padded)]))
      .to.be.revertedWithCustomError(escrow, "EscrowVoucherBelowMinCharge")
      .withArgs(sessionId, minimum, minimum - 1n);
    expect((await escrow.getSession(sessionId)).sequence).to.equal(0n);
    expect((await registry.getMetrics(providerId)).requests).to.equal(0n);
    await escrow.settle([await sign({ ...padded, cumulativeCost: minimum })]);
    expect((await registry.getMetrics(providerId)).requests).to.equal(50n);
  });

  it("SECURITY 20: every privileged function rejects non-holders", async () => {
    const m = await setupMarket();
    const { escrow, registry, ledger, admin, agent, stranger, creator, budgetId, terms, providerOwner } = m;
    const adminRole = await escrow.DEFAULT_ADMIN_ROLE();
    for (const caller of [stranger, creator, agent, providerOwner]) {
      await expect(escrow.connect(caller).setFee(100)).to.be.revertedWithCustomError(escrow, "AccessControlUnauthorizedAccount").withArgs(caller.address, adminRole);
      await expect(escrow.connect(caller).setTreasury(caller.address)).to.be.revertedWithCustomError(escrow, "AccessControlUnauthorizedAccount").withArgs(caller.address, adminRole);
      await expect(escrow.connect(caller).grantRole(adminRole, caller.address)).to.be.revertedWithCustomError(escrow, "AccessControlEnforcedDefaultAdminRules");
    }
    // The admin role only changes hands in two steps (AccessControlDefaultAdminRules), even for the admin.
    await expect(escrow.connect(admin).grantRole(adminRole, stranger.address)).to.be.revertedWithCustomError(escrow, "AccessControlEnforcedDefaultAdminRules");
    for (const caller of [stranger, creator, agent, providerOwner]) {
      await expect(escrow.connect(caller).beginDefaultAdminTransfer(caller.address)).to.be.revertedWithCustomError(escrow, "AccessControlUnauthorizedAccount").withArgs(caller.address, adminRole);
      await expect(escrow.connect(caller).changeDefaultAdminDelay(0)).to.be.revertedWithCustomError(escrow, "AccessControlUnauthorizedAccount").withArgs(caller.address, adminRole);
    }
    await expect(escrow.connect(admin).setFee(1001)).to.be.revertedWithCustomError(escrow, "EscrowFeeTooHigh").withArgs(1001n, 1000n);
    await expect(escrow.connect(admin).setFee(1000)).to.emit(escrow, "FeeSet").withArgs(1000n);
    await expect(escrow.connect(admin).setTreasury("0x0000000000000000000000000000000000000000")).to.be.revertedWithCustomError(escrow, "EscrowZeroAddress");
    await expect(escrow.connect(admin).setTreasury(stranger.address)).to.emit(escrow, "TreasurySet").withArgs(stranger.address);
    // Budget creator-only functions, as a stranger and as the budget's own agent.
    for (const caller of [stranger, agent]) {
      await expect(escrow.connect(caller).refund(budgetId, 1n)).to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator").withArgs(budgetId, caller.address);
      await expect(escrow.connect(caller).setAgentsAllowed(budgetId, [caller.address], true)).to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator").withArgs(budgetId, caller.address);
      await expect(escrow.connect(caller).setBudgetTerms(budgetId, 1n, (await m.time.latest()) + DAY)).to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator").withArgs(budgetId, caller.address);
    }
    // Provider-only close, consumer-only close.
    const t = await terms();
    const id = await openByAgent(escrow, agent, t);
    for (const caller of [stranger, agent, creator]) {
      await expect(escrow.connect(caller).closeByProvider(t)).to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized").withArgs(id, caller.address);
    }
    for (const caller of [stranger, providerOwner]) {
      await expect(escrow.connect(caller).requestClose(t)).to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized").withArgs(id, caller.address);
    }
    // What only the bound escrow may do in the registry (the admin included), and the ledger's compliance role.
    for (const caller of [stranger, admin]) {
      await expect(registry.connect(caller).recordSettlement(1n, { requests: 1n, inputTokens: 1n, outputTokens: 1n, latencyMs: 1n, earnings: 1n })).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(caller.address);
      await expect(registry.connect(caller).slash(1n)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(caller.address);
      await expect(ledger.connect(caller).freeze(stranger.address, (await m.time.latest()) + DAY, 1)).to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount");
      await expect(ledger.connect(caller).unfreeze(stranger.address, 1)).to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount");
    }
  });

  it("SECURITY 21: griefing — zero amounts, dust sessions, expired budgets and deadlines past expiry are refused", async () => {
    const m = await setupMarket();
    const { escrow, usdc, agent, creator, stranger, budgetId, terms } = m;
    const now = await m.time.latest();
    await usdc.mint(creator.address, 10n * USDC);
    await usdc.connect(creator).approve(await escrow.getAddress(), 10n * USDC);
    await expect(escrow.connect(creator).createBudget(0n, 1n, now + DAY, [agent.address])).to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount").withArgs(0n);
    await expect(escrow.connect(creator).createBudget(1n, 0n, now + DAY, [agent.address])).to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount").withArgs(0n);
    await expect(escrow.connect(creator).createBudget(1n, 1n, now, [agent.address])).to.be.revertedWithCustomError(escrow, "EscrowInvalidExpiry");
    await expect(escrow.connect(creator).createBudget(1n, 1n, 2n ** 32n, [agent.address])).to.be.revertedWithCustomError(escrow, "EscrowInvalidExpiry");
    await expect(escrow.connect(creator).createBudget(1n, 1n, now + DAY, ["0x0000000000000000000000000000000000000000"])).to.be.revertedWithCustomError(escrow, "EscrowZeroAddress");
    await expect(escrow.connect(stranger).topUp(budgetId, 0n)).to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount").withArgs(0n);
    await expect(escrow.connect(stranger).topUp(99n, 1n)).to.be.revertedWithCustomError(escrow, "EscrowUnknownBudget").withArgs(99n);
    await expect(escrow.connect(creator).refund(budgetId, 0n)).to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount").withArgs(0n);
    // Dust sessions: zero or below one minimum charge (10).
    const zero = await terms({ maxSpend: 0n });
    await expect(escrow.connect(agent).openSession(zero, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowSessionTooSmall").withArgs(0n, 10n);
    const dust = await terms({ maxSpend: 9n });
    await expect(escrow.connect(agent).openSession(dust, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowSessionTooSmall").withArgs(9n, 10n);
    await openByAgent(escrow, agent, await terms({ maxSpend: 10n }));
    // Deadlines: in the past, or beyond the budget's expiry.
    const { expiry } = await escrow.getBudget(budgetId);
    const late = await terms({ deadline: Number(expiry) + 1 });
    await expect(escrow.connect(agent).openSession(late, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowInvalidDeadline").withArgs(BigInt(late.deadline), expiry);
    const past = await terms({ deadline: now });
    await expect(escrow.connect(agent).openSession(past, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowInvalidDeadline");
    // More than the budget holds.
    const greedy = await terms({ maxSpend: 20n * USDC });
    await escrow.connect(creator).refund(budgetId, 85n * USDC);
    await expect(escrow.connect(agent).openSession(greedy, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowInsufficientBudget");
    // Expired budget: no sessions, no top-ups.
    const atExpiry = await terms({ deadline: Number(expiry) });
    await m.time.increaseTo(expiry);
    await expect(escrow.connect(agent).openSession(atExpiry, NO_SIGNATURE)).to.be.revertedWithCustomError(escrow, "EscrowBudgetExpired").withArgs(budgetId, expiry);
    await usdc.mint(stranger.address, 1n);
    await usdc.connect(stranger).approve(await escrow.getAddress(), 1n);
    await expect(escrow.connect(stranger).topUp(budgetId, 1n)).to.be.revertedWithCustomError(escrow, "EscrowBudgetExpired").withArgs(budgetId, expiry);
  });

  it("conservation after a mixed scenario: escrow's ledger balance == Σ available + Σ open locks; ledger USDC == Σ balances", async () => {
    const m = await setupMarket();
    const { escrow, usdc, ledger, registry, agent, creator, stranger, others, providerOwner, receiptSigner, treasury, terms, sign } = m;
    const signer2 = others[1];
    const provider2 = await registerProvider(usdc, registry, { owner: others[0], receiptSigner: signer2.address, payout: others[2].address });
    const budget2 = await createBudget(usdc, escrow, { creator: others[3], amount: 30n * USDC, agents: [others[4].address] });
    const sessions: SessionTerms[] = [];
    const open = async (t: SessionTerms, who = agent) => { await openByAgent(escrow, who, t); sessions.push(t); return t; };
    const s1 = await open(await terms({ maxSpend: 7n * USDC }));
    const s2 = await open(await terms({ providerId: provider2, maxSpend: 9n * USDC }));
    const s3 = await open(await terms({ maxSpend: 3n * USDC }));
    const s4 = await open(await buildTerms(registry, { agent: others[4].address, budgetId: budget2, providerId: provider2, maxSpend: 11n * USDC }), others[4]);
    const s5 = await open(await terms({ maxSpend: 4n * USDC + 3n }));
    await escrow.settle([
      await sign(voucher(s1, { sequence: 1, cumulativeCost: 1_234_567n })),
      await signBoth(m.domain, voucher(s2, { sequence: 2, cumulativeCost: 2_000_001n }), agent, signer2),
    ]);
    await escrow.closeCooperative([await sign(voucher(s3, { sequence: 1, cumulativeCost: 2_999_999n, isFinal: true }))]);
    await escrow.settle([await signBoth(m.domain, voucher(s4, { sequence: 1, cumulativeCost: 5n * USDC }), others[4], signer2)]);
    await escrow.connect(others[3]).requestClose(s4);
    await escrow.connect(creator).refund(m.budgetId, 10n * USDC);
    await usdc.mint(stranger.address, 3n * USDC);
    await usdc.connect(stranger).approve(await escrow.getAddress(), 3n * USDC);
    await escrow.connect(stranger).topUp(budget2, 3n * USDC);
    await escrow.connect(providerOwner).closeByProvider(s5);
    await m.time.increase(m.window + 1);
    await escrow.finalize(s4);
    await ledger.connect(treasury).withdraw(treasury.address, 1000n);

    let expected = 0n;
    for (const b of [m.budgetId, budget2]) expected += (await escrow.getBudget(b)).available;
    for (const t of sessions) {
      const state = await escrow.getSession(sessionIdOf(t));
      if (state.claimEnd > 1n) expected += t.maxSpend - state.settled;
    }
    expect(await ledger.balanceOf(await escrow.getAddress())).to.equal(expected);
    expect(await usdc.balanceOf(await escrow.getAddress())).to.equal(0n);
    let credited = 0n;
    for (const a of [providerOwner, receiptSigner, treasury, others[2], stranger, creator, agent]) credited += await ledger.balanceOf(a.address);
    for (const c of [escrow, registry, m.marketplace]) credited += await ledger.balanceOf(await c.getAddress());
    expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(credited);
    // Per budget: deposited == spent + refunded + remaining (budget 1: 100 deposited, 10 refunded).
    const spent1 = 1_234_567n + 2_000_001n + 2_999_999n;
    expect((await escrow.getBudget(m.budgetId)).available + 7n * USDC - 1_234_567n + 9n * USDC - 2_000_001n).to.equal(100n * USDC - 10n * USDC - spent1);
    expect((await escrow.getBudget(budget2)).available).to.equal(33n * USDC - 5n * USDC);
  });
});

/** `v` with field `key` changed (for `terms`, its salt). */
function tweak(v: Voucher, key: keyof Voucher): Voucher {
  const value = v[key];
  let changed: Voucher[keyof Voucher];
  if (key === "terms") changed = { ...v.terms, salt: v.terms.salt + 1n };
  else if (typeof value === "boolean") changed = !value;
  else if (typeof value === "bigint") changed = value + 1n;
  else if (typeof value === "number") changed = value + 1;
  else changed = (`0x${(BigInt(value as Hex) ^ 1n).toString(16).padStart(64, "0")}`) as Hex;
  return { ...v, [key]: changed };
}
