// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC3009} from "./interfaces/IERC3009.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";
import {BlacklistLib} from "./libraries/BlacklistLib.sol";
import {SplitLib} from "./libraries/SplitLib.sol";
import {TokenPullLib} from "./libraries/TokenPullLib.sol";

/// @title SplitsLedger
/// @notice Holds all of AgentMesh's USDC as internal balances, pays revenue splits into them and lets
/// each account withdraw whenever it likes (pull payments: one blocked recipient blocks no one else).
contract SplitsLedger is ISplitsLedger, AccessControlDefaultAdminRules, EIP712, Nonces, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using TokenPullLib for IERC20;
    using BlacklistLib for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice The role that may freeze accounts (granted by the admin).
    bytes32 public constant COMPLIANCE_ROLE = keccak256("COMPLIANCE_ROLE");
    /// @notice Shares are parts of this scale (parts per million).
    uint256 public constant SHARE_SCALE = SplitLib.SHARE_SCALE;
    /// @notice Most recipients one split may list (its remainder recipient not counted).
    uint256 public constant MAX_RECIPIENTS = 32;
    /// @notice Most levels of split nesting (a split of accounts has depth 1).
    uint256 public constant MAX_DEPTH = 4;
    /// @notice Most accounts a distribution of one split may reach through all its nested splits.
    uint256 public constant MAX_LEAVES = 64;
    /// @notice Longest single freeze; a longer one takes a new freeze (and a new event) when this one ends.
    uint256 public constant MAX_FREEZE_DURATION = 30 days;
    /// @notice EIP-712 typehash of a signed withdrawal.
    bytes32 public constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(address account,address to,uint256 amount,uint256 nonce,uint256 deadline)");
    /// @notice EIP-712 typehash of a signed transfer, which only `caller` may submit.
    bytes32 public constant TRANSFER_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferAuthorization(address account,address to,uint256 amount,address caller,bytes32 memo,uint256 nonce,"
        "uint256 deadline)"
    );

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev A balance, its freeze and its custodian flag share one slot: a withdrawal reads one slot.
    struct Account {
        uint128 balance;
        uint40 frozenUntil;
        bool custodian;
    }

    /// @dev `depth` is zero for addresses that are not splits.
    struct SplitState {
        uint128 distributed;
        uint8 depth;
        uint16 leaves;
    }

    IERC20 private immutable _TOKEN;
    address private immutable _DEPLOYER;
    bool private _custodiansSet;
    mapping(address account => Account) private _accounts;
    mapping(address split => SplitState) private _splits;
    mapping(address account => mapping(address spender => uint256)) private _allowances;

    /// @param token_ The USDC token (immutable).
    /// @param adminDelay Seconds a new admin must wait to accept the role (two-step transfer).
    /// @param admin Holder of the admin role, which grants the compliance role.
    constructor(IERC20 token_, uint48 adminDelay, address admin)
        AccessControlDefaultAdminRules(adminDelay, admin)
        EIP712("AgentMesh Ledger", "1")
    {
        _TOKEN = token_;
        _DEPLOYER = msg.sender;
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
    function frozenUntil(address account) external view returns (uint256) {
        return _accounts[account].frozenUntil;
    }

    /// @inheritdoc ISplitsLedger
    function canMove(address account) external view returns (bool) {
        Account memory held = _accounts[account];
        return held.custodian || (held.frozenUntil <= block.timestamp && !_TOKEN.isBlacklisted(account));
    }

    /// @inheritdoc ISplitsLedger
    function isCustodian(address account) external view returns (bool) {
        return _accounts[account].custodian;
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
    function splitTotals(address split) external view returns (uint256 distributed, uint256 dust) {
        uint256[] memory entries = _readSplit(split);
        distributed = _splits[split].distributed;
        dust = distributed;
        for (uint256 i; i < entries.length; ++i) {
            (, uint256 share,) = SplitLib.unpack(entries[i]);
            dust -= distributed * share / SHARE_SCALE;
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
                          SETUP AND COMPLIANCE
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function setCustodians(address[] calldata custodians) external {
        if (msg.sender != _DEPLOYER || _custodiansSet) revert LedgerCustodiansLocked();
        _custodiansSet = true;
        for (uint256 i; i < custodians.length; ++i) {
            if (custodians[i] == address(0)) revert LedgerInvalidReceiver(address(0));
            Account storage held = _accounts[custodians[i]];
            held.custodian = true;
            held.frozenUntil = 0;
        }
        emit CustodiansSet(custodians);
    }

    /// @inheritdoc ISplitsLedger
    function freeze(address account, uint256 until, uint8 reason) external onlyRole(COMPLIANCE_ROLE) {
        if (reason == 0) revert LedgerInvalidReason();
        Account storage held = _accounts[account];
        if (held.custodian) revert LedgerCustodianNotFreezable(account);
        uint256 latest = block.timestamp + MAX_FREEZE_DURATION;
        if (until <= block.timestamp || until > latest) revert LedgerInvalidFreeze(until, latest);
        // Safe cast: until <= latest, a timestamp far below 2^40.
        held.frozenUntil = uint40(until);
        emit AccountFrozen(account, until, reason, msg.sender);
    }

    /// @inheritdoc ISplitsLedger
    function unfreeze(address account, uint8 reason) external onlyRole(COMPLIANCE_ROLE) {
        if (reason == 0) revert LedgerInvalidReason();
        Account storage held = _accounts[account];
        if (held.frozenUntil <= block.timestamp) revert LedgerNotFrozen(account);
        held.frozenUntil = 0;
        emit AccountUnfrozen(account, reason, msg.sender);
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
        _splits[split] = SplitState({distributed: 0, depth: uint8(depth), leaves: uint16(leaves)});
        emit SplitCreated(split, definition);
    }

    /// @inheritdoc ISplitsLedger
    function distribute(address split) external nonReentrant {
        if (!isSplit(split)) revert LedgerNotASplit(split);
        Account storage held = _accounts[split];
        Account memory current = held;
        if (current.frozenUntil > block.timestamp) revert LedgerAccountFrozen(split, current.frozenUntil);
        if (_TOKEN.isBlacklisted(split)) revert LedgerAccountBlacklisted(split);
        if (current.balance == 0) revert LedgerZeroAmount();
        held.balance = 0;
        _distributeSplit(split, current.balance);
    }

    /*//////////////////////////////////////////////////////////////
                               DEPOSITS
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
        _TOKEN.pullExact(msg.sender, _sum(payees, amounts));
        for (uint256 i; i < payees.length; ++i) {
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
                          INTERNAL TRANSFERS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function transfer(address to, uint256 amount) external nonReentrant {
        _transfer(msg.sender, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function transferMany(address[] calldata payees, uint256[] calldata amounts) external nonReentrant {
        _debit(msg.sender, _sum(payees, amounts));
        for (uint256 i; i < payees.length; ++i) {
            _credit(payees[i], amounts[i]);
            emit Transferred(msg.sender, payees[i], amounts[i]);
        }
    }

    /// @inheritdoc ISplitsLedger
    function transferFrom(address account, address to, uint256 amount) external nonReentrant {
        _spendAllowance(account, amount);
        _transfer(account, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function transferWithSig(
        address account,
        address to,
        uint256 amount,
        bytes32 memo,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant {
        bytes32 structHash = keccak256(
            abi.encode(
                TRANSFER_AUTHORIZATION_TYPEHASH, account, to, amount, msg.sender, memo, _useNonce(account), deadline
            )
        );
        _checkSignature(account, structHash, deadline, signature);
        _transfer(account, to, amount);
    }

    /*//////////////////////////////////////////////////////////////
                              WITHDRAWALS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISplitsLedger
    function approve(address spender, uint256 amount) external {
        if (spender == address(0)) revert LedgerInvalidReceiver(spender);
        _allowances[msg.sender][spender] = amount;
        emit Approved(msg.sender, spender, amount);
    }

    /// @inheritdoc ISplitsLedger
    function withdraw(address to, uint256 amount) external nonReentrant {
        _withdraw(msg.sender, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function withdrawFrom(address account, address to, uint256 amount) external nonReentrant {
        _spendAllowance(account, amount);
        _withdraw(account, to, amount);
    }

    /// @inheritdoc ISplitsLedger
    function withdrawWithSig(address account, address to, uint256 amount, uint256 deadline, bytes calldata signature)
        external
        nonReentrant
    {
        bytes32 structHash =
            keccak256(abi.encode(WITHDRAWAL_TYPEHASH, account, to, amount, _useNonce(account), deadline));
        _checkSignature(account, structHash, deadline, signature);
        _withdraw(account, to, amount);
    }

    /*//////////////////////////////////////////////////////////////
                               INTERNALS
    //////////////////////////////////////////////////////////////*/

    /// @dev Σ`amounts`, refusing mismatched or empty lists and zero amounts.
    function _sum(address[] calldata payees, uint256[] calldata amounts) private pure returns (uint256 total) {
        uint256 count = payees.length;
        if (count != amounts.length) revert LedgerLengthMismatch(count, amounts.length);
        if (count == 0) revert LedgerZeroAmount();
        for (uint256 i; i < count; ++i) {
            if (amounts[i] == 0) revert LedgerZeroAmount();
            total += amounts[i];
        }
    }

    /// @dev Credits an account's or a split's balance (a split distributes it later, see `distribute`).
    function _credit(address payee, uint256 amount) private {
        if (payee == address(0)) revert LedgerInvalidReceiver(payee);
        if (amount > type(uint128).max) revert LedgerAmountOverflow(amount);
        // Safe cast: checked against uint128 above; the addition itself is checked.
        _accounts[payee].balance += uint128(amount);
    }

    /// @dev Debits `amount` from `account`, which must be allowed to move its balance (policy above).
    function _debit(address account, uint256 amount) private {
        if (amount == 0) revert LedgerZeroAmount();
        Account storage held = _accounts[account];
        Account memory current = held;
        if (!current.custodian) {
            if (current.frozenUntil > block.timestamp) revert LedgerAccountFrozen(account, current.frozenUntil);
            if (_TOKEN.isBlacklisted(account)) revert LedgerAccountBlacklisted(account);
        }
        if (current.balance < amount) revert LedgerInsufficientBalance(account, current.balance, amount);
        // Safe: amount <= balance < 2^128.
        held.balance = uint128(current.balance - amount);
    }

    function _transfer(address from, address to, uint256 amount) private {
        _debit(from, amount);
        _credit(to, amount);
        emit Transferred(from, to, amount);
    }

    function _withdraw(address account, address to, uint256 amount) private {
        if (to == address(0)) revert LedgerInvalidReceiver(to);
        _debit(account, amount);
        emit Withdrawn(account, to, amount);
        _TOKEN.safeTransfer(to, amount);
    }

    /// @dev Spends `amount` of the caller's allowance on `account`'s balance (an unlimited one stays).
    function _spendAllowance(address account, uint256 amount) private {
        uint256 allowed = _allowances[account][msg.sender];
        if (allowed == type(uint256).max) return;
        if (allowed < amount) revert LedgerInsufficientAllowance(account, msg.sender, allowed, amount);
        // Unchecked: amount <= allowed was checked above.
        unchecked {
            _allowances[account][msg.sender] = allowed - amount;
        }
    }

    /// @dev Checks `account`'s signature (EOA or ERC-1271) over `structHash` before `deadline`.
    function _checkSignature(address account, bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
    {
        if (block.timestamp > deadline) revert LedgerSignatureExpired(deadline);
        if (!SignatureChecker.isValidSignatureNow(account, _hashTypedDataV4(structHash), signature)) {
            revert LedgerInvalidSignature(account);
        }
    }

    /// @dev Credits each entry of `split` the growth of its lifetime entitlement
    /// floor(distributed × share / SHARE_SCALE); nested splits recurse (depth and leaves are bounded).
    /// The entry words are overwritten with the credits, which the event carries.
    function _distributeSplit(address split, uint256 amount) private {
        SplitState storage state = _splits[split];
        uint256 before = state.distributed;
        uint256 afterwards = before + amount;
        if (afterwards > type(uint128).max) revert LedgerAmountOverflow(afterwards);
        state.distributed = uint128(afterwards);
        uint256[] memory entries = SplitLib.read(split);
        uint256 count = entries.length;
        for (uint256 i; i < count; ++i) {
            (address account, uint256 share, bool nested) = SplitLib.unpack(entries[i]);
            uint256 part;
            // Unchecked: afterwards < 2^128 and share <= SHARE_SCALE, so neither product overflows, and
            // an entitlement only grows with `distributed`, so the difference is not negative.
            unchecked {
                part = afterwards * share / SHARE_SCALE - before * share / SHARE_SCALE;
            }
            entries[i] = part;
            if (part == 0) continue;
            // A nested split that may not move its funds (frozen, or blacklisted by the token) keeps its
            // part as its own balance, distributed when it may again.
            if (nested && _mayDistribute(account)) _distributeSplit(account, part);
            else _addToBalance(account, part);
        }
        emit SplitDistributed(split, amount, entries);
    }

    /// @dev Whether nested split `split` is neither frozen nor blacklisted by the token.
    function _mayDistribute(address split) private view returns (bool) {
        return _accounts[split].frozenUntil <= block.timestamp && !_TOKEN.isBlacklisted(split);
    }

    /// @dev Adds `part` (at most a distributed amount, so below 2^128) to `account`'s balance.
    /// Hand-written: it runs once per split recipient and saves ~10% of a distribution's gas per
    /// recipient (bench:gas splitPerExtraRecipientGas); the balance is the low 128 bits of the slot.
    function _addToBalance(address account, uint256 part) private {
        Account storage held = _accounts[account];
        assembly ("memory-safe") {
            let word := sload(held.slot)
            let sum := add(and(word, 0xffffffffffffffffffffffffffffffff), part)
            if shr(128, sum) {
                mstore(0x00, 0xf46aa528) // LedgerAmountOverflow(uint256)
                mstore(0x20, sum)
                revert(0x1c, 0x24)
            }
            sstore(held.slot, or(and(word, not(0xffffffffffffffffffffffffffffffff)), sum))
        }
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
            // A custodian's balance is other people's money it accounts for: a credit to it would be lost.
            if (_accounts[account].custodian) revert LedgerInvalidReceiver(account);
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
