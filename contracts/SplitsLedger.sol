// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC3009} from "./interfaces/IERC3009.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";
import {SplitLib} from "./libraries/SplitLib.sol";
import {TokenPullLib} from "./libraries/TokenPullLib.sol";

/// @title SplitsLedger
/// @notice Holds every contributor's USDC as internal balances, pays revenue splits into them and lets
/// each account withdraw whenever it likes (pull payments: one blocked recipient blocks no one else).
contract SplitsLedger is ISplitsLedger, AccessControl, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using TokenPullLib for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice The role that may freeze and unfreeze withdrawals.
    bytes32 public constant COMPLIANCE_ROLE = keccak256("COMPLIANCE_ROLE");
    /// @notice Shares are parts of this scale (parts per million).
    uint256 public constant SHARE_SCALE = SplitLib.SHARE_SCALE;
    /// @notice Most recipients one split may list (its remainder recipient not counted).
    uint256 public constant MAX_RECIPIENTS = 32;
    /// @notice Most levels of split nesting (a split of accounts has depth 1).
    uint256 public constant MAX_DEPTH = 4;
    /// @notice Most accounts a payment into one split may reach through all its nested splits.
    uint256 public constant MAX_LEAVES = 64;
    /// @notice EIP-712 typehash of a signed withdrawal.
    bytes32 public constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(address account,address to,uint256 amount,uint256 nonce,uint256 deadline)");

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev A balance and its freeze flag share one slot, so a withdrawal reads one slot.
    struct Account {
        uint128 balance;
        bool frozen;
    }

    /// @dev `depth` is zero for addresses that are not splits.
    struct SplitState {
        uint128 received;
        uint8 depth;
        uint16 leaves;
    }

    IERC20 private immutable _TOKEN;
    mapping(address account => Account) private _accounts;
    mapping(address split => SplitState) private _splits;
    mapping(address account => mapping(address spender => uint256)) private _allowances;

    /// @param token_ The USDC token (immutable).
    /// @param admin Holder of the admin role, which grants the compliance role.
    constructor(IERC20 token_, address admin) EIP712("AgentMesh Ledger", "1") {
        _TOKEN = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function token() external view returns (IERC20) {
        return _TOKEN;
    }

    /// @inheritdoc ISplitsLedger
    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].balance;
    }

    /// @inheritdoc ISplitsLedger
    function isFrozen(address account) external view returns (bool) {
        return _accounts[account].frozen;
    }

    /// @inheritdoc ISplitsLedger
    function isSplit(address split) public view returns (bool) {
        return _splits[split].depth != 0;
    }

    /// @inheritdoc ISplitsLedger
    function getSplit(address split) external view returns (Split memory definition) {
        uint256[] memory entries = _readSplit(split);
        uint256 count = entries.length - 1;
        definition.recipients = new SplitRecipient[](count);
        for (uint256 i; i < count; ++i) {
            (address account, uint256 share,) = SplitLib.unpack(entries[i]);
            // Safe: shares were validated to be at most SHARE_SCALE.
            definition.recipients[i] = SplitRecipient(account, uint32(share));
        }
        (definition.remainderRecipient,,) = SplitLib.unpack(entries[count]);
    }

    /// @inheritdoc ISplitsLedger
    function splitTotals(address split) external view returns (uint256 received, uint256 dust) {
        uint256[] memory entries = _readSplit(split);
        received = _splits[split].received;
        dust = received;
        for (uint256 i; i < entries.length; ++i) {
            (, uint256 share,) = SplitLib.unpack(entries[i]);
            dust -= received * share / SHARE_SCALE;
        }
    }

    /// @inheritdoc ISplitsLedger
    function predictSplitAddress(Split calldata definition) external view returns (address) {
        (uint256[] memory entries,,) = _buildEntries(definition);
        return Create2.computeAddress(0, keccak256(SplitLib.creationCode(entries)));
    }

    /// @inheritdoc ISplitsLedger
    function nonces(address account) public view override(ISplitsLedger, Nonces) returns (uint256) {
        return super.nonces(account);
    }

    /// @inheritdoc ISplitsLedger
    function allowance(address account, address spender) external view returns (uint256) {
        return _allowances[account][spender];
    }

    /*//////////////////////////////////////////////////////////////
                                SPLITS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function createSplit(Split calldata definition) external returns (address split) {
        (uint256[] memory entries, uint256 depth, uint256 leaves) = _buildEntries(definition);
        split = Create2.computeAddress(0, keccak256(SplitLib.creationCode(entries)));
        if (_splits[split].depth != 0) return split;
        SplitLib.write(entries);
        // Safe: depth <= MAX_DEPTH and leaves <= MAX_LEAVES were checked by _buildEntries.
        _splits[split] = SplitState({received: 0, depth: uint8(depth), leaves: uint16(leaves)});
        emit SplitCreated(split, definition);
    }

    /// @inheritdoc ISplitsLedger
    function distribute(address split) external nonReentrant {
        if (!isSplit(split)) revert LedgerNotASplit(split);
        Account storage held = _accounts[split];
        if (held.frozen) revert LedgerAccountFrozen(split);
        uint256 amount = held.balance;
        if (amount == 0) revert LedgerZeroAmount();
        held.balance = 0;
        _distributeSplit(split, amount);
    }

    /*//////////////////////////////////////////////////////////////
                               PAYMENTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function pay(address payee, uint256 amount) external nonReentrant {
        if (amount == 0) revert LedgerZeroAmount();
        _TOKEN.pullExact(msg.sender, amount);
        _credit(payee, amount);
        emit Paid(msg.sender, payee, amount);
    }

    /// @inheritdoc ISplitsLedger
    function payMany(address[] calldata payees, uint256[] calldata amounts) external nonReentrant {
        uint256 count = payees.length;
        if (count != amounts.length) revert LedgerLengthMismatch(count, amounts.length);
        if (count == 0) revert LedgerZeroAmount();
        uint256 total;
        for (uint256 i; i < count; ++i) {
            if (amounts[i] == 0) revert LedgerZeroAmount();
            total += amounts[i];
        }
        _TOKEN.pullExact(msg.sender, total);
        for (uint256 i; i < count; ++i) {
            _credit(payees[i], amounts[i]);
            emit Paid(msg.sender, payees[i], amounts[i]);
        }
    }

    /// @inheritdoc ISplitsLedger
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        if (amount == 0) revert LedgerZeroAmount();
        _TOKEN.tryPermit(msg.sender, amount, deadline, v, r, s);
        _TOKEN.pullExact(msg.sender, amount);
        _credit(msg.sender, amount);
        emit Paid(msg.sender, msg.sender, amount);
    }

    /// @inheritdoc ISplitsLedger
    function depositWithAuthorization(
        address from,
        uint256 amount,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external nonReentrant {
        if (amount == 0) revert LedgerZeroAmount();
        uint256 before = _TOKEN.balanceOf(address(this));
        IERC3009(address(_TOKEN)).receiveWithAuthorization(
            from, address(this), amount, validAfter, validBefore, nonce, signature
        );
        uint256 received = _TOKEN.balanceOf(address(this)) - before;
        if (received != amount) revert TokenPullLib.TokenDepositMismatch(amount, received);
        _credit(from, amount);
        emit Paid(from, from, amount);
    }

    /*//////////////////////////////////////////////////////////////
                              WITHDRAWALS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function withdraw(address to, uint256 amount) external nonReentrant {
        _withdraw(msg.sender, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function withdrawWithSig(address account, address to, uint256 amount, uint256 deadline, bytes calldata signature)
        external
        nonReentrant
    {
        if (block.timestamp > deadline) revert LedgerSignatureExpired(deadline);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(WITHDRAWAL_TYPEHASH, account, to, amount, _useNonce(account), deadline))
        );
        if (!SignatureChecker.isValidSignatureNow(account, digest, signature)) revert LedgerInvalidSignature(account);
        _withdraw(account, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function approve(address spender, uint256 amount) external {
        if (spender == address(0)) revert LedgerInvalidReceiver(spender);
        _allowances[msg.sender][spender] = amount;
        emit Approved(msg.sender, spender, amount);
    }

    /// @inheritdoc ISplitsLedger
    function withdrawFrom(address account, address to, uint256 amount) external nonReentrant {
        uint256 allowed = _allowances[account][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert LedgerInsufficientAllowance(account, msg.sender, allowed, amount);
            // Unchecked: amount <= allowed was checked above.
            unchecked {
                _allowances[account][msg.sender] = allowed - amount;
            }
        }
        _withdraw(account, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function setFrozen(address account, bool frozen) external onlyRole(COMPLIANCE_ROLE) {
        _accounts[account].frozen = frozen;
        emit FrozenSet(account, frozen);
    }

    /*//////////////////////////////////////////////////////////////
                               INTERNALS
    //////////////////////////////////////////////////////////////*/

    /// @dev Credits an account's balance, or distributes through a split.
    function _credit(address payee, uint256 amount) private {
        if (payee == address(0)) revert LedgerInvalidReceiver(payee);
        if (amount > type(uint128).max) revert LedgerAmountOverflow(amount);
        if (_splits[payee].depth != 0) _distributeSplit(payee, amount);
        // Safe cast: checked against uint128 above; the addition itself is checked.
        else _accounts[payee].balance += uint128(amount);
    }

    /// @dev Credits each entry of `split` the growth of its lifetime entitlement
    /// floor(received × share / SHARE_SCALE); nested splits recurse (depth and leaves are bounded).
    function _distributeSplit(address split, uint256 amount) private {
        SplitState storage state = _splits[split];
        uint256 before = state.received;
        uint256 afterwards = before + amount;
        if (afterwards > type(uint128).max) revert LedgerAmountOverflow(afterwards);
        state.received = uint128(afterwards);
        uint256[] memory entries = SplitLib.read(split);
        for (uint256 i; i < entries.length; ++i) {
            (address account, uint256 share, bool nested) = SplitLib.unpack(entries[i]);
            uint256 part = afterwards * share / SHARE_SCALE - before * share / SHARE_SCALE;
            if (part == 0) continue;
            if (nested) _distributeSplit(account, part);
            // Safe cast: part <= amount < 2^128; the addition itself is checked.
            else _accounts[account].balance += uint128(part);
        }
        emit SplitDistributed(split, amount);
    }

    function _withdraw(address account, address to, uint256 amount) private {
        if (amount == 0) revert LedgerZeroAmount();
        if (to == address(0)) revert LedgerInvalidReceiver(to);
        Account storage held = _accounts[account];
        if (held.frozen) revert LedgerAccountFrozen(account);
        uint256 balance = held.balance;
        if (balance < amount) revert LedgerInsufficientBalance(account, balance, amount);
        // Safe: amount <= balance < 2^128.
        held.balance = uint128(balance - amount);
        emit Withdrawn(account, to, amount);
        _TOKEN.safeTransfer(to, amount);
    }

    /// @dev Validates a definition and packs its entries; returns the split's depth and leaf count.
    function _buildEntries(Split calldata definition)
        private
        view
        returns (uint256[] memory entries, uint256 depth, uint256 leaves)
    {
        uint32 remainderShare = SplitLib.validateShape(definition, MAX_RECIPIENTS);
        uint256 count = definition.recipients.length;
        entries = new uint256[](count + 1);
        uint256 childDepth;
        for (uint256 i; i <= count; ++i) {
            (address account, uint256 share) = i < count
                ? (definition.recipients[i].account, uint256(definition.recipients[i].share))
                : (definition.remainderRecipient, uint256(remainderShare));
            SplitState storage child = _splits[account];
            bool nested = child.depth != 0;
            if (nested && child.depth > childDepth) childDepth = child.depth;
            leaves += nested ? child.leaves : 1;
            entries[i] = SplitLib.pack(account, share, nested);
        }
        depth = childDepth + 1;
        if (depth > MAX_DEPTH) revert LedgerSplitTooDeep(depth, MAX_DEPTH);
        if (leaves > MAX_LEAVES) revert LedgerSplitTooManyLeaves(leaves, MAX_LEAVES);
    }

    function _readSplit(address split) private view returns (uint256[] memory) {
        if (!isSplit(split)) revert LedgerNotASplit(split);
        return SplitLib.read(split);
    }
}
