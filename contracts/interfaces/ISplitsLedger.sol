// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title ISplitsLedger
/// @notice The one contract that holds AgentMesh's USDC: internal balances with pull withdrawals, and
/// immutable revenue splits that pay into them.
/// @dev Custody. The escrow's budgets, the registry's stakes and the marketplace's pending payments are
/// balances of those contracts (the custodians, fixed once at deployment) in this ledger. Moving money
/// between them and to providers, contributors and budgets is an internal credit (`transfer*`), never a
/// token transfer, so a paused token or a token blacklist on any contract never stops a settlement, a
/// slash or a distribution: it only delays the withdrawals that take USDC out (`withdraw*`).
///
/// Splits. A split is identified by the address of a tiny data contract that stores its recipients; a
/// recipient is an account or another split (bounded nesting: MAX_DEPTH levels, MAX_LEAVES accounts).
/// Paying a split credits the split's own balance: one storage write, whatever its size, so no payment,
/// settlement or distribution that pays splits grows with their recipients. `distribute(split)` (anyone,
/// any time, as often as wanted) fans that balance out through the whole tree; it touches at most
/// MAX_LEAVES accounts and the splits between them, which bounds its gas far below one transaction's
/// limit. Each recipient is credited, over the split's lifetime, exactly
/// `floor(totalDistributed × share / SHARE_SCALE)`, so repeated small payments never starve a minority
/// recipient; the rounding dust (fewer units than the split has recipients) stays with the split and is
/// paid out as later distributions make it whole.
///
/// Who may stop an account (policy):
/// - The compliance role may freeze an account for at most MAX_FREEZE_DURATION, with a reason code
///   (`freeze`); it lifts by itself at its end or earlier by `unfreeze`, and renewing it takes a new
///   `freeze` with a new event. Custodians cannot be frozen.
/// - An account the token reports as blacklisted (USDC's `isBlacklisted`) is treated as frozen for as
///   long as the token says so: the ledger does not let it move its balance out by any path.
/// - A frozen or blacklisted account keeps accruing: payments, settlements, distributions and refunds
///   still credit it, and nothing anyone else does is refused because of it. It cannot withdraw (to any
///   address, by signature or through an allowance), transfer its balance or pay agents; a frozen or
///   blacklisted split is not distributed (nested in another split, it keeps its part until it may).
/// - Custodians cannot be split recipients: a credit to a custodian's own balance would be lost.
interface ISplitsLedger {
    /// @notice One recipient of a split.
    /// @param account An account, or the address of another split (paid through that split).
    /// @param share Parts of SHARE_SCALE this recipient receives.
    struct SplitRecipient {
        address account;
        uint32 share;
    }

    /// @notice A split: recipients sorted by strictly increasing address, plus a remainder recipient
    /// that receives the share the recipients leave over (SHARE_SCALE − Σ shares).
    struct Split {
        SplitRecipient[] recipients;
        address remainderRecipient;
    }

    /*//////////////////////////////////////////////////////////////
                                ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when a payment, withdrawal or payee list carries a zero amount or no entries.
    error LedgerZeroAmount();
    /// @notice Thrown when two parallel arrays differ in length.
    error LedgerLengthMismatch(uint256 payees, uint256 amounts);
    /// @notice Thrown when the address receiving funds is the zero address.
    error LedgerInvalidReceiver(address receiver);
    /// @notice Thrown when `account` moves more than it holds.
    error LedgerInsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice Thrown when a frozen account (or a frozen split) would move its balance; the freeze ends at `until`.
    error LedgerAccountFrozen(address account, uint256 until);
    /// @notice Thrown when an account the token reports as blacklisted would move its balance.
    error LedgerAccountBlacklisted(address account);
    /// @notice Thrown when a signature is used after its deadline.
    error LedgerSignatureExpired(uint256 deadline);
    /// @notice Thrown when a signed withdrawal or transfer is not signed by the account.
    error LedgerInvalidSignature(address account);
    /// @notice Thrown when a split has no recipients or more than MAX_RECIPIENTS.
    error LedgerSplitRecipientCount(uint256 count, uint256 max);
    /// @notice Thrown when split recipients are not sorted by strictly increasing address (so duplicated).
    error LedgerSplitRecipientsUnsorted(uint256 index);
    /// @notice Thrown when a recipient has a zero share or the shares exceed SHARE_SCALE.
    error LedgerSplitInvalidShares(uint256 total, uint256 scale);
    /// @notice Thrown when a split would nest deeper than MAX_DEPTH.
    error LedgerSplitTooDeep(uint256 depth, uint256 max);
    /// @notice Thrown when a split would reach more than MAX_LEAVES accounts through its nested splits.
    error LedgerSplitTooManyLeaves(uint256 leaves, uint256 max);
    /// @notice Thrown when an address that should be a split is not one.
    error LedgerNotASplit(address split);
    /// @notice Thrown when an amount does not fit the ledger's 128-bit balances.
    error LedgerAmountOverflow(uint256 amount);
    /// @notice Thrown when `spender` moves more of `account`'s balance than `account` allowed it.
    error LedgerInsufficientAllowance(address account, address spender, uint256 allowance, uint256 needed);
    /// @notice Thrown when anyone but the deployer sets the custodians, or they are set a second time.
    error LedgerCustodiansLocked();
    /// @notice Thrown when freezing a custodian.
    error LedgerCustodianNotFreezable(address custodian);
    /// @notice Thrown when a freeze would end in the past or later than MAX_FREEZE_DURATION from now.
    error LedgerInvalidFreeze(uint256 until, uint256 latest);
    /// @notice Thrown when a freeze or unfreeze carries reason code 0 (none).
    error LedgerInvalidReason();
    /// @notice Thrown when lifting the freeze of an account that is not frozen.
    error LedgerNotFrozen(address account);

    /*//////////////////////////////////////////////////////////////
                                EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a split is created.
    /// @param split The split's address.
    /// @param definition Its recipients, shares and remainder recipient.
    event SplitCreated(address indexed split, Split definition);
    /// @notice Emitted when `payer` deposits `amount` USDC into the ledger for `payee`.
    /// @param payer Who sent the USDC.
    /// @param payee The account or split credited.
    /// @param amount Atomic USDC.
    event Paid(address indexed payer, address indexed payee, uint256 amount);
    /// @notice Emitted when `amount` of `from`'s balance is credited to `to` inside the ledger.
    /// @param from The balance debited.
    /// @param to The account or split credited.
    /// @param amount Atomic USDC.
    event Transferred(address indexed from, address indexed to, uint256 amount);
    /// @notice Emitted when a split distributes `amount` among its recipients.
    /// @param split The split.
    /// @param amount Atomic USDC distributed.
    /// @param credits What each entry received, in the split's order (its recipients, then its remainder
    /// recipient); an entry that is a split passes its credit on with its own `SplitDistributed`.
    event SplitDistributed(address indexed split, uint256 amount, uint256[] credits);
    /// @notice Emitted when `account` withdraws `amount` to `to`.
    /// @param account The balance debited.
    /// @param to Who received the USDC.
    /// @param amount Atomic USDC.
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Emitted when the compliance role freezes an account.
    /// @param account The account.
    /// @param until When the freeze lifts by itself (unix seconds).
    /// @param reason Why (see the README's reason codes; never 0).
    /// @param by The compliance officer.
    event AccountFrozen(address indexed account, uint256 until, uint8 indexed reason, address by);
    /// @notice Emitted when the compliance role lifts a freeze before its end.
    /// @param account The account.
    /// @param reason Why (see the README's reason codes; never 0).
    /// @param by The compliance officer.
    event AccountUnfrozen(address indexed account, uint8 indexed reason, address by);
    /// @notice Emitted once, when the deployer names the custodians.
    /// @param custodians The escrow, registry and marketplace whose balances hold other people's funds.
    event CustodiansSet(address[] custodians);
    /// @notice Emitted when `account` allows `spender` to move up to `amount` of its balance.
    /// @param account The balance owner.
    /// @param spender Who may move it (e.g. the agent marketplace paying per call).
    /// @param amount The new allowance (type(uint256).max: unlimited, never decreased).
    event Approved(address indexed account, address indexed spender, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The USDC token held by the ledger.
    function token() external view returns (IERC20);

    /// @notice The balance of `account` (atomic USDC); for a split, what it holds undistributed.
    function balanceOf(address account) external view returns (uint256);

    /// @notice When `account`'s freeze ends (0 or a past time: not frozen by the compliance role).
    function frozenUntil(address account) external view returns (uint256);

    /// @notice Whether `account` can move its balance now: false while frozen or blacklisted by the token.
    function canMove(address account) external view returns (bool);

    /// @notice Whether `account` is a custodian (never frozen; see the contract notes).
    function isCustodian(address account) external view returns (bool);

    /// @notice Whether `split` is a split created by this ledger.
    function isSplit(address split) external view returns (bool);

    /// @notice The definition of `split`.
    function getSplit(address split) external view returns (Split memory);

    /// @notice What `split` has distributed in its lifetime and the dust it holds back from it.
    function splitTotals(address split) external view returns (uint256 distributed, uint256 dust);

    /// @notice The address `createSplit(definition)` returns.
    function predictSplitAddress(Split calldata definition) external view returns (address);

    /// @notice The next nonce of `account` for signed withdrawals and transfers.
    function nonces(address account) external view returns (uint256);

    /// @notice How much of `account`'s balance `spender` may still move.
    function allowance(address account, address spender) external view returns (uint256);

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Names the custodians. Deployer only, once (the deployment script does it).
    function setCustodians(address[] calldata custodians) external;

    /// @notice Creates `definition` (or returns it when it already exists).
    /// @return split The split's address, deterministic in its definition.
    function createSplit(Split calldata definition) external returns (address split);

    /// @notice Pays out the balance `split` holds through all its recipients (nested splits included).
    /// Anyone may; refused while the split is frozen or blacklisted by the token.
    function distribute(address split) external;

    /// @notice Pulls `amount` USDC from the caller and credits it to `payee` (an account or a split).
    function pay(address payee, uint256 amount) external;

    /// @notice Pulls Σ`amounts` USDC from the caller in one transfer and credits each payee.
    function payMany(address[] calldata payees, uint256[] calldata amounts) external;

    /// @notice Tops up the caller's own balance with `amount` USDC, approved by the caller's EIP-2612
    /// permit in the same transaction (a permit already used or front-run is ignored: the pull then
    /// relies on the allowance). Emits `Paid(caller, caller, amount)`.
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice Tops up `from`'s balance with `amount` USDC moved by `from`'s EIP-3009
    /// `ReceiveWithAuthorization` (to = this ledger). Anyone may submit it (gasless top-up): only the
    /// ledger can execute such an authorization and it always credits its signer. Emits `Paid(from, from, amount)`.
    function depositWithAuthorization(
        address from,
        uint256 amount,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice Moves `amount` of the caller's balance to `to` (an account or a split), inside the ledger.
    function transfer(address to, uint256 amount) external;

    /// @notice Moves Σ`amounts` of the caller's balance to `payees`, inside the ledger.
    function transferMany(address[] calldata payees, uint256[] calldata amounts) external;

    /// @notice Moves `amount` of `account`'s balance to `to` inside the ledger, spending the caller's allowance.
    function transferFrom(address account, address to, uint256 amount) external;

    /// @notice Moves `amount` of `account`'s balance to `to` inside the ledger with `account`'s EIP-712
    /// signature (EOA or ERC-1271) over
    /// `TransferAuthorization(account,to,amount,caller,memo,nonce,deadline)`. Only `caller` may submit
    /// it, so a signature made for a contract (the marketplace: `memo` = the agent id) cannot be used by
    /// anyone else, here or there.
    function transferWithSig(
        address account,
        address to,
        uint256 amount,
        bytes32 memo,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Allows `spender` to move up to `amount` of the caller's balance (unlimited at type(uint256).max).
    function approve(address spender, uint256 amount) external;

    /// @notice Withdraws `amount` of the caller's balance to `to`.
    function withdraw(address to, uint256 amount) external;

    /// @notice Withdraws `amount` of `account`'s balance to `to`, spending the caller's allowance.
    function withdrawFrom(address account, address to, uint256 amount) external;

    /// @notice Withdraws `amount` of `account`'s balance to `to`, authorized by `account`'s EIP-712
    /// signature (EOA or ERC-1271) over `Withdrawal(account,to,amount,nonce,deadline)`.
    function withdrawWithSig(address account, address to, uint256 amount, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Freezes `account` until `until` (at most MAX_FREEZE_DURATION from now) for `reason`.
    /// Compliance role only; refused for custodians. A new freeze replaces the current one.
    function freeze(address account, uint256 until, uint8 reason) external;

    /// @notice Lifts `account`'s freeze now, for `reason`. Compliance role only.
    function unfreeze(address account, uint8 reason) external;
}
