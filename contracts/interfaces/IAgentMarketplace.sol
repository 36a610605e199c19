// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IComputeEscrow} from "./IComputeEscrow.sol";
import {ISplitsLedger} from "./ISplitsLedger.sol";

/// @title IAgentMarketplace
/// @notice Agent listings paid per call in USDC, each payment split by the agent's flow of funds into
/// SplitsLedger balances (withdrawals and compliance freezes are the ledger's) or ComputeEscrow budgets.
/// @dev How money moves:
/// - Every agent has a payment address (`paymentAddressOf`): a minimal clone at a CREATE2 address whose
///   salt is its owner and the owner's listing count, so it is known before listing
///   (`nextPaymentAddress(owner)`) and only that owner's next listing gets it: USDC sent there ahead of
///   time is the owner's agent's, whoever lists first. Anyone may send USDC to it.
/// - Payments made through the marketplace (`payWithAuthorization`, `payFromBalance`,
///   `payFromBalanceWithSig`) end, in the same transaction, as the marketplace's balance in the ledger
///   (a custodian there), and each is appended to the agent's payment chain:
///   `head = link(head, payer, payer's referrer, amount)` with the pending count in the head's low 32
///   bits (one storage word per agent, no new slot per payment).
/// - `distribute` (anyone) takes the agent's flow (checked against its stored hash) and the payments
///   pending since the last distribution. They must re-hash from the chain's base to its head, so a
///   payment can be distributed exactly once and none can be left out, altered or invented. Whatever
///   USDC the payment address itself holds (plain transfers, x402 settlements by anyone else) is moved
///   into the ledger and distributed as one payment without a payer referrer; when the token refuses
///   that move (paused, or the address blacklisted), the distribution goes on without it.
/// - Every credit is an internal ledger transfer (a split recipient is credited as one account and
///   distributes on its own), so a distribution writes one balance per distinct recipient and never
///   moves tokens. The largest one (MAX_PENDING payments, each with a different referrer, and every flow
///   component a different recipient or budget) stays far below Base's per-transaction gas cap of 2^24;
///   no one can make an agent's payments undistributable, and `updateTerms` and `retire` never strand
///   them (what a retired agent received is still distributed).
/// - A payment of `amount` counts as ⌊amount / price⌋ calls at the listed price plus, if anything is
///   left, one partial call of that rest; each call is split by `FlowOfFundsLib.split`.
interface IAgentMarketplace {
    /// @notice Lifecycle of a listing: None (never listed), Active, Paused, Retired (final).
    enum AgentStatus {
        None,
        Active,
        Paused,
        Retired
    }

    /// @notice What a recipient of a flow of funds is.
    /// @dev Account: a ledger balance. Split: a SplitsLedger split (must exist; the ledger passes the
    /// credit through it). Budget: a ComputeEscrow budget, funded with the escrow's `topUp` (or, once
    /// the budget has expired, credited to its creator's ledger balance).
    enum RecipientKind {
        Account,
        Split,
        Budget
    }

    /// @notice One recipient: `account` for Account and Split (budgetId zero), `budgetId` for Budget
    /// (account zero). The remainder recipient may be the zero Account: the platform treasury.
    struct Recipient {
        RecipientKind kind;
        address account;
        uint64 budgetId;
    }

    /// @notice A fixed amount per call (atomic USDC), paid before anything else.
    struct FixedAmount {
        Recipient recipient;
        uint64 amount;
    }

    /// @notice A proportional share (parts per million) of what a call leaves after fixed amounts
    /// and referral rewards.
    struct Share {
        Recipient recipient;
        uint32 share;
    }

    /// @notice How one call's payment is split, in this order (each part capped by what is left):
    /// 1. `fixedAmounts`, in order;
    /// 2. the payer's referrer: `payerReferrerShare` ppm of the payment;
    /// 3. the payee's (agent owner's) referrer: `payeeReferrerShare` ppm of the payment;
    /// 4. `shares` of what is then left (floor);
    /// 5. `remainder` gets the rest, including a referral reward whose referrer is unset.
    struct FlowOfFunds {
        FixedAmount[] fixedAmounts;
        Share[] shares;
        uint32 payerReferrerShare;
        uint32 payeeReferrerShare;
        Recipient remainder;
    }

    /// @notice The parts of one payment: `outputs` follow the flow's order (fixed amounts, then
    /// shares, then the remainder), and the two referral rewards come separately.
    struct PaymentSplit {
        uint256[] outputs;
        uint256 payerReferrerReward;
        uint256 payeeReferrerReward;
    }

    /// @notice A listing's descriptive fields.
    /// @param name Display name (1..MAX_NAME_LENGTH bytes).
    /// @param metadataURI Description / metadata document (up to MAX_URI_LENGTH bytes, may be empty).
    /// @param endpoint Where the agent is called (1..MAX_URI_LENGTH bytes).
    struct AgentMetadata {
        string name;
        string metadataURI;
        string endpoint;
    }

    /// @notice A listing as `getAgent` returns it.
    struct Agent {
        address owner;
        AgentStatus status;
        uint64 pricePerCall;
        bytes32 flowHash;
        address paymentAddress;
        AgentMetadata metadata;
    }

    /// @notice A payment appended to an agent's payment chain, as `distribute` takes it back.
    /// @param payer Who paid.
    /// @param referrer The payer's referrer when it paid (zero if none).
    /// @param amount Atomic USDC.
    struct PendingPayment {
        address payer;
        address referrer;
        uint256 amount;
    }

    /*//////////////////////////////////////////////////////////////
                                ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when no agent has id `agentId`.
    error MarketplaceUnknownAgent(uint256 agentId);
    /// @notice Thrown when `caller` is not the owner of agent `agentId`.
    error MarketplaceNotAgentOwner(uint256 agentId, address caller);
    /// @notice Thrown when agent `agentId`'s status `status` does not allow the action.
    error MarketplaceInvalidStatus(uint256 agentId, AgentStatus status);
    /// @notice Thrown when an address argument is zero.
    error MarketplaceZeroAddress();
    /// @notice Thrown when a price per call is zero or does not fit 64 bits.
    error MarketplaceInvalidPrice(uint256 pricePerCall);
    /// @notice Thrown when a name is empty or longer than `max` bytes.
    error MarketplaceInvalidName(uint256 length, uint256 max);
    /// @notice Thrown when an endpoint is empty or longer than `max` bytes.
    error MarketplaceInvalidEndpoint(uint256 length, uint256 max);
    /// @notice Thrown when a metadata URI is longer than `max` bytes.
    error MarketplaceInvalidMetadataURI(uint256 length, uint256 max);
    /// @notice Thrown when a flow lists more than `max` fixed amounts or more than `max` shares.
    error MarketplaceFlowTooManyComponents(uint256 count, uint256 max);
    /// @notice Thrown when the recipient at `index` (fixed amounts, then shares, then the remainder) is
    /// malformed: a zero account, a zero budget id, a field its kind does not use set, or an account that
    /// is a ledger custodian (a credit to it would be lost).
    error MarketplaceFlowInvalidRecipient(uint256 index);
    /// @notice Thrown when the fixed amount or share at `index` (fixed amounts, then shares) is zero.
    error MarketplaceFlowZeroComponent(uint256 index);
    /// @notice Thrown when the shares, or the two referral shares, add up to more than `scale`.
    error MarketplaceFlowInvalidShares(uint256 total, uint256 scale);
    /// @notice Thrown when the fixed amounts plus the referral rewards of one call (`committed`) exceed its price.
    error MarketplaceFlowExceedsPrice(uint256 committed, uint256 pricePerCall);
    /// @notice Thrown when a Split recipient is not a split of the ledger.
    error MarketplaceFlowUnknownSplit(address split);
    /// @notice Thrown when a Budget recipient is not a budget of the escrow.
    error MarketplaceFlowUnknownBudget(uint256 budgetId);
    /// @notice Thrown when the flow passed for agent `agentId` does not hash to its stored flow hash.
    error MarketplaceFlowMismatch(uint256 agentId, bytes32 expected, bytes32 actual);
    /// @notice Thrown when a payment to agent `agentId` is below its price per call.
    error MarketplacePaymentBelowPrice(uint256 agentId, uint256 pricePerCall, uint256 amount);
    /// @notice Thrown when agent `agentId` already has `max` undistributed payments (distribute first).
    error MarketplacePendingFull(uint256 agentId, uint256 max);
    /// @notice Thrown when the payments passed for agent `agentId` do not re-hash to its chain head.
    error MarketplaceChainMismatch(uint256 agentId, bytes32 head, bytes32 computed);
    /// @notice Thrown when agent `agentId` has no pending payment and its payment address no USDC.
    error MarketplaceNothingToDistribute(uint256 agentId);
    /// @notice Thrown when `account` names itself as its referrer.
    error MarketplaceSelfReferral(address account);
    /// @notice Thrown when a referrer is a ledger custodian (the escrow, registry or marketplace), whose
    /// own balance only accounts for other people's funds: a reward credited there would be lost.
    error MarketplaceCustodianReferrer(address referrer);
    /// @notice Thrown when `account` already has a referrer (`referrer`): it is recorded once, never changed.
    error MarketplaceReferrerAlreadySet(address account, address referrer);
    /// @notice Thrown when a signed referral is not signed by `account`.
    error MarketplaceInvalidSignature(address account);
    /// @notice Thrown when the ledger or escrow holds another token than the marketplace.
    error MarketplaceTokenMismatch(address expected, address actual);

    /*//////////////////////////////////////////////////////////////
                                EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when an agent is listed (followed by `AgentTermsSet`).
    /// @param agentId Its id.
    /// @param owner Its owner.
    /// @param paymentAddress Where it is paid.
    /// @param metadata Its name, metadata URI and endpoint.
    event AgentListed(uint256 indexed agentId, address indexed owner, address paymentAddress, AgentMetadata metadata);
    /// @notice Emitted when an agent's descriptive fields change.
    /// @param agentId The agent.
    /// @param metadata Its new name, metadata URI and endpoint.
    event AgentUpdated(uint256 indexed agentId, AgentMetadata metadata);
    /// @notice Emitted when an agent's price and flow of funds are set (at listing and on update).
    /// @param agentId The agent.
    /// @param pricePerCall Atomic USDC per call.
    /// @param flowHash The stored hash of `flow`.
    /// @param flow The full flow, as `distribute` takes it.
    event AgentTermsSet(uint256 indexed agentId, uint256 pricePerCall, bytes32 flowHash, FlowOfFunds flow);
    /// @notice Emitted when an agent is paused, unpaused or retired.
    /// @param agentId The agent.
    /// @param status Its new status.
    event AgentStatusChanged(uint256 indexed agentId, AgentStatus status);
    /// @notice Emitted when an agent changes owner.
    /// @param agentId The agent.
    /// @param previousOwner The old owner.
    /// @param newOwner The new owner.
    event AgentOwnershipTransferred(uint256 indexed agentId, address indexed previousOwner, address indexed newOwner);
    /// @notice Emitted when `account`'s referrer is recorded (once, for good).
    /// @param account The referred account.
    /// @param referrer Its referrer.
    event ReferrerRecorded(address indexed account, address indexed referrer);
    /// @notice Emitted when a payment through the marketplace is appended to an agent's payment chain.
    /// The fields rebuild the `PendingPayment` that `distribute` takes back.
    /// @param agentId The agent.
    /// @param payer Who paid.
    /// @param referrer The payer's referrer (zero if none).
    /// @param amount Atomic USDC.
    /// @param chainHead The chain head after this payment.
    event AgentPaid(
        uint256 indexed agentId, address indexed payer, address indexed referrer, uint256 amount, bytes32 chainHead
    );
    /// @notice Emitted when an agent's pending payments and unattributed funds are distributed.
    /// Per-recipient credits are the ledger's `Transferred` and the escrow's `BudgetToppedUp` events of
    /// the same transaction.
    /// @param agentId The agent.
    /// @param count Payments distributed from the chain.
    /// @param attributed Their sum.
    /// @param unattributed Other USDC the payment address held.
    /// @param chainHead The chain head, now also its base (no payment pending).
    event PaymentsDistributed(
        uint256 indexed agentId, uint256 count, uint256 attributed, uint256 unattributed, bytes32 chainHead
    );
    /// @notice Emitted when the treasury changes.
    /// @param treasury The new treasury (a ledger account or split).
    event TreasurySet(address treasury);

    /*//////////////////////////////////////////////////////////////
                                VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The USDC token (immutable).
    function token() external view returns (IERC20);
    /// @notice The ledger credited with every split.
    function ledger() external view returns (ISplitsLedger);
    /// @notice The escrow whose budgets can be recipients.
    function escrow() external view returns (IComputeEscrow);
    /// @notice The ledger account (or split) receiving a flow's remainder when none is named.
    function treasury() external view returns (address);
    /// @notice Number of agents ever listed (ids run from 1).
    function agentCount() external view returns (uint256);
    /// @notice Agent `agentId`.
    function getAgent(uint256 agentId) external view returns (Agent memory);
    /// @notice The payment address of agent `agentId`.
    function paymentAddressOf(uint256 agentId) external view returns (address);
    /// @notice The payment address `owner`'s next listing will get.
    function nextPaymentAddress(address owner) external view returns (address);
    /// @notice The implementation every payment address is a clone of.
    function paymentAddressImplementation() external view returns (address);
    /// @notice The referrer of `account` (zero if none).
    function referrerOf(address account) external view returns (address);
    /// @notice Agent `agentId`'s payment chain: its head, its base (the head at the last
    /// distribution) and the number of payments pending between them.
    function paymentChain(uint256 agentId) external view returns (bytes32 head, bytes32 base, uint256 pending);
    /// @notice The hash a flow is stored as.
    function hashFlow(FlowOfFunds calldata flow) external pure returns (bytes32);
    /// @notice How a payment of `amount` to an agent priced `pricePerCall` is split by `flow`.
    function splitPayment(FlowOfFunds calldata flow, uint256 pricePerCall, uint256 amount)
        external
        pure
        returns (PaymentSplit memory);
    /// @notice The EIP-712 digest `account` signs to name `referrer`: `Referral(address account,address referrer)`.
    function referralDigest(address account, address referrer) external view returns (bytes32);

    /*//////////////////////////////////////////////////////////////
                                LISTINGS
    //////////////////////////////////////////////////////////////*/

    /// @notice Lists an agent owned by the caller and deploys its payment address. A non-zero
    /// `referrer` becomes the caller's referrer if it has none yet (otherwise it is ignored).
    function list(AgentMetadata calldata metadata, uint256 pricePerCall, FlowOfFunds calldata flow, address referrer)
        external
        returns (uint256 agentId);
    /// @notice Replaces an agent's name, metadata URI and endpoint. Owner only, not once retired.
    function updateAgent(uint256 agentId, AgentMetadata calldata metadata) external;
    /// @notice Sets an agent's price and flow. Everything received under the current terms is first
    /// distributed with them (`currentFlow`, `pending` as for `distribute`; skipped when there is
    /// nothing), so a change never applies to money already paid. Owner only, not once retired.
    /// Pausing first keeps new payments from invalidating `pending`. USDC sitting on the payment
    /// address that the token will not let the marketplace move (paused, or the address blacklisted)
    /// has not reached the agent yet: it is distributed with the terms in force when it can be moved.
    function updateTerms(
        uint256 agentId,
        uint256 pricePerCall,
        FlowOfFunds calldata flow,
        FlowOfFunds calldata currentFlow,
        PendingPayment[] calldata pending
    ) external;
    /// @notice Stops accepting payments through the marketplace (distribution goes on). Owner only.
    function pause(uint256 agentId) external;
    /// @notice Accepts payments again. Owner only.
    function unpause(uint256 agentId) external;
    /// @notice Retires an agent for good; what it received can still be distributed. Owner only.
    function retire(uint256 agentId) external;
    /// @notice Hands an agent to `newOwner` (whose referrer then gets the payee referral rewards). Owner only.
    function transferAgent(uint256 agentId, address newOwner) external;

    /*//////////////////////////////////////////////////////////////
                               REFERRALS
    //////////////////////////////////////////////////////////////*/

    /// @notice Records the caller's referrer. Reverts if it is zero, the caller, or one is already set.
    function setReferrer(address referrer) external;
    /// @notice Records `account`'s referrer with `account`'s EIP-712 signature (EOA or ERC-1271) over
    /// `Referral(account, referrer)`, so a relayer can submit it. Same rules as `setReferrer`; the
    /// once-only rule makes a replay revert.
    function setReferrerWithSig(address account, address referrer, bytes calldata signature) external;

    /*//////////////////////////////////////////////////////////////
                               PAYMENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Settles `from`'s EIP-3009 `TransferWithAuthorization` of `value` USDC to agent
    /// `agentId`'s payment address (an x402 'exact' payment whose payTo is that address) and appends it
    /// to the agent's chain. Anyone may submit; the token checks signature, validity window and nonce.
    /// @dev x402's 'exact' scheme signs `TransferWithAuthorization`, which EIP-3009 lets anyone submit
    /// to the token: no signature field can bind it to this contract. Submitted elsewhere first, it is a
    /// plain transfer to the payment address: the agent's flow still gets all of it (as an unattributed
    /// payment), only the payer's referral reward goes to the flow's remainder, and this call reverts
    /// with the token's `AuthorizationAlreadyUsed` (the relayer reads `authorizationState`).
    function payWithAuthorization(
        uint256 agentId,
        address from,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
    /// @notice Pays `amount` from the caller's ledger balance (the caller has approved this contract
    /// on the ledger) to agent `agentId`. A non-zero `referrer` becomes the caller's referrer if it has
    /// none yet (otherwise it is ignored); the payment then already rewards it.
    function payFromBalance(uint256 agentId, uint256 amount, address referrer) external;
    /// @notice Pays `amount` from `payer`'s ledger balance to agent `agentId` with `payer`'s ledger
    /// signature `TransferAuthorization(payer, this marketplace, amount, caller: this marketplace,
    /// memo: bytes32(agentId), nonce, deadline)`, so a relayer can submit it. The signature is bound to
    /// this contract and this agent: it cannot be used on the ledger directly or for another agent.
    function payFromBalanceWithSig(
        uint256 agentId,
        address payer,
        uint256 amount,
        uint256 deadline,
        bytes calldata signature
    ) external;
    /// @notice Splits everything agent `agentId`'s payment address holds: `payments` (all pending
    /// ones, oldest first) with their payers' referrers, the rest as one payment without. Anyone may.
    function distribute(uint256 agentId, FlowOfFunds calldata flow, PendingPayment[] calldata payments) external;

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @notice Sets the treasury. Admin only.
    function setTreasury(address treasury) external;
}
