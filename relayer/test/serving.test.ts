import assert from "node:assert/strict";
import { openTestDatabase } from "./test-database.ts";
import { describe, it } from "node:test";
import { INITIAL_STATE, sessionIdOf, type SessionTerms } from "@agentmesh/sdk";
import type { Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { DEFAULT_LIMITS, ReceiptSigners, type RelayerContext } from "../src/context.ts";
import { servingRefusal } from "../src/serving.ts";
import { ChainIndex } from "../src/store/chain-index.ts";
import { Repository } from "../src/store/repository.ts";
import { registeredProvider, sessionTerms } from "./fixtures.ts";

const [heldKey, otherHeldKey] = [generatePrivateKey(), generatePrivateKey()];
const held = privateKeyToAccount(heldKey).address;
const otherHeld = privateKeyToAccount(otherHeldKey).address;
const foreign = privateKeyToAccount(generatePrivateKey()).address;
/** The chain's clock in these tests: the head's timestamp, seen at WALL. */
const NOW = 1_900_000_000;
const WALL = 5_000_000;
const MARGIN = DEFAULT_LIMITS.chainTimeMarginSeconds;

const provider = (receiptSigner: Address, active = true) => registeredProvider({ receiptSigner, active });

/**
 * A relayer holding two signer keys, with one session of provider 1 (signer `held`) on budget 1,
 * deadline an hour from NOW, its budget expiring in a day; the chain head seen at WALL.
 */
async function setup(overrides: Partial<SessionTerms> = {}) {
  const database = await openTestDatabase();
  const repo = new Repository(database);
  const chainIndex = new ChainIndex(database);
  const terms = sessionTerms({ receiptSigner: held, maxSpend: 2_000_000n, deadline: NOW + 3600, salt: 1n, ...overrides });
  const id = sessionIdOf(terms);
  await repo.insertSession({ id, agent: terms.agent, providerId: terms.providerId, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
  await chainIndex.putProvider(provider(terms.receiptSigner), 10);
  await chainIndex.putBudget({ id: 1, creator: terms.agent, available: 0n, perSessionLimit: 10n ** 7n, expiry: NOW + 86_400 }, 10);
  await chainIndex.openSession({ id, budgetId: 1, agent: terms.agent, providerId: 1, maxSpend: terms.maxSpend, claimEnd: terms.deadline + 86_400 }, 10);
  chainIndex.observeHead(10, NOW, WALL);
  const ctx = { repo, chainIndex, receiptSigners: new ReceiptSigners([heldKey, otherHeldKey]), limits: DEFAULT_LIMITS } as unknown as RelayerContext;
  const refusal = async (now = NOW) => {
    const error = await servingRefusal(ctx, (await repo.getSession(id))!, now);
    return error && [error.status, error.code];
  };
  return { repo, chainIndex, terms, id, refusal };
}

describe("serving gate", () => {
  it("serves a session open on-chain, before its deadline and its budget's expiry, whose provider is active with the session's signer", async () => {
    const { refusal } = await setup();
    assert.equal(await refusal(), undefined);
  });

  it("reads the chain's clock from the indexed head, moved on by the wall clock since it was seen", async () => {
    const { chainIndex } = await setup();
    assert.equal(chainIndex.chainTime(WALL), NOW);
    assert.equal(chainIndex.chainTime(WALL + 10_999), NOW + 10);
    chainIndex.observeHead(9, NOW - 100, WALL + 20_000); // an older head answering late changes nothing
    assert.equal(chainIndex.chainTime(WALL + 20_000), NOW + 20);
    chainIndex.observeHead(11, NOW + 86_400, WALL + 20_000); // the chain's clock jumped (a test moved it)
    assert.equal(chainIndex.chainTime(WALL + 21_000), NOW + 86_401);
  });

  it("stops at the session's deadline by the chain's clock, with the margin to spare (410 session_expired)", async () => {
    const { refusal, terms } = await setup();
    assert.equal(await refusal(terms.deadline - MARGIN), undefined, "the deadline is the last second it may be served");
    assert.deepEqual(await refusal(terms.deadline - MARGIN + 1), [410, "session_expired"]);
  });

  it("stops at the budget's expiry, which the creator may bring forward (410 budget_expired)", async () => {
    const { refusal, chainIndex } = await setup();
    await chainIndex.putBudget({ id: 1, creator: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", available: 0n, perSessionLimit: 1n, expiry: NOW + 600 }, 11);
    assert.equal(await refusal(NOW + 600 - MARGIN - 1), undefined);
    assert.deepEqual(await refusal(NOW + 600 - MARGIN), [410, "budget_expired"], "expired at its expiry second, as the escrow counts");
  });

  it("refuses a closing session (409 session_closing), whether the index or the session's record says so", async () => {
    const first = await setup();
    await first.chainIndex.requestClose(first.id, first.terms.agent, 12);
    assert.deepEqual(await first.refusal(), [409, "session_closing"]);
    const second = await setup();
    await second.repo.followChain({ id: second.id, settled: 0n, sequence: 0, closeRequested: true, finalized: false, closeTx: null });
    assert.deepEqual(await second.refusal(), [409, "session_closing"]);
  });

  it("refuses a finalized session first (410 session_finalized), closed here or on-chain", async () => {
    const first = await setup();
    await first.chainIndex.requestClose(first.id, first.terms.agent, 12);
    await first.chainIndex.finalizeSession(first.id, 0n, 13);
    assert.deepEqual(await first.refusal(NOW + 10 ** 6), [410, "session_finalized"]);
    const second = await setup();
    await second.repo.followChain({ id: second.id, settled: 0n, sequence: 0, closeRequested: false, finalized: true, closeTx: null });
    assert.deepEqual(await second.refusal(), [410, "session_finalized"]);
  });

  it("refuses when the provider is inactive or unknown (409 provider_inactive)", async () => {
    const { refusal, chainIndex } = await setup();
    await chainIndex.putProvider(provider(held, false), 12);
    assert.deepEqual(await refusal(), [409, "provider_inactive"]);
    const unknown = await setup({ providerId: 2 });
    assert.deepEqual(await unknown.refusal(), [409, "provider_inactive"]);
  });

  it("refuses once the provider's registered signer is not the session's, even another key held here (409 signer_rotated)", async () => {
    const { refusal, chainIndex } = await setup();
    await chainIndex.putProvider(provider(otherHeld), 12);
    assert.deepEqual(await refusal(), [409, "signer_rotated"]);
    await chainIndex.putProvider(provider(foreign), 13);
    assert.deepEqual(await refusal(), [409, "signer_rotated"]);
    await chainIndex.putProvider(provider(held), 14);
    assert.equal(await refusal(), undefined, "rotated back: it serves again");
  });

  it("refuses a session whose signer's key is not held here (409 receipt_signer_unavailable)", async () => {
    const { refusal } = await setup({ receiptSigner: foreign });
    assert.deepEqual(await refusal(), [409, "receipt_signer_unavailable"]);
  });

  it("serves a session or budget not indexed yet (opened a moment ago): the deadline still bounds it", async () => {
    const { repo, chainIndex, id, terms } = await setup();
    const fresh = new ChainIndex(await openTestDatabase());
    await fresh.putProvider(provider(held), 10);
    fresh.observeHead(10, NOW, WALL);
    const ctx = { repo, chainIndex: fresh, receiptSigners: new ReceiptSigners([heldKey]), limits: DEFAULT_LIMITS } as unknown as RelayerContext;
    assert.equal(await servingRefusal(ctx, (await repo.getSession(id))!, NOW), undefined);
    assert.equal((await servingRefusal(ctx, (await repo.getSession(id))!, terms.deadline))?.code, "session_expired");
    assert.equal((await chainIndex.session(id))?.finalized, false);
  });

  it("answers OpenAI-shaped, naming the session, and tells OpenAI clients not to retry", async () => {
    const { repo, chainIndex, id } = await setup();
    await chainIndex.requestClose(id, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", 12);
    const ctx = { repo, chainIndex, receiptSigners: new ReceiptSigners([heldKey]), limits: DEFAULT_LIMITS } as unknown as RelayerContext;
    const error = (await servingRefusal(ctx, (await repo.getSession(id))!, NOW))!;
    assert.equal(error.toJSON().error.type, "invalid_request_error");
    assert.ok(error.message.includes(id));
    assert.deepEqual(error.headers, { "x-should-retry": "false" });
  });
});
