// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IProviderRegistry} from "./IProviderRegistry.sol";
import {ISplitsLedger} from "./ISplitsLedger.sol";

/// @title IComputeEscrow
/// @notice Budgets funded by wallet users, drawn by whitelisted agents through metered sessions
/// (payment channels) with providers, settled by the agents' signed cumulative vouchers.
/// @dev A session's immutable terms are not stored: its id is their EIP-712 struct hash, and every
/// call that touches a session carries them. Only the mutable state lives in storage (one slot).
/// Timestamps are uint32 seconds (until 2106); per-session counters are uint32; amounts are atomic USDC.
///
/// Money. Budgets are the escrow's balance in the SplitsLedger (the escrow is a custodian there).
/// Settling, closing, finalizing and slashing move ledger credits only, never tokens, so a paused USDC or
/// a USDC blacklist on the escrow or the ledger never stops a signed claim from being paid in time. Only
/// `refund` sends USDC out (to the creator's wallet); `returnExpired`, the path anyone can take, credits
/// the creator's ledger balance instead and therefore always succeeds.
///
/// What a session fixes at open (all inside the terms the agent signs): the prices, the provider's
/// receipt signer, which alone can co-sign its states and be slashed for them (rotating the signer in the
/// registry affects only sessions opened afterwards), and the protocol fee taken from its settlements.
///
/// Whitelist. Removing an agent from a budget stops it opening sessions; a session it already opened
/// still settles the vouchers it signed (they pay for calls already served). To end such a session the
/// creator calls `requestClose`.
interface IComputeEscrow {
    /// @notice A session's terms, fixed at open and signed by the agent.
    /// @param agent The key that signs vouchers.
    /// @param budgetId The budget it draws from.
    /// @param providerId The provider it pays.
    /// @param modelId The provider's model.
    /// @param receiptSigner Snapshot of the provider's receipt signer: the only key that co-signs its states.
    /// @param inputPricePer1K Snapshot of the model's input price (must equal the registry's at open).
    /// @param outputPricePer1K Snapshot of the model's output price.
    /// @param minChargePerCall Snapshot of the provider's minimum charge per call.
    /// @param feeBps Snapshot of the protocol fee (basis points) its settlements pay.
    /// @param maxSpend Amount locked from the budget; no voucher may pay more in total.
    /// @param deadline Last second the agent may be served; vouchers settle until deadline + challenge window.
    /// @param salt Any value that makes the session id unique.
    struct SessionTerms {
        address agent;
        uint64 budgetId;
        uint32 providerId;
        uint32 modelId;
        address receiptSigner;
        uint32 inputPricePer1K;
        uint32 outputPricePer1K;
        uint32 minChargePerCall;
        uint16 feeBps;
        uint64 maxSpend;
        uint32 deadline;
        uint64 salt;
    }

    /// @notice The cumulative state of a session, signed by the agent and co-signed by the provider.
    /// @dev The terms are a nested EIP-712 struct, so the signed message commits to the session id
    /// (their struct hash) while wallets show what the session is; settlement sends them only once.
    /// @param terms The session's terms.
    /// @param sequence Increases with every new state.
    /// @param cumulativeCost Total owed to the provider so far.
    /// @param requestCount Calls served so far.
    /// @param inputTokens Input tokens so far.
    /// @param outputTokens Output tokens so far.
    /// @param latencyMs Sum of the calls' latencies.
    /// @param receiptHead Hash of the latest receipt of the session's receipt chain.
    /// @param isFinal True only on the state both parties sign to close the session.
    struct Voucher {
        SessionTerms terms;
        uint32 sequence;
        uint64 cumulativeCost;
        uint32 requestCount;
        uint32 inputTokens;
        uint32 outputTokens;
        uint32 latencyMs;
        bytes32 receiptHead;
        bool isFinal;
    }

    /// @notice An ECDSA signature in the 64-byte form of ERC-2098 (viem's `CompactSignature`):
    /// the top bit of `yParityAndS` is the recovery parity, the rest is `s` (lower half-order only).
    /// Fixed-size signatures keep every settlement record static, which is cheaper calldata on an L2.
    struct CompactSignature {
        bytes32 r;
        bytes32 yParityAndS;
    }

    /// @notice A voucher with both signatures, as settlement takes it.
    struct SignedVoucher {
        Voucher voucher;
        CompactSignature agentSignature;
        CompactSignature providerSignature;
    }

    /// @notice A session to open on the agent's behalf.
    struct OpenRequest {
        SessionTerms terms;
        CompactSignature agentSignature;
    }

    /// @notice A budget.
    struct Budget {
        address creator;
        uint32 expiry;
        uint128 available;
        uint128 perSessionLimit;
    }

    /// @notice The mutable state of a session (one storage slot).
    /// @dev claimEnd is 0 for unknown sessions and FINALIZED for finalized ones.
    struct SessionState {
        uint64 settled;
        uint32 sequence;
        uint32 requestCount;
        uint32 inputTokens;
        uint32 outputTokens;
        uint32 latencyMs;
        uint32 claimEnd;
    }

    /*//////////////////////////////////////////////////////////////
                                ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when no budget has id `budgetId`.
    error EscrowUnknownBudget(uint256 budgetId);
    /// @notice Thrown when `caller` is not the creator of budget `budgetId`.
    error EscrowNotBudgetCreator(uint256 budgetId, address caller);
    /// @notice Thrown when an amount is zero or out of range.
    error EscrowInvalidAmount(uint256 amount);
    /// @notice Thrown when budget `budgetId` holds `available` unallocated but `needed` was asked.
    error EscrowInsufficientBudget(uint256 budgetId, uint256 available, uint256 needed);
    /// @notice Thrown when a session would lock more than the budget's per-session limit.
    error EscrowSessionLimitExceeded(uint256 budgetId, uint256 limit, uint256 requested);
    /// @notice Thrown when an expiry is not in the future.
    error EscrowInvalidExpiry(uint256 expiry);
    /// @notice Thrown when budget `budgetId` expired at `expiry`.
    error EscrowBudgetExpired(uint256 budgetId, uint256 expiry);
    /// @notice Thrown when returning funds of budget `budgetId` before its expiry.
    error EscrowBudgetNotExpired(uint256 budgetId, uint256 expiry);
    /// @notice Thrown when a session deadline is in the past or after its budget's expiry.
    error EscrowInvalidDeadline(uint256 deadline, uint256 expiry);
    /// @notice Thrown when `agent` is not whitelisted on budget `budgetId`.
    error EscrowAgentNotAllowed(uint256 budgetId, address agent);
    /// @notice Thrown when an address argument is zero.
    error EscrowZeroAddress();
    /// @notice Thrown when a session with these terms was already opened.
    error EscrowSessionExists(bytes32 sessionId);
    /// @notice Thrown when the session terms' prices differ from the registry's current ones.
    error EscrowPriceMismatch(uint256 providerId, uint256 modelId);
    /// @notice Thrown when the session terms name another receipt signer than the provider's current one.
    error EscrowReceiptSignerMismatch(uint256 providerId, address current, address inTerms);
    /// @notice Thrown when the session terms carry another fee than the current protocol fee.
    error EscrowFeeMismatch(uint256 current, uint256 inTerms);
    /// @notice Thrown when a budget's creator may not move its funds (frozen, or blacklisted by the token).
    error EscrowCreatorRestricted(uint256 budgetId, address creator);
    /// @notice Thrown when a session would lock zero or less than one minimum charge.
    error EscrowSessionTooSmall(uint256 maxSpend, uint256 minChargePerCall);
    /// @notice Thrown when a signature does not recover to `expectedSigner`.
    error EscrowInvalidSignature(bytes32 sessionId, address expectedSigner);
    /// @notice Thrown when the session `sessionId` is unknown or already finalized.
    error EscrowSessionNotOpen(bytes32 sessionId);
    /// @notice Thrown when vouchers of session `sessionId` can no longer be settled (claim window over).
    error EscrowClaimWindowOver(bytes32 sessionId, uint256 claimEnd);
    /// @notice Thrown when finalizing session `sessionId` before its claim window ends.
    error EscrowClaimWindowOpen(bytes32 sessionId, uint256 claimEnd);
    /// @notice Thrown when a voucher's sequence is not above the settled one.
    error EscrowVoucherStale(bytes32 sessionId, uint256 settledSequence, uint256 sequence);
    /// @notice Thrown when a newer voucher lowers a cumulative total.
    error EscrowVoucherNotMonotonic(bytes32 sessionId);
    /// @notice Thrown when a voucher's cumulative cost exceeds the session's locked amount.
    error EscrowVoucherExceedsLock(bytes32 sessionId, uint256 maxSpend, uint256 cumulativeCost);
    /// @notice Thrown when a voucher charges less than its request count times the minimum charge
    /// (so activity metrics cannot be padded for free).
    error EscrowVoucherBelowMinCharge(bytes32 sessionId, uint256 minimum, uint256 cumulativeCost);
    /// @notice Thrown when a cooperative close carries a voucher that is not marked final.
    error EscrowVoucherNotFinal(bytes32 sessionId);
    /// @notice Thrown when `caller` may not close session `sessionId` this way.
    error EscrowNotAuthorized(bytes32 sessionId, address caller);
    /// @notice Thrown when a batch is empty or larger than MAX_BATCH.
    error EscrowInvalidBatchSize(uint256 size, uint256 max);
    /// @notice Thrown when the protocol fee exceeds MAX_FEE_BPS.
    error EscrowFeeTooHigh(uint256 feeBps, uint256 max);
    /// @notice Thrown when a double-sign proof is not two different states of one session and sequence,
    /// both signed by that session's receipt signer.
    error EscrowInvalidSlashProof();
    /// @notice Thrown when a double-sign proof concerns a session never opened on this escrow.
    error EscrowUnknownSession(bytes32 sessionId);
    /// @notice Thrown when the challenge window is shorter than MIN_CHALLENGE_WINDOW.
    error EscrowChallengeWindowTooShort(uint256 window, uint256 min);
    /// @notice Thrown when the ledger or registry given to the constructor holds another token or ledger.
    error EscrowWiringMismatch(address expected, address actual);

    /*//////////////////////////////////////////////////////////////
                                EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a budget is created.
    /// @param budgetId Its id.
    /// @param creator Its owner.
    /// @param amount Deposit.
    /// @param perSessionLimit Most one session may lock.
    /// @param expiry When it expires.
    event BudgetCreated(
        uint256 indexed budgetId, address indexed creator, uint256 amount, uint256 perSessionLimit, uint256 expiry
    );
    /// @notice Emitted when anyone tops a budget up.
    /// @param budgetId The budget.
    /// @param from Who paid.
    /// @param amount Added.
    event BudgetToppedUp(uint256 indexed budgetId, address indexed from, uint256 amount);
    /// @notice Emitted when an agent is added to or removed from a budget's whitelist.
    /// @param budgetId The budget.
    /// @param agent The agent.
    /// @param allowed Whether it may open sessions.
    event AgentAllowedSet(uint256 indexed budgetId, address indexed agent, bool allowed);
    /// @notice Emitted when a budget's per-session limit or expiry changes.
    /// @param budgetId The budget.
    /// @param perSessionLimit New limit.
    /// @param expiry New expiry.
    event BudgetTermsSet(uint256 indexed budgetId, uint256 perSessionLimit, uint256 expiry);
    /// @notice Emitted when unallocated funds leave a budget for its creator.
    /// @param budgetId The budget.
    /// @param to The creator.
    /// @param amount Returned.
    /// @param expired False for the creator's refund (USDC to its wallet), true for the return after
    /// expiry (credited to its ledger balance).
    event BudgetRefunded(uint256 indexed budgetId, address indexed to, uint256 amount, bool expired);
    /// @notice Emitted when a session opens.
    /// @param sessionId Its id.
    /// @param budgetId Its budget.
    /// @param agent Its agent.
    /// @param terms All its terms.
    event SessionOpened(
        bytes32 indexed sessionId, uint256 indexed budgetId, address indexed agent, SessionTerms terms
    );
    /// @notice Emitted when a voucher is settled. A session's cumulative cost is the sum of its `paid`.
    /// @param sessionId The session.
    /// @param sequence The voucher's sequence.
    /// @param paid What this settlement paid (the session's fee included).
    event VoucherSettled(bytes32 indexed sessionId, uint256 sequence, uint256 paid);
    /// @notice Emitted when a consumer starts a close; the provider may settle until `claimEnd`.
    /// @param sessionId The session.
    /// @param by Agent or budget creator.
    /// @param claimEnd End of the window.
    event CloseRequested(bytes32 indexed sessionId, address indexed by, uint256 claimEnd);
    /// @notice Emitted when a session is finalized and its unused lock returns to the budget.
    /// @param sessionId The session.
    /// @param settled Total paid.
    /// @param returned Returned to the budget.
    event SessionFinalized(bytes32 indexed sessionId, uint256 settled, uint256 returned);
    /// @notice Emitted when a provider is slashed on a double-sign proof.
    /// @param providerId The provider.
    /// @param signer The session's receipt signer.
    /// @param reporter Who proved it.
    /// @param amount Stake taken.
    /// @param reward Part of it paid to the reporter.
    event DoubleSignSlashed(
        uint256 indexed providerId, address indexed signer, address indexed reporter, uint256 amount, uint256 reward
    );
    /// @notice Emitted when the protocol fee changes.
    /// @param feeBps New fee in basis points.
    event FeeSet(uint256 feeBps);
    /// @notice Emitted when the treasury changes.
    /// @param treasury New treasury (a ledger account or split).
    event TreasurySet(address treasury);

    /*//////////////////////////////////////////////////////////////
                                VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The USDC token (immutable).
    function token() external view returns (IERC20);
    /// @notice The provider registry.
    function registry() external view returns (IProviderRegistry);
    /// @notice The ledger that receives payouts and fees.
    function ledger() external view returns (ISplitsLedger);
    /// @notice Seconds a provider has to post a newer voucher after a consumer close or the deadline.
    function challengeWindow() external view returns (uint256);
    /// @notice Protocol fee in basis points that sessions opened now must carry in their terms.
    function feeBps() external view returns (uint256);
    /// @notice Ledger account (or split) credited with protocol fees and slashing proceeds.
    function treasury() external view returns (address);
    /// @notice Number of budgets ever created (ids run from 1).
    function budgetCount() external view returns (uint256);
    /// @notice Budget `budgetId`.
    function getBudget(uint256 budgetId) external view returns (Budget memory);
    /// @notice Whether `agent` may open sessions on budget `budgetId`.
    function isAgentAllowed(uint256 budgetId, address agent) external view returns (bool);
    /// @notice The mutable state of session `sessionId`.
    function getSession(bytes32 sessionId) external view returns (SessionState memory);
    /// @notice The id of a session with `terms` (their EIP-712 struct hash).
    function sessionIdOf(SessionTerms calldata terms) external pure returns (bytes32);
    /// @notice The EIP-712 digest an agent signs to open a session with `terms`.
    function openDigest(SessionTerms calldata terms) external view returns (bytes32);
    /// @notice The EIP-712 digest agent and provider sign for `voucher`.
    function voucherDigest(Voucher calldata voucher) external view returns (bytes32);

    /*//////////////////////////////////////////////////////////////
                                BUDGETS
    //////////////////////////////////////////////////////////////*/

    /// @notice Creates a budget funded with `amount` (approved beforehand).
    function createBudget(uint256 amount, uint256 perSessionLimit, uint256 expiry, address[] calldata agents)
        external
        returns (uint256 budgetId);
    /// @notice Same as `createBudget`, approving with an EIP-2612 permit in the same transaction.
    function createBudgetWithPermit(
        uint256 amount,
        uint256 perSessionLimit,
        uint256 expiry,
        address[] calldata agents,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 budgetId);
    /// @notice Adds `amount` (approved beforehand) to budget `budgetId`. Anyone may.
    function topUp(uint256 budgetId, uint256 amount) external;
    /// @notice Adds `amount` of the caller's ledger balance (the caller has approved this escrow on the
    /// ledger) to budget `budgetId`. Anyone may; the agent marketplace funds budgets this way.
    function topUpFromBalance(uint256 budgetId, uint256 amount) external;
    /// @notice Allows or disallows `agents` on budget `budgetId`. Creator only.
    function setAgentsAllowed(uint256 budgetId, address[] calldata agents, bool allowed) external;
    /// @notice Sets the per-session limit and expiry of budget `budgetId`. Creator only.
    function setBudgetTerms(uint256 budgetId, uint256 perSessionLimit, uint256 expiry) external;
    /// @notice Sends `amount` of unallocated funds to the creator's wallet, at any time. Creator only;
    /// refused while the creator may not move funds (frozen or blacklisted), which blocks no one else.
    function refund(uint256 budgetId, uint256 amount) external;
    /// @notice After expiry, credits all unallocated funds to the creator's ledger balance. Anyone may;
    /// needs no token transfer, so it always succeeds.
    function returnExpired(uint256 budgetId) external;

    /*//////////////////////////////////////////////////////////////
                                SESSIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Opens a session; called by the agent (empty signature) or by anyone with its signature.
    /// The terms must carry the registry's current prices and receipt signer and the current fee.
    function openSession(SessionTerms calldata terms, CompactSignature calldata agentSignature)
        external
        returns (bytes32 sessionId);
    /// @notice Opens several sessions in one transaction.
    function openSessions(OpenRequest[] calldata requests) external returns (bytes32[] memory sessionIds);
    /// @notice Settles one or many vouchers (at most MAX_BATCH, in order): pays each
    /// provider the difference between a voucher's cumulative cost and what its session settled
    /// before, less the session's fee. Payouts are aggregated per provider and credited in the ledger.
    /// Anyone may submit; all or nothing.
    function settle(SignedVoucher[] calldata vouchers) external;
    /// @notice Settles final vouchers signed by both parties and finalizes their sessions at once,
    /// returning each unused lock to its budget.
    function closeCooperative(SignedVoucher[] calldata vouchers) external;
    /// @notice Starts a consumer close: the provider may settle newer vouchers until the window ends.
    /// Callable by the session's agent or its budget's creator.
    function requestClose(SessionTerms calldata terms) external;
    /// @notice Finalizes a session at once, giving up further claims. The provider's owner or the
    /// session's receipt signer only.
    function closeByProvider(SessionTerms calldata terms) external;
    /// @notice Finalizes a session whose claim window has ended. Anyone may.
    function finalize(SessionTerms calldata terms) external;
    /// @notice Slashes the provider of a session opened on this escrow whose receipt signer (as fixed in
    /// the session's terms) signed two different states with the same sequence; the caller receives
    /// SLASH_REWARD_BPS of the stake, the treasury the rest. The provider is deactivated for good, also
    /// when its stake is too small for a reward.
    function slashDoubleSign(
        Voucher calldata first,
        CompactSignature calldata firstSignature,
        Voucher calldata second,
        CompactSignature calldata secondSignature
    ) external;

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @notice Sets the protocol fee (at most MAX_FEE_BPS) for sessions opened from now on; open sessions
    /// keep theirs. Admin only.
    function setFee(uint256 feeBps) external;
    /// @notice Sets the treasury. Admin only.
    function setTreasury(address treasury) external;
}
