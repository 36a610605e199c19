// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title ISplitsLedger
/// @notice Internal USDC balances with pull withdrawals, and immutable revenue splits that pay into them.
/// @dev A split is identified by the address of a tiny data contract that stores its recipients; a
/// recipient is an account or another split (bounded nesting). Each recipient is credited, over the
/// split's lifetime, exactly `floor(totalReceived × share / SHARE_SCALE)`, so repeated small payments
/// never starve a minority recipient; the rounding dust (fewer units than the split has recipients)
/// stays with the split and is paid out as later payments make it whole.
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
    /// @notice Thrown when `account` withdraws more than it holds.
    error LedgerInsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice Thrown when a frozen account tries to withdraw.
    error LedgerAccountFrozen(address account);
    /// @notice Thrown when a signed withdrawal is used after its deadline.
    error LedgerSignatureExpired(uint256 deadline);
    /// @notice Thrown when a signed withdrawal is not signed by the account.
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
    /// @notice Thrown when `spender` withdraws more of `account`'s balance than `account` allowed it.
    error LedgerInsufficientAllowance(address account, address spender, uint256 allowance, uint256 needed);

    /*//////////////////////////////////////////////////////////////
                                EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a split is created.
    /// @param split The split's address.
    /// @param definition Its recipients, shares and remainder recipient.
    event SplitCreated(address indexed split, Split definition);
    /// @notice Emitted when `payer` pays `amount` to `payee` (an account or a split).
    /// @param payer Who sent the USDC.
    /// @param payee The account or split credited.
    /// @param amount Atomic USDC.
    event Paid(address indexed payer, address indexed payee, uint256 amount);
    /// @notice Emitted when a split distributes `amount` among its recipients.
    /// @param split The split.
    /// @param amount Atomic USDC distributed (recipient credits follow from the split's definition).
    event SplitDistributed(address indexed split, uint256 amount);
    /// @notice Emitted when `account` withdraws `amount` to `to`.
    /// @param account The balance debited.
    /// @param to Who received the USDC.
    /// @param amount Atomic USDC.
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Emitted when the compliance role freezes or unfreezes an account.
    /// @param account The account.
    /// @param frozen Whether its withdrawals are now refused.
    event FrozenSet(address indexed account, bool frozen);
    /// @notice Emitted when `account` allows `spender` to withdraw up to `amount` of its balance.
    /// @param account The balance owner.
    /// @param spender Who may withdraw from it (e.g. the agent marketplace paying per call).
    /// @param amount The new allowance (type(uint256).max: unlimited, never decreased).
    event Approved(address indexed account, address indexed spender, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The USDC token held by the ledger.
    function token() external view returns (IERC20);

    /// @notice The withdrawable balance of `account` (atomic USDC).
    function balanceOf(address account) external view returns (uint256);

    /// @notice Whether `account`'s withdrawals are frozen.
    function isFrozen(address account) external view returns (bool);

    /// @notice Whether `split` is a split created by this ledger.
    function isSplit(address split) external view returns (bool);

    /// @notice The definition of `split`.
    function getSplit(address split) external view returns (Split memory);

    /// @notice What `split` has received in its lifetime and the dust it currently holds.
    function splitTotals(address split) external view returns (uint256 received, uint256 dust);

    /// @notice The address `createSplit(definition)` returns.
    function predictSplitAddress(Split calldata definition) external view returns (address);

    /// @notice The next nonce of `account` for signed withdrawals.
    function nonces(address account) external view returns (uint256);

    /// @notice How much of `account`'s balance `spender` may still withdraw.
    function allowance(address account, address spender) external view returns (uint256);

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Creates `definition` (or returns it when it already exists).
    /// @return split The split's address, deterministic in its definition.
    function createSplit(Split calldata definition) external returns (address split);

    /// @notice Pulls `amount` USDC from the caller and credits it to `payee` (an account or a split).
    function pay(address payee, uint256 amount) external;

    /// @notice Pulls Σ`amounts` USDC from the caller in one transfer and credits each payee.
    function payMany(address[] calldata payees, uint256[] calldata amounts) external;

    /// @notice Pays out whatever balance `split` itself holds (USDC credited to a split as an account).
    function distribute(address split) external;

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

    /// @notice Allows `spender` to withdraw up to `amount` of the caller's balance (unlimited at type(uint256).max).
    function approve(address spender, uint256 amount) external;

    /// @notice Withdraws `amount` of `account`'s balance to `to`, spending the caller's allowance.
    /// Refused like any withdrawal while `account` is frozen.
    function withdrawFrom(address account, address to, uint256 amount) external;

    /// @notice Withdraws `amount` of the caller's balance to `to`.
    function withdraw(address to, uint256 amount) external;

    /// @notice Withdraws `amount` of `account`'s balance to `to`, authorized by `account`'s EIP-712
    /// signature (EOA or ERC-1271) over `Withdrawal(account,to,amount,nonce,deadline)`.
    function withdrawWithSig(address account, address to, uint256 amount, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Freezes or unfreezes `account`'s withdrawals; it keeps accruing. Compliance role only.
    function setFrozen(address account, bool frozen) external;
}
