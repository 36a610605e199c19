/**
 * Mutation check of the contract tests (SECURITY.md: "A test that cannot fail proves nothing: each
 * must fail against a deliberately broken version of the code").
 *
 * Every mutant below is one deliberate bug: a `find` string (which must occur exactly once in its
 * file, so the list cannot silently rot) and its `replace`ment, plus the tests that must catch it.
 * For each mutant the check applies it in a throw-away copy of the project, compiles, runs the named
 * tests and restores the file. A mutant is KILLED when the build succeeds and the test command then
 * exits non-zero with failing tests; SURVIVED when the tests pass (EQUIVALENT instead if the mutant is
 * documented as one no input can tell apart from the original); INVALID when it does not compile, the
 * tests cannot run, no test matches, or a run times out (never counted as killed).
 *
 * The real tree is never touched: the working tree is copied (without node_modules, artifacts, cache,
 * coverage, types, .git, dist and .agentmesh) into fresh temporary sandboxes whose `node_modules`
 * are symlinks to the project's own. Each sandbox first builds and passes the unmutated tests (the
 * baseline); mutants are then spread over `--jobs` sandboxes running side by side. Mocha mutants
 * build only the contracts (`hardhat build --no-tests`, ~15 s); Solidity-test mutants also rebuild
 * the Solidity tests (~75 s with viaIR). Tests then run with `--no-compile`.
 *
 * Usage: `node scripts/mutation-check.ts [--jobs=N] [--timeout=SECONDS] [--keep] [--list] [id ...]`
 * - ids: run only these mutants (default: all).
 * - `--jobs`: parallel sandboxes (default: min(2, available CPUs)).
 * - `--timeout`: limit of each build or test command, in seconds (default 600).
 * - `--keep`: keep the sandboxes (their paths are printed). Each mutant's full output is always kept
 *   in the printed logs directory.
 * - `--list`: validate the mutants against the sources and list them without running anything.
 *
 * Output: progress lines, a result table, and as the very last line one JSON object
 * `{"mutants":N,"killed":K,"survived":[ids],"equivalent":[ids],"invalid":[ids]}`. Exit code 0 when
 * no mutant survived or was invalid, 1 otherwise, 2 on a usage error, a rotten mutant or a failing
 * baseline.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Which tests must catch a mutant. */
export interface TestSelection {
  /** Mocha title pattern (a regular expression), run as `hardhat test mocha --grep "<pattern>"`. */
  readonly grep?: string;
  /** Also run the Solidity fuzz and invariant tests (`hardhat test solidity`, about a minute). */
  readonly solidity?: boolean;
}

/** One deliberate bug. */
export interface Mutant {
  /**
   * Short unique name, `s<n>-…` for SECURITY.md attack n, `inv-…` for an invariant, `mkt-…` for an
   * agent marketplace property SECURITY.md does not list.
   */
  readonly id: string;
  /** The bug, in words. */
  readonly description: string;
  /** Path of the mutated file, relative to the project root. */
  readonly file: string;
  /** Exact text to replace; must occur exactly once in `file`. */
  readonly find: string;
  /** Its replacement. */
  readonly replace: string;
  /** The tests expected to fail against the mutant. */
  readonly tests: TestSelection;
  /**
   * Why no test can kill this mutant (it behaves like the original for every input anyone can
   * produce). Such a mutant that survives is reported as EQUIVALENT, not as a test gap.
   */
  readonly equivalent?: string;
}

/** Outcome of one mutant. */
export type Status = "KILLED" | "SURVIVED" | "EQUIVALENT" | "INVALID";

/** What running one mutant produced. */
export interface MutantResult {
  readonly mutant: Mutant;
  readonly status: Status;
  /** For KILLED, the failing tests; for INVALID, why. */
  readonly detail: string;
  /** Wall-clock seconds (build and tests). */
  readonly seconds: number;
  /** Full output of the mutant's commands. */
  readonly log: string;
}

const ESCROW = "contracts/ComputeEscrow.sol";
const MARKETPLACE = "contracts/AgentMarketplace.sol";
const FLOW_LIB = "contracts/libraries/FlowOfFundsLib.sol";
const LEDGER = "contracts/SplitsLedger.sol";
const REGISTRY = "contracts/ProviderRegistry.sol";
const SESSION_LIB = "contracts/libraries/SessionLib.sol";
const TOKEN_PULL_LIB = "contracts/libraries/TokenPullLib.sol";

/** The mutants: at least one per SECURITY.md attack where a code mutation makes sense, plus invariants. */
export const MUTANTS: readonly Mutant[] = [
  {
    id: "s1-equal-sequence-accepted",
    description: "a voucher with the same sequence as the settled one is accepted again",
    file: ESCROW,
    find: "if (next.sequence <= previous.sequence) revert",
    replace: "if (next.sequence < previous.sequence) revert",
    tests: { grep: "SECURITY 1:|SECURITY 7:" },
  },
  {
    id: "s1-pays-cumulative",
    description: "settlement pays the voucher's cumulative cost instead of the difference to what was settled",
    file: ESCROW,
    find: "uint256 paid = next.settled - previous.settled;",
    replace: "uint256 paid = next.settled;",
    tests: { grep: "SECURITY 1:" },
  },
  {
    id: "s2-reopen-finalized",
    description: "the terms of a finalized session can be opened again (its vouchers become live again)",
    file: ESCROW,
    find: "if (state.claimEnd != 0) revert EscrowSessionExists(sessionId);",
    replace: "",
    tests: { grep: "SECURITY 2:" },
  },
  {
    id: "s2-salt-not-in-session-id",
    description: "the session id does not hash the salt: sessions of the same agent/provider pair collide",
    file: SESSION_LIB,
    find: "result := keccak256(ptr, 0x1a0)",
    replace: "result := keccak256(ptr, 0x180)",
    tests: { grep: "SECURITY 2:" },
  },
  {
    id: "s3-domain-version",
    description: "the escrow's EIP-712 domain differs from the one the SDK signs for (version 2)",
    file: ESCROW,
    find: 'EIP712("AgentMesh Escrow", "1")',
    replace: 'EIP712("AgentMesh Escrow", "2")',
    tests: { grep: "SECURITY 3:" },
  },
  {
    id: "s4-typehash-field-renamed",
    description: "the Voucher typehash string names a field differently from the SDK (latencyMs -> latency)",
    file: SESSION_LIB,
    find: "uint32 latencyMs,bytes32 receiptHead",
    replace: "uint32 latency,bytes32 receiptHead",
    tests: { grep: "SECURITY 4:" },
  },
  {
    id: "s4-isfinal-not-hashed",
    description: "the voucher struct hash leaves out its last field (isFinal is not signed)",
    file: SESSION_LIB,
    find: "calldatacopy(add(ptr, 0x40), add(voucher, 0x180), 0x100)",
    replace: "calldatacopy(add(ptr, 0x40), add(voucher, 0x180), 0xe0)",
    tests: { grep: "SECURITY 4:" },
  },
  {
    id: "s5-no-low-s-check",
    description: "signatures are recovered with raw ecrecover, without OpenZeppelin's low-s check",
    file: ESCROW,
    find: "(signer,,) = ECDSA.tryRecover(digest, signature.r, signature.yParityAndS);",
    replace:
      "signer = ecrecover(digest, uint8(uint256(signature.yParityAndS) >> 255) + 27, signature.r, " +
      "signature.yParityAndS & bytes32(type(uint256).max >> 1));",
    tests: { grep: "SECURITY 5:" },
    equivalent:
      "an ERC-2098 compact signature cannot carry s >= 2^255, and a valid s in (n/2, 2^255) needs " +
      "s within 2^127 of n/2 (probability ~2^-128 per signature); every other high-s twin already " +
      "recovers a wrong signer, and nothing is keyed on signature bytes",
  },
  {
    id: "s6-open-accepts-zero-recovery",
    description: "a gasless open accepts a signature that recovers to address(0)",
    file: ESCROW,
    find: "_recover(_hashTypedDataV4(sessionId), agentSignature) != terms.agent) {",
    replace:
      "_recover(_hashTypedDataV4(sessionId), agentSignature) != terms.agent\n" +
      "            && _recover(_hashTypedDataV4(sessionId), agentSignature) != address(0)) {",
    tests: { grep: "SECURITY 6:" },
  },
  {
    id: "s6-whitelist-skipped",
    description: "sessions open for agents that are not (or no longer) whitelisted on the budget",
    file: ESCROW,
    find: "if (!_allowedAgents[budgetId][terms.agent]) revert EscrowAgentNotAllowed(budgetId, terms.agent);",
    replace: "",
    tests: { grep: "SECURITY 6:" },
  },
  {
    id: "s6-provider-sig-skipped",
    description: "settlement does not check the provider's (receipt signer's) signature",
    file: ESCROW,
    find: "if (_recover(digest, signed.providerSignature) != receiptSigner) {",
    replace: "if (false) {",
    tests: { grep: "SECURITY 6:" },
  },
  {
    id: "s7-request-count-may-decrease",
    description: "a newer voucher may lower requestCount (the monotonic check on that counter is dropped)",
    file: ESCROW,
    find: "next.settled < previous.settled || next.requestCount < previous.requestCount",
    replace: "next.settled < previous.settled",
    tests: { grep: "SECURITY 1:|SECURITY 7:" },
  },
  {
    id: "s7-request-close-extends",
    description: "a repeated close request moves the challenge window forward",
    file: ESCROW,
    find: "if (windowEnd < claimEnd) state.claimEnd = uint32(claimEnd = windowEnd);",
    replace: "state.claimEnd = uint32(claimEnd = windowEnd);",
    tests: { grep: "SECURITY 7:" },
  },
  {
    id: "s8-settle-at-window-end",
    description: "a voucher still settles at exactly the end of the claim window",
    file: ESCROW,
    find: "if (block.timestamp >= previous.claimEnd) revert",
    replace: "if (block.timestamp > previous.claimEnd) revert",
    tests: { grep: "SECURITY 8:" },
  },
  {
    id: "s8-finalize-one-second-early",
    description: "finalize works at end - 1, while the provider may still post a newer voucher",
    file: ESCROW,
    find: "if (block.timestamp < state.claimEnd) revert EscrowClaimWindowOpen",
    replace: "if (block.timestamp + 1 < state.claimEnd) revert EscrowClaimWindowOpen",
    tests: { grep: "SECURITY 8:" },
  },
  {
    id: "s9-lock-not-deducted",
    description: "opening a session does not take its lock out of the budget: the creator can refund it",
    file: ESCROW,
    find: "budget.available = uint128(available - maxSpend);",
    replace: "budget.available = uint128(available);",
    tests: { grep: "SECURITY 9:" },
  },
  {
    id: "s9-settle-requires-whitelisted-agent",
    description: "settlement re-checks the whitelist, so the creator voids signed vouchers by removing the agent",
    file: ESCROW,
    find: "address agent = terms.agent;",
    replace:
      "address agent = terms.agent;\n" +
      "        if (!_allowedAgents[terms.budgetId][agent]) revert EscrowAgentNotAllowed(terms.budgetId, agent);",
    tests: { grep: "SECURITY 9:" },
  },
  {
    id: "s10-partial-redemption",
    description: "a voucher above the lock is paid up to the lock and consumed instead of reverting",
    file: ESCROW,
    find: "if (next.settled > maxSpend) revert EscrowVoucherExceedsLock(sessionId, maxSpend, next.settled);",
    replace: "if (next.settled > maxSpend) next.settled = uint64(maxSpend);",
    tests: { grep: "SECURITY 10:" },
  },
  {
    id: "s11-slash-any-sequence",
    description: "two vouchers with different sequences (a normal update) count as a double-sign proof",
    file: ESCROW,
    find: "if (SessionLib.id(second.terms) != sessionId || first.sequence != second.sequence) {",
    replace: "if (SessionLib.id(second.terms) != sessionId) {",
    tests: { grep: "SECURITY 11" },
  },
  {
    id: "s11-pending-unstake-escapes",
    description: "slashing takes only the active stake; a pending unstake escapes it",
    file: REGISTRY,
    find: "amount = uint256(provider.stake) + provider.pendingUnstake;\n        provider.stake = 0;\n        provider.pendingUnstake = 0;",
    replace: "amount = provider.stake;\n        provider.stake = 0;",
    tests: { grep: "SECURITY 11" },
  },
  {
    id: "s12-payout-to-relayer",
    description: "the provider's earnings are credited to whoever submits the settlement",
    file: ESCROW,
    find: "(payees[payeeCount], amounts[payeeCount++]) = (tally.payout, earnings);",
    replace: "(payees[payeeCount], amounts[payeeCount++]) = (msg.sender, earnings);",
    tests: { grep: "SECURITY 12:" },
  },
  {
    id: "s13-trusts-appended-sender",
    description: "creator-only functions trust an ERC-2771-style sender appended to the calldata",
    file: ESCROW,
    find: "if (budget.creator != msg.sender) revert EscrowNotBudgetCreator(budgetId, msg.sender);",
    replace:
      "if (budget.creator != msg.sender && budget.creator != address(bytes20(msg.data[msg.data.length - 20:]))) {\n" +
      "            revert EscrowNotBudgetCreator(budgetId, msg.sender);\n        }",
    tests: { grep: "SECURITY 13:" },
  },
  {
    id: "s14-frozen-payee-blocks-payment",
    description: "a payment to a frozen account reverts, so one frozen payee blocks the whole settlement",
    file: LEDGER,
    find: "if (payee == address(0)) revert LedgerInvalidReceiver(payee);",
    replace: "if (payee == address(0) || _accounts[payee].frozenUntil > block.timestamp) revert LedgerInvalidReceiver(payee);",
    tests: { grep: "SECURITY 14" },
  },
  {
    id: "s14-frozen-can-withdraw",
    description: "a frozen account can still withdraw (the frozen check is skipped)",
    file: LEDGER,
    find: "if (current.frozenUntil > block.timestamp) revert LedgerAccountFrozen(account, current.frozenUntil);",
    replace: "",
    tests: { grep: "SECURITY 14" },
  },
  {
    id: "s15-deposit-check-removed",
    description: "deposits are not checked against the balance actually received (fee-on-transfer tokens)",
    file: TOKEN_PULL_LIB,
    find: "if (received != amount) revert TokenDepositMismatch(amount, received);",
    replace: "",
    tests: { grep: "SECURITY 15" },
  },
  {
    id: "s15-escrow-deposit-unchecked",
    description: "budget deposits are pulled with a plain transferFrom, without the balance-change check",
    file: ESCROW,
    find: "_TOKEN.pullExact(msg.sender, amount);\n        _LEDGER.pay(address(this), amount);",
    replace: "_TOKEN.safeTransferFrom(msg.sender, address(this), amount);\n        _LEDGER.pay(address(this), amount);",
    tests: { grep: "SECURITY 15" },
  },
  {
    id: "s16-settle-not-nonreentrant",
    description: "settle lacks nonReentrant",
    file: ESCROW,
    find: "function settle(SignedVoucher[] calldata vouchers) external nonReentrant {",
    replace: "function settle(SignedVoucher[] calldata vouchers) external {",
    tests: { grep: "SECURITY 16" },
    equivalent:
      "settlement moves ledger credits only: it calls the registry and the ledger, neither of which calls a " +
      "token or any other contract, so no outside code runs during it to re-enter (the guard is defence in depth; " +
      "'settlement never calls the token' shows the token cannot)",
  },
  {
    id: "s17-per-payment-floor",
    description: "split credits are floored per payment instead of on the lifetime total (starves small shares)",
    file: LEDGER,
    find: "part = afterwards * share / SHARE_SCALE - before * share / SHARE_SCALE;",
    replace: "part = amount * share / SHARE_SCALE;",
    tests: { grep: "SECURITY 17" },
  },
  {
    id: "s18-batch-cap-off-by-one",
    description: "batches of MAX_BATCH + 1 sessions are accepted",
    file: ESCROW,
    find: "if (size == 0 || size > MAX_BATCH)",
    replace: "if (size == 0 || size > MAX_BATCH + 1)",
    tests: { grep: "SECURITY 18: MAX_BATCH" },
  },
  {
    id: "s19-finalize-twice",
    description: "_finalize does not mark the session finalized: it can return the lock again and keep settling",
    file: ESCROW,
    find: "state.claimEnd = FINALIZED;",
    replace: "",
    tests: { grep: "SECURITY 19:|SECURITY 2:" },
  },
  {
    id: "s19-min-charge-removed",
    description: "vouchers need not charge requestCount x minChargePerCall (free metric padding)",
    file: ESCROW,
    find: "if (next.settled < minimum) revert EscrowVoucherBelowMinCharge(sessionId, minimum, next.settled);",
    replace: "",
    tests: { grep: "SECURITY 19:" },
  },
  {
    id: "s20-fee-above-cap",
    description: "the fee cap is 100% instead of MAX_FEE_BPS (10%)",
    file: ESCROW,
    find: "if (feeBps_ > MAX_FEE_BPS) revert",
    replace: "if (feeBps_ > _BPS) revert",
    tests: { grep: "SECURITY 20:" },
  },
  {
    id: "s20-registry-owner-check-removed",
    description: "provider-owner-only registry functions accept any caller",
    file: REGISTRY,
    find: "if (owner != msg.sender) revert RegistryNotProviderOwner(providerId, msg.sender);",
    replace: "",
    tests: { grep: "SECURITY 20" },
  },
  {
    id: "s21-expired-budget-opens",
    description: "the expired-budget check in _open is dropped",
    file: ESCROW,
    find: "if (block.timestamp >= expiry) revert EscrowBudgetExpired(budgetId, expiry);",
    replace: "",
    tests: { grep: "SECURITY 21:" },
  },
  {
    id: "s21-dust-session",
    description: "sessions whose lock is below one minimum charge can be opened",
    file: ESCROW,
    find: "if (maxSpend == 0 || maxSpend < quote.minChargePerCall) {",
    replace: "if (maxSpend == 0) {",
    tests: { grep: "SECURITY 21:" },
  },
  {
    id: "inv-finalize-returns-settled",
    description: "_finalize returns the whole lock to the budget, including what was already paid out",
    file: ESCROW,
    find: "uint256 returned = terms.maxSpend - settled;",
    replace: "uint256 returned = terms.maxSpend;",
    tests: { solidity: true },
  },
  {
    id: "inv-fee-not-paid",
    description: "the protocol fee is withheld from the provider but never paid to the treasury",
    file: ESCROW,
    find: "if (fees != 0) (payees[payeeCount], amounts[payeeCount++]) = (_treasury, fees);",
    replace: "",
    tests: { solidity: true },
  },
  {
    id: "inv-split-rounds-up",
    description: "split credits round up: the ledger credits more than it received",
    file: LEDGER,
    find: "part = afterwards * share / SHARE_SCALE - before * share / SHARE_SCALE;",
    replace:
      "part = (afterwards * share + SHARE_SCALE - 1) / SHARE_SCALE - (before * share + SHARE_SCALE - 1) / SHARE_SCALE;",
    tests: { solidity: true },
  },
  {
    id: "inv-unstake-without-delay",
    description: "a pending unstake can be withdrawn before its delay has passed",
    file: REGISTRY,
    find: "if (amount == 0 || block.timestamp < availableAt) revert",
    replace: "if (amount == 0) revert",
    tests: { solidity: true },
  },
  // Agent marketplace, and the ledger's allowance path it pays through (payFromBalance → withdrawFrom).
  {
    id: "mkt-referrer-overwritten",
    description: "an account's referrer is not recorded once: a later setReferrer, listing or payment replaces it",
    file: MARKETPLACE,
    find: "if (referrer == address(0) || referrer == account || current != address(0) || _LEDGER.isCustodian(referrer)) {",
    replace: "if (referrer == address(0) || referrer == account || _LEDGER.isCustodian(referrer)) {",
    tests: { grep: "referrers: recorded once, never changed" },
  },
  {
    id: "mkt-referral-of-rest",
    description: "the payer's referral ppm is taken of what the fixed amounts leave, not of the whole call",
    file: FLOW_LIB,
    find: "payerReward = _min(amount * terms.payerReferrerShare / SHARE_SCALE, left);",
    replace: "payerReward = _min(left * terms.payerReferrerShare / SHARE_SCALE, left);",
    tests: { grep: "the OpenAgents example|splitPayment and hashFlow are pure previews" },
  },
  {
    id: "mkt-shares-of-whole-payment",
    description: "shares are taken of the whole call instead of what fixed amounts and referral rewards leave",
    file: FLOW_LIB,
    find: "uint256 base = left;",
    replace: "uint256 base = amount;",
    tests: { grep: "credits each recipient to the unit|a Split recipient passes its part through the split" },
  },
  {
    id: "s12-payee-reward-to-caller-referrer",
    description: "the agent owner's referral reward goes to the referrer of whoever calls distribute",
    file: MARKETPLACE,
    find: "_finishTally(batch, perCall, _referrers[owner]);",
    replace: "_finishTally(batch, perCall, _referrers[msg.sender]);",
    tests: { grep: "the OpenAgents example" },
  },
  {
    id: "mkt-chain-count-only",
    description: "distribute checks only the pending count of the re-hashed list: altered or reordered payments pass",
    file: MARKETPLACE,
    find: "if (head != chain.head) revert MarketplaceChainMismatch(agentId, chain.head, head);",
    replace:
      "if (PaymentChainLib.pending(head) != PaymentChainLib.pending(chain.head)) {\n" +
      "            revert MarketplaceChainMismatch(agentId, chain.head, head);\n        }",
    tests: { grep: "the chain admits exactly the pending payments" },
  },
  {
    id: "mkt-payment-address-not-create2",
    description: "the payment address clone is deployed with CREATE, not CREATE2 salted by its owner",
    file: MARKETPLACE,
    find: "Clones.cloneDeterministic(_PAYMENT_ADDRESS_IMPLEMENTATION, salt);",
    replace: "Clones.clone(_PAYMENT_ADDRESS_IMPLEMENTATION);",
    tests: { grep: "lists at the predicted payment address|CREATE2 clones salted by \\(owner" },
  },
  {
    id: "mkt-paused-agent-paid",
    description: "payments to a paused or retired agent are accepted (only unknown agents are refused)",
    file: MARKETPLACE,
    find: "if (status != AgentStatus.Active) {",
    replace: "if (status == AgentStatus.None) {",
    tests: { grep: "refuses payments below the price, to paused, retired or unknown agents" },
  },
  {
    id: "s20-update-terms-by-non-owner",
    description: "updateTerms checks only that the agent exists: anyone can reprice it and redirect its flow",
    file: MARKETPLACE,
    find: "Listing storage listing = _ownedListing(agentId);\n        bytes32 flowHash = _checkTerms(pricePerCall, flow);",
    replace: "Listing storage listing = _listing(agentId);\n        bytes32 flowHash = _checkTerms(pricePerCall, flow);",
    tests: { grep: "every owner action reverts for anyone else" },
  },
  {
    id: "s20-withdraw-from-without-allowance",
    description: "withdrawFrom does not check the spender's allowance (it wraps below zero instead)",
    file: LEDGER,
    find: "if (allowed < amount) revert LedgerInsufficientAllowance(account, msg.sender, allowed, amount);",
    replace: "",
    tests: { grep: "needs the ledger allowance and balance" },
  },
  {
    id: "s14-frozen-withdraws-via-allowance",
    description: "transferFrom has its own copy of the debit without the freeze check: a frozen payer still pays",
    file: LEDGER,
    find: "        _spendAllowance(account, amount);\n        _transfer(account, to, amount);",
    replace:
      "        _spendAllowance(account, amount);\n" +
      "        if (amount == 0) revert LedgerZeroAmount();\n" +
      "        Account storage held = _accounts[account];\n" +
      "        uint256 balance = held.balance;\n" +
      "        if (balance < amount) revert LedgerInsufficientBalance(account, balance, amount);\n" +
      "        held.balance = uint128(balance - amount);\n" +
      "        _credit(to, amount);\n" +
      "        emit Transferred(account, to, amount);",
    tests: { grep: "a frozen payer cannot pay" },
  },
  {
    id: "mkt-budget-not-topped-up",
    description: "a Budget recipient's part is credited to the budget creator's ledger balance instead of topping up the budget",
    file: MARKETPLACE,
    find: "if (block.timestamp < budget.expiry) _ESCROW.topUpFromBalance(recipient.budgetId, amount);\n            else credits.add(budget.creator, amount);",
    replace: "credits.add(budget.creator, amount);",
    tests: { grep: "escrow budget recipient funds the agent's compute|a flow paying only budgets" },
  },
  {
    id: "s21-budget-topup-at-expiry",
    description: "a Budget recipient is still topped up at its expiry second, where topUp reverts and blocks the distribution",
    file: MARKETPLACE,
    find: "if (block.timestamp < budget.expiry) _ESCROW.topUp",
    replace: "if (block.timestamp <= budget.expiry) _ESCROW.topUp",
    tests: { grep: "topped up until its expiry" },
  },
  // Issue 11: custody in the ledger, signer-bound slashing, governance, token pause and blacklist.
  {
    id: "s1-eager-split-fan-out",
    description: "paying a split fans it out to every leaf at once (issue 11 §1: 256 payments to 64-leaf referrer splits exceed the gas cap)",
    file: LEDGER,
    find: "        // Safe cast: checked against uint128 above; the addition itself is checked.\n        _accounts[payee].balance += uint128(amount);",
    replace:
      "        if (_splits[payee].depth != 0) _distributeSplit(payee, amount);\n" +
      "        // Safe cast: checked against uint128 above; the addition itself is checked.\n" +
      "        else _accounts[payee].balance += uint128(amount);",
    tests: { grep: "issue 11 §1" },
  },
  {
    id: "s18-batch-of-200",
    description: "MAX_BATCH is 200: the worst batch (every voucher for a different provider) exceeds Base's 2^24 gas cap",
    file: ESCROW,
    find: "uint256 public constant MAX_BATCH = 100;",
    replace: "uint256 public constant MAX_BATCH = 200;",
    tests: { grep: "SECURITY 18 / issue 11" },
  },
  {
    id: "s22-slash-unopened-session",
    description: "a double-sign proof may concern a session that was never opened",
    file: ESCROW,
    find: "if (_sessions[sessionId].claimEnd == 0) revert EscrowUnknownSession(sessionId);",
    replace: "",
    tests: { grep: "SECURITY 22" },
  },
  {
    id: "s22-slash-any-signer",
    description: "a double-sign proof only needs one signer for both states, not the session's receipt signer",
    file: ESCROW,
    find: "address signer = terms.receiptSigner;",
    replace: "address signer = _recover(firstDigest, firstSignature);",
    tests: { grep: "SECURITY 22" },
  },
  {
    id: "s22-settle-with-current-signer",
    description: "settlement checks the provider's current signer instead of the session's: a rotation breaks open sessions",
    file: ESCROW,
    find: "address receiptSigner = terms.receiptSigner;",
    replace: "(, address receiptSigner,) = _REGISTRY.settlementParties(terms.providerId);",
    tests: { grep: "SECURITY 22" },
  },
  {
    id: "s22-open-signer-unchecked",
    description: "a session may name any receipt signer, not the provider's registered one",
    file: ESCROW,
    find: "if (quote.receiptSigner != terms.receiptSigner) {",
    replace: "if (false) {",
    tests: { grep: "SECURITY 22" },
  },
  {
    id: "s22-tiny-stake-unslashable",
    description: "a zero reporter reward is still paid, so slashing a stake of 1-9 units reverts",
    file: ESCROW,
    find: "if (reward != 0) (payees[count], amounts[count++]) = (msg.sender, reward);",
    replace: "(payees[count], amounts[count++]) = (msg.sender, reward);",
    tests: { grep: "SECURITY 22" },
  },
  {
    id: "s23-fee-not-fixed-at-open",
    description: "settlement applies the current fee instead of the fee in the session's terms",
    file: ESCROW,
    find: "tally.fees += paid * terms.feeBps / _BPS;",
    replace: "tally.fees += paid * _feeBps / _BPS;",
    tests: { grep: "issue 11 §3" },
  },
  {
    id: "s23-fee-unchecked-at-open",
    description: "a session may carry any fee in its terms",
    file: ESCROW,
    find: "if (terms.feeBps != _feeBps) revert EscrowFeeMismatch(_feeBps, terms.feeBps);",
    replace: "",
    tests: { grep: "issue 11 §3" },
  },
  {
    id: "s23-admin-slashes",
    description: "the registry admin may slash without a proof",
    file: REGISTRY,
    find: "if (msg.sender != _escrow) revert RegistryNotEscrow(msg.sender);",
    replace: "if (msg.sender != _escrow && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) revert RegistryNotEscrow(msg.sender);",
    tests: { grep: "issue 11 §3|SECURITY 11" },
  },
  {
    id: "s23-escrow-rebindable",
    description: "the deployer can bind another escrow (and so another slasher) later",
    file: REGISTRY,
    find: "if (msg.sender != _DEPLOYER || _escrow != address(0)) revert RegistryEscrowLocked();",
    replace: "if (msg.sender != _DEPLOYER) revert RegistryEscrowLocked();",
    tests: { grep: "issue 11 §3" },
  },
  {
    id: "s23-custodian-freezable",
    description: "the compliance role may freeze a custodian (all budgets, stakes or pending payments at once)",
    file: LEDGER,
    find: "if (held.custodian) revert LedgerCustodianNotFreezable(account);",
    replace: "",
    tests: { grep: "issue 11 §3" },
  },
  {
    id: "s24-return-expired-sends-usdc",
    description: "returnExpired sends USDC to the creator, so a blacklisted creator or a paused token blocks it",
    file: ESCROW,
    find: "_LEDGER.transfer(creator, amount);",
    replace: "_LEDGER.withdraw(creator, amount);",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s24-slash-sends-usdc",
    description: "slashing moves the stake as USDC, so a paused token delays it past the unstake delay",
    file: REGISTRY,
    find: "if (amount != 0) _LEDGER.transfer(msg.sender, amount);",
    replace: "if (amount != 0) _LEDGER.withdraw(msg.sender, amount);",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s24-blacklist-ignored",
    description: "the ledger lets an account USDC blacklists move its balance",
    file: LEDGER,
    find: "if (_TOKEN.isBlacklisted(account)) revert LedgerAccountBlacklisted(account);",
    replace: "",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s24-custodians-not-exempt",
    description: "custodians are subject to freezes and the blacklist: USDC blacklisting the escrow stops settlement",
    file: LEDGER,
    find: "if (!current.custodian) {",
    replace: "if (true) {",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s24-restricted-creator-opens",
    description: "a blacklisted or frozen creator's budget still opens sessions (laundering through a colluding provider)",
    file: ESCROW,
    find: "if (budgetId != checkedBudget && !_LEDGER.canMove(budget.creator)) {",
    replace: "if (false) {",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s24-unattributed-sweep-blocks",
    description: "distribute requires moving the payment address's stray USDC: a paused token or blacklisted address stalls it",
    file: MARKETPLACE,
    find: "try IAgentPaymentAddress(paymentAddress).deposit(amount) {}\n        catch {\n            return 0;\n        }",
    replace: "IAgentPaymentAddress(paymentAddress).deposit(amount);",
    tests: { grep: "issue 11 §4" },
  },
  {
    id: "s5-challenge-window-zero",
    description: "the escrow accepts a challenge window of 0",
    file: ESCROW,
    find: "if (challengeWindow_ < MIN_CHALLENGE_WINDOW) {",
    replace: "if (false) {",
    tests: { grep: "issue 11 §5" },
  },
  {
    id: "s25-signed-transfer-any-caller",
    description: "a signed ledger transfer is not bound to its caller: a marketplace payment can be replayed on the ledger first",
    file: LEDGER,
    find: "TRANSFER_AUTHORIZATION_TYPEHASH, account, to, amount, msg.sender, memo, _useNonce(account), deadline",
    replace: "TRANSFER_AUTHORIZATION_TYPEHASH, account, to, amount, to, memo, _useNonce(account), deadline",
    tests: { grep: "issue 11 §5" },
  },
  {
    id: "mkt-payment-address-by-id",
    description: "payment addresses are salted by the agent id: USDC sent ahead goes to whoever lists at that id first",
    file: MARKETPLACE,
    find: "bytes32 salt = _paymentSalt(msg.sender);",
    replace: "bytes32 salt = bytes32(agentId);",
    tests: { grep: "issue 11 §5" },
  },
  {
    id: "inv-payment-not-taken",
    description: "payFromBalance records a payment without taking the payer's balance",
    file: MARKETPLACE,
    find: "_acceptPayment(agentId, msg.sender, amount);\n        _LEDGER.transferFrom(msg.sender, address(this), amount);",
    replace: "_acceptPayment(agentId, msg.sender, amount);",
    tests: { solidity: true },
  },
];

/**
 * Top-level entries never copied into a sandbox: build output, git, and local runtime state
 * (node_modules is skipped at every depth and symlinked instead).
 */
const EXCLUDED_TOP_LEVEL = new Set(["node_modules", "artifacts", "cache", "coverage", "types", ".git", "dist", ".agentmesh"]);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

/** Parsed command line. */
interface Options {
  readonly ids: readonly string[];
  readonly jobs: number;
  readonly timeoutSeconds: number;
  readonly keep: boolean;
  readonly list: boolean;
}

/** What one command produced. */
interface RunOutput {
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly output: string;
}

/** Thrown for problems that must stop the whole check (bad arguments, rotten mutants, bad baseline). */
class FatalError extends Error {}

function parseArgs(argv: readonly string[]): Options {
  const ids: string[] = [];
  let jobs = Math.max(1, Math.min(2, availableParallelism()));
  let timeoutSeconds = 600;
  let keep = false;
  let list = false;
  for (const arg of argv) {
    const [flag, value] = arg.split("=", 2) as [string, string | undefined];
    if (flag === "--jobs" && value !== undefined && /^[1-9]\d*$/.test(value)) jobs = Number(value);
    else if (flag === "--timeout" && value !== undefined && /^[1-9]\d*$/.test(value)) timeoutSeconds = Number(value);
    else if (arg === "--keep") keep = true;
    else if (arg === "--list") list = true;
    else if (arg.startsWith("-")) throw new FatalError(`unknown option ${arg}`);
    else ids.push(arg);
  }
  return { ids, jobs, timeoutSeconds, keep, list };
}

/** Number of non-overlapping occurrences of `needle` in `haystack`. */
function occurrences(haystack: string, needle: string): number {
  if (needle.length === 0) return 0;
  let count = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) ++count;
  return count;
}

/** Checks every mutant against the real sources; throws listing every problem. */
function validate(mutants: readonly Mutant[]): void {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const m of mutants) {
    if (seen.has(m.id)) problems.push(`${m.id}: duplicate id`);
    seen.add(m.id);
    if (m.find === m.replace) problems.push(`${m.id}: replace equals find`);
    if (m.tests.grep === undefined && m.tests.solidity !== true) problems.push(`${m.id}: no tests named`);
    const file = path.join(ROOT, m.file);
    if (!existsSync(file)) {
      problems.push(`${m.id}: ${m.file} does not exist`);
      continue;
    }
    const count = occurrences(readFileSync(file, "utf8"), m.find);
    if (count !== 1) problems.push(`${m.id}: find text occurs ${count} times in ${m.file} (must be exactly once)`);
  }
  if (problems.length > 0) throw new FatalError(`rotten mutants:\n  ${problems.join("\n  ")}`);
}

/** Path of the Hardhat CLI installed for `cwd` (its package's `bin`), run with this Node. */
function hardhatCli(cwd: string): string {
  const packageDir = path.join(cwd, "node_modules", "hardhat");
  const { bin } = JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8")) as { bin: Record<string, string> };
  const relative = bin["hardhat"];
  if (relative === undefined) throw new FatalError(`no hardhat binary in ${packageDir}`);
  return path.join(packageDir, relative);
}

/** Process groups of the commands still running, killed if the check is interrupted. */
const RUNNING = new Set<number>();

/** Kills the process group led by `pid`, if it is still there. */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Runs `args` with Hardhat's CLI in `cwd`, in its own process group, killed after `timeoutSeconds`. */
function hardhat(cwd: string, args: readonly string[], timeoutSeconds: number): Promise<RunOutput> {
  const cli = hardhatCli(cwd);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
    });
    const chunks: Buffer[] = [];
    if (child.pid !== undefined) RUNNING.add(child.pid);
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid);
    }, timeoutSeconds * 1000);
    const finish = (code: number | null) => {
      clearTimeout(timer);
      if (child.pid !== undefined) RUNNING.delete(child.pid);
      const output = Buffer.concat(chunks).toString("utf8").replace(ANSI, "");
      resolve({ code, timedOut, output: `$ hardhat ${args.join(" ")}\n${output}` });
    };
    child.on("error", (error) => {
      chunks.push(Buffer.from(String(error)));
      finish(null);
    });
    child.on("close", finish);
  });
}

/** Passing and failing counts and failing test titles of a mocha or Solidity test run's output. */
function testSummary(output: string): { passing: number; failing: number; failed: string[] } {
  const passing = Number(/^\s*(\d+) passing/m.exec(output)?.[1] ?? 0);
  const failing = Number(/^\s*(\d+) failing/m.exec(output)?.[1] ?? 0);
  const progress = output.split(/^\s*\d+ passing/m)[0] ?? "";
  const failed = [...progress.matchAll(/^\s+\d+\) (.+)$/gm)].map((match) => match[1]!.trim());
  return { passing, failing, failed: [...new Set(failed)] };
}

/** Copies the project into a new temporary directory and links its node_modules; returns the path. */
function createSandbox(parent: string, index: number): string {
  const dir = path.join(parent, `sandbox-${index}`);
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (source) => {
      const relative = path.relative(ROOT, source);
      if (relative === "") return true;
      const parts = relative.split(path.sep);
      return !(parts.length === 1 && EXCLUDED_TOP_LEVEL.has(parts[0]!)) && !parts.includes("node_modules");
    },
  });
  // node_modules of the root and of each workspace directory, symlinked (never copied or written).
  const linkFrom = (relative: string) => {
    const source = path.join(ROOT, relative, "node_modules");
    if (existsSync(source) && existsSync(path.join(dir, relative))) {
      symlinkSync(source, path.join(dir, relative, "node_modules"), "dir");
    }
  };
  linkFrom(".");
  for (const entry of readdirSync(ROOT, { withFileTypes: true })) {
    if (entry.isDirectory() && !EXCLUDED_TOP_LEVEL.has(entry.name)) linkFrom(entry.name);
  }
  return dir;
}

/** Builds a sandbox: the contracts, and also the Solidity tests if `withTests`. */
async function build(sandbox: string, withTests: boolean, timeoutSeconds: number, typechain: boolean): Promise<RunOutput> {
  const args = ["build", ...(withTests ? [] : ["--no-tests"]), ...(typechain ? [] : ["--no-typechain"])];
  return hardhat(sandbox, args, timeoutSeconds);
}

/** Runs the tests `tests` names, without recompiling; returns each command's output. */
async function runTests(sandbox: string, tests: TestSelection, timeoutSeconds: number): Promise<RunOutput[]> {
  const outputs: RunOutput[] = [];
  if (tests.grep !== undefined) {
    outputs.push(await hardhat(sandbox, ["test", "mocha", "--no-compile", "--grep", tests.grep], timeoutSeconds));
  }
  if (tests.solidity === true) {
    outputs.push(await hardhat(sandbox, ["test", "solidity", "--no-compile"], timeoutSeconds));
  }
  return outputs;
}

/** Builds and tests the unmutated sandbox: every selected test must pass before mutants mean anything. */
async function baseline(sandbox: string, tests: TestSelection, options: Options): Promise<void> {
  const built = await build(sandbox, tests.solidity === true, options.timeoutSeconds, true);
  if (built.code !== 0) throw new FatalError(`baseline build failed in ${sandbox}:\n${built.output}`);
  for (const run of await runTests(sandbox, tests, options.timeoutSeconds)) {
    const summary = testSummary(run.output);
    if (run.code !== 0 || summary.failing !== 0 || summary.passing === 0) {
      throw new FatalError(`baseline tests do not pass in ${sandbox}:\n${run.output}`);
    }
  }
}

/** Applies `mutant` in `sandbox`, builds, runs its tests, restores the file and classifies the outcome. */
async function runMutant(sandbox: string, mutant: Mutant, options: Options): Promise<MutantResult> {
  const started = Date.now();
  const file = path.join(sandbox, mutant.file);
  const original = readFileSync(file, "utf8");
  if (occurrences(original, mutant.find) !== 1) throw new FatalError(`${mutant.id}: find text not unique in the sandbox`);
  const logs: string[] = [];
  const result = (status: Status, detail: string): MutantResult => ({
    mutant,
    status,
    detail,
    seconds: Math.round((Date.now() - started) / 1000),
    log: logs.join("\n"),
  });
  writeFileSync(file, original.replace(mutant.find, () => mutant.replace));
  try {
    const built = await build(sandbox, mutant.tests.solidity === true, options.timeoutSeconds, false);
    logs.push(built.output);
    if (built.timedOut) return result("INVALID", "build timed out");
    if (built.code !== 0) return result("INVALID", "does not compile");
    const failed: string[] = [];
    for (const run of await runTests(sandbox, mutant.tests, options.timeoutSeconds)) {
      logs.push(run.output);
      const summary = testSummary(run.output);
      if (run.timedOut) return result("INVALID", "tests timed out");
      if (run.code === 0 && summary.failing === 0) {
        if (summary.passing === 0) return result("INVALID", "no test matched");
        continue;
      }
      if (summary.failing === 0) return result("INVALID", `tests could not run (exit ${String(run.code)})`);
      failed.push(...(summary.failed.length > 0 ? summary.failed : [`${summary.failing} failing test(s)`]));
    }
    if (failed.length === 0) {
      return mutant.equivalent === undefined ? result("SURVIVED", "") : result("EQUIVALENT", mutant.equivalent);
    }
    return result("KILLED", failed.length === 1 ? failed[0]! : `${failed[0]!} (+${failed.length - 1} more)`);
  } finally {
    writeFileSync(file, original);
  }
}

/** Pads or cuts `text` to `width` characters. */
function cell(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const unknown = options.ids.filter((id) => !MUTANTS.some((m) => m.id === id));
  if (unknown.length > 0) throw new FatalError(`unknown mutant ids: ${unknown.join(", ")}`);
  validate(MUTANTS);
  const selected = options.ids.length === 0 ? MUTANTS : MUTANTS.filter((m) => options.ids.includes(m.id));
  if (options.list) {
    for (const m of selected) {
      const tests = [m.tests.grep === undefined ? "" : `mocha --grep "${m.tests.grep}"`, m.tests.solidity === true ? "solidity" : ""];
      console.log(`${cell(m.id, 38)} ${cell(m.file, 38)} ${tests.filter(Boolean).join(" + ")}\n    ${m.description}`);
    }
    console.log(`${selected.length} mutants, all valid`);
    return 0;
  }

  const started = Date.now();
  const parent = mkdtempSync(path.join(tmpdir(), "agentmesh-mutation-"));
  const logDir = path.join(parent, "logs");
  mkdirSync(logDir);
  const jobs = Math.min(options.jobs, selected.length);
  const removeSandboxes = () => {
    if (options.keep) return;
    for (let i = 0; i < jobs; ++i) rmSync(path.join(parent, `sandbox-${i}`), { recursive: true, force: true });
  };
  const interrupt = () => {
    for (const pid of RUNNING) killGroup(pid);
    removeSandboxes();
    process.exit(130);
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    console.log(`mutation check: ${selected.length} mutants, ${jobs} sandbox(es) under ${parent}`);
    const sandboxes = Array.from({ length: jobs }, (_, i) => createSandbox(parent, i));
    // Baselines: the sandboxes build side by side; the mocha suite and the Solidity tests must pass.
    const needMocha = selected.some((m) => m.tests.grep !== undefined);
    const needSolidity = selected.some((m) => m.tests.solidity === true);
    const baselineTests: TestSelection[] =
      jobs === 1
        ? [{ grep: needMocha ? "." : undefined, solidity: needSolidity }]
        : [{ grep: needMocha ? "." : undefined }, { solidity: needSolidity }];
    await Promise.all(
      sandboxes.map((sandbox, i) => {
        const tests = baselineTests[i] ?? {};
        return tests.grep === undefined && tests.solidity !== true
          ? build(sandbox, false, options.timeoutSeconds, true).then((b) => {
              if (b.code !== 0) throw new FatalError(`baseline build failed in ${sandbox}:\n${b.output}`);
            })
          : baseline(sandbox, tests, options);
      }),
    );
    console.log(`baseline passes (${Math.round((Date.now() - started) / 1000)} s)`);

    // Longest first: Solidity mutants (full build plus fuzzing) before the mocha ones.
    const queue = [...selected].sort((a, b) => Number(b.tests.solidity === true) - Number(a.tests.solidity === true));
    const results = new Map<string, MutantResult>();
    await Promise.all(
      sandboxes.map(async (sandbox) => {
        for (let mutant = queue.shift(); mutant !== undefined; mutant = queue.shift()) {
          const r = await runMutant(sandbox, mutant, options);
          results.set(mutant.id, r);
          writeFileSync(path.join(logDir, `${mutant.id}.log`), r.log);
          console.log(`[${results.size}/${selected.length}] ${r.status.padEnd(10)} ${mutant.id} (${r.seconds} s) ${r.detail}`);
        }
      }),
    );

    const ordered = selected.map((m) => results.get(m.id)!);
    console.log("");
    console.log(`${cell("id", 36)} ${cell("status", 10)} ${cell("s", 4)} ${cell("killed by / why", 70)} description`);
    console.log(`${"-".repeat(36)} ${"-".repeat(10)} ${"-".repeat(4)} ${"-".repeat(70)} ${"-".repeat(11)}`);
    for (const r of ordered) {
      console.log(`${cell(r.mutant.id, 36)} ${cell(r.status, 10)} ${cell(String(r.seconds), 4)} ${cell(r.detail, 70)} ${r.mutant.description}`);
    }
    const killed = ordered.filter((r) => r.status === "KILLED").length;
    const survived = ordered.filter((r) => r.status === "SURVIVED").map((r) => r.mutant.id);
    const equivalent = ordered.filter((r) => r.status === "EQUIVALENT").map((r) => r.mutant.id);
    const invalid = ordered.filter((r) => r.status === "INVALID").map((r) => r.mutant.id);
    console.log("");
    console.log(`total ${Math.round((Date.now() - started) / 1000)} s; logs in ${logDir}`);
    console.log(JSON.stringify({ mutants: ordered.length, killed, survived, equivalent, invalid }));
    return survived.length === 0 && invalid.length === 0 ? 0 : 1;
  } finally {
    for (const pid of RUNNING) killGroup(pid);
    removeSandboxes();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  if (!(error instanceof FatalError)) throw error;
  console.error(`mutation check: ${error.message}`);
  process.exitCode = 2;
}
