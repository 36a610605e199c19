// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IComputeEscrow} from "./interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";
import {SessionLib} from "./libraries/SessionLib.sol";
import {TokenPullLib} from "./libraries/TokenPullLib.sol";

/// @title ComputeEscrow
/// @notice Compute budgets and metered sessions paid by agents' signed cumulative vouchers.
/// @dev Money only moves on signed data: a provider is paid at most what the agent signed, an agent
/// spends at most its session's lock, which is at most its budget's per-session limit and balance.
/// Settlement aggregates payouts per provider and credits them in the ledger with one internal transfer.
/// The admin can only set the fee for future sessions and the treasury, and hand its role over (two
/// steps, with a delay); it has no path to budgets, locks or stakes.
contract ComputeEscrow is IComputeEscrow, AccessControlDefaultAdminRules, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using TokenPullLib for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Highest protocol fee, in basis points (10%).
    uint256 public constant MAX_FEE_BPS = 1_000;
    /// @notice Part of a slashed stake paid to whoever proved the double sign, in basis points.
    uint256 public constant SLASH_REWARD_BPS = 1_000;
    /// @notice Most sessions one batch may touch. The worst batch (every voucher for a different
    /// provider) stays below Base's per-transaction gas cap of 2^24 with room to spare.
    uint256 public constant MAX_BATCH = 100;
    /// @notice Shortest challenge window the constructor accepts.
    uint256 public constant MIN_CHALLENGE_WINDOW = 1 hours;
    /// @notice `claimEnd` of a finalized session.
    uint32 public constant FINALIZED = 1;

    uint256 private constant _BPS = 10_000;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev What one settlement transaction owes one provider, and the fees its sessions pay.
    struct ProviderTally {
        uint256 providerId;
        address payout;
        uint256 amount;
        uint256 fees;
        IProviderRegistry.Metrics metrics;
    }

    IERC20 private immutable _TOKEN;
    IProviderRegistry private immutable _REGISTRY;
    ISplitsLedger private immutable _LEDGER;
    uint32 private immutable _CHALLENGE_WINDOW;

    uint16 private _feeBps;
    address private _treasury;
    uint64 private _budgetCount;
    mapping(uint256 budgetId => Budget) private _budgets;
    mapping(uint256 budgetId => mapping(address agent => bool)) private _allowedAgents;
    mapping(bytes32 sessionId => SessionState) private _sessions;

    /// @param token_ The USDC token (immutable).
    /// @param registry_ The provider registry.
    /// @param ledger_ The ledger that holds the budgets and credits payouts (this escrow must be one of
    /// its custodians).
    /// @param challengeWindow_ Seconds a provider has to post a newer voucher after a close request
    /// (at least MIN_CHALLENGE_WINDOW).
    /// @param adminDelay Seconds a new admin must wait to accept the role (two-step transfer).
    /// @param admin Holder of the admin role.
    /// @param treasury_ Account or split credited with fees.
    /// @param feeBps_ Initial protocol fee in basis points.
    constructor(
        IERC20 token_,
        IProviderRegistry registry_,
        ISplitsLedger ledger_,
        uint32 challengeWindow_,
        uint48 adminDelay,
        address admin,
        address treasury_,
        uint256 feeBps_
    ) AccessControlDefaultAdminRules(adminDelay, admin) EIP712("AgentMesh Escrow", "1") {
        if (challengeWindow_ < MIN_CHALLENGE_WINDOW) {
            revert EscrowChallengeWindowTooShort(challengeWindow_, MIN_CHALLENGE_WINDOW);
        }
        _checkWiring(address(token_), address(ledger_.token()));
        _checkWiring(address(ledger_), address(registry_.ledger()));
        _TOKEN = token_;
        _REGISTRY = registry_;
        _LEDGER = ledger_;
        _CHALLENGE_WINDOW = challengeWindow_;
        _setTreasury(treasury_);
        _setFee(feeBps_);
        token_.forceApprove(address(ledger_), type(uint256).max);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputeEscrow
    function token() external view returns (IERC20) {
        return _TOKEN;
    }

    /// @inheritdoc IComputeEscrow
    function registry() external view returns (IProviderRegistry) {
        return _REGISTRY;
    }

    /// @inheritdoc IComputeEscrow
    function ledger() external view returns (ISplitsLedger) {
        return _LEDGER;
    }

    /// @inheritdoc IComputeEscrow
    function challengeWindow() external view returns (uint256) {
        return _CHALLENGE_WINDOW;
    }

    /// @inheritdoc IComputeEscrow
    function feeBps() external view returns (uint256) {
        return _feeBps;
    }

    /// @inheritdoc IComputeEscrow
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IComputeEscrow
    function budgetCount() external view returns (uint256) {
        return _budgetCount;
    }

    /// @inheritdoc IComputeEscrow
    function getBudget(uint256 budgetId) external view returns (Budget memory) {
        return _budget(budgetId);
    }

    /// @inheritdoc IComputeEscrow
    function isAgentAllowed(uint256 budgetId, address agent) external view returns (bool) {
        return _allowedAgents[budgetId][agent];
    }

    /// @inheritdoc IComputeEscrow
    function getSession(bytes32 sessionId) external view returns (SessionState memory) {
        return _sessions[sessionId];
    }

    /// @inheritdoc IComputeEscrow
    function sessionIdOf(SessionTerms calldata terms) external pure returns (bytes32) {
        return SessionLib.id(terms);
    }

    /// @inheritdoc IComputeEscrow
    function openDigest(SessionTerms calldata terms) external view returns (bytes32) {
        return _hashTypedDataV4(SessionLib.id(terms));
    }

    /// @inheritdoc IComputeEscrow
    function voucherDigest(Voucher calldata voucher) external view returns (bytes32) {
        return _hashTypedDataV4(SessionLib.hash(voucher, SessionLib.id(voucher.terms)));
    }

    /*//////////////////////////////////////////////////////////////
                                BUDGETS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputeEscrow
    function createBudget(uint256 amount, uint256 perSessionLimit, uint256 expiry, address[] calldata agents)
        external
        nonReentrant
        returns (uint256 budgetId)
    {
        return _createBudget(amount, perSessionLimit, expiry, agents);
    }

    /// @inheritdoc IComputeEscrow
    function createBudgetWithPermit(
        uint256 amount,
        uint256 perSessionLimit,
        uint256 expiry,
        address[] calldata agents,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 budgetId) {
        _TOKEN.tryPermit(msg.sender, amount, deadline, v, r, s);
        return _createBudget(amount, perSessionLimit, expiry, agents);
    }

    /// @inheritdoc IComputeEscrow
    function topUp(uint256 budgetId, uint256 amount) external nonReentrant {
        _addToBudget(budgetId, amount);
        _deposit(amount);
    }

    /// @inheritdoc IComputeEscrow
    function topUpFromBalance(uint256 budgetId, uint256 amount) external nonReentrant {
        _addToBudget(budgetId, amount);
        _LEDGER.transferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IComputeEscrow
    function setAgentsAllowed(uint256 budgetId, address[] calldata agents, bool allowed) external {
        _onlyCreator(budgetId);
        _setAgentsAllowed(budgetId, agents, allowed);
    }

    /// @inheritdoc IComputeEscrow
    function setBudgetTerms(uint256 budgetId, uint256 perSessionLimit, uint256 expiry) external {
        Budget storage budget = _onlyCreator(budgetId);
        _checkBudgetTerms(perSessionLimit, expiry);
        // Safe casts: bounded by _checkBudgetTerms.
        budget.perSessionLimit = uint128(perSessionLimit);
        budget.expiry = uint32(expiry);
        emit BudgetTermsSet(budgetId, perSessionLimit, expiry);
    }

    /// @inheritdoc IComputeEscrow
    function refund(uint256 budgetId, uint256 amount) external nonReentrant {
        Budget storage budget = _onlyCreator(budgetId);
        uint256 available = budget.available;
        if (amount == 0) revert EscrowInvalidAmount(amount);
        if (amount > available) revert EscrowInsufficientBudget(budgetId, available, amount);
        if (!_LEDGER.canMove(msg.sender)) revert EscrowCreatorRestricted(budgetId, msg.sender);
        // Safe: amount <= available < 2^128.
        budget.available = uint128(available - amount);
        emit BudgetRefunded(budgetId, msg.sender, amount, false);
        _LEDGER.withdraw(msg.sender, amount);
    }

    /// @inheritdoc IComputeEscrow
    function returnExpired(uint256 budgetId) external nonReentrant {
        Budget storage budget = _budget(budgetId);
        if (block.timestamp < budget.expiry) revert EscrowBudgetNotExpired(budgetId, budget.expiry);
        uint256 amount = budget.available;
        if (amount == 0) revert EscrowInvalidAmount(amount);
        budget.available = 0;
        address creator = budget.creator;
        emit BudgetRefunded(budgetId, creator, amount, true);
        _LEDGER.transfer(creator, amount);
    }

    /*//////////////////////////////////////////////////////////////
                                SESSIONS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputeEscrow
    function openSession(SessionTerms calldata terms, CompactSignature calldata agentSignature)
        external
        nonReentrant
        returns (bytes32 sessionId)
    {
        (sessionId,) = _open(terms, agentSignature, 0);
    }

    /// @inheritdoc IComputeEscrow
    function openSessions(OpenRequest[] calldata requests)
        external
        nonReentrant
        returns (bytes32[] memory sessionIds)
    {
        uint256 count = _checkBatch(requests.length);
        sessionIds = new bytes32[](count);
        uint256 checkedBudget;
        for (uint256 i; i < count; ++i) {
            (sessionIds[i], checkedBudget) = _open(requests[i].terms, requests[i].agentSignature, checkedBudget);
        }
    }

    /// @inheritdoc IComputeEscrow
    function settle(SignedVoucher[] calldata vouchers) external nonReentrant {
        uint256 count = _checkBatch(vouchers.length);
        ProviderTally[] memory tallies = new ProviderTally[](count);
        for (uint256 i; i < count; ++i) {
            _settle(vouchers[i], tallies, false);
        }
        _payout(tallies);
    }

    /// @inheritdoc IComputeEscrow
    function closeCooperative(SignedVoucher[] calldata vouchers) external nonReentrant {
        uint256 count = _checkBatch(vouchers.length);
        ProviderTally[] memory tallies = new ProviderTally[](count);
        for (uint256 i; i < count; ++i) {
            (bytes32 sessionId, SessionState storage state) = _settle(vouchers[i], tallies, true);
            _finalize(vouchers[i].voucher.terms, sessionId, state);
        }
        _payout(tallies);
    }

    /// @inheritdoc IComputeEscrow
    function requestClose(SessionTerms calldata terms) external {
        bytes32 sessionId = SessionLib.id(terms);
        SessionState storage state = _openState(sessionId);
        if (msg.sender != terms.agent && msg.sender != _budgets[terms.budgetId].creator) {
            revert EscrowNotAuthorized(sessionId, msg.sender);
        }
        uint256 claimEnd = state.claimEnd;
        if (block.timestamp >= claimEnd) revert EscrowClaimWindowOver(sessionId, claimEnd);
        uint256 windowEnd = block.timestamp + _CHALLENGE_WINDOW;
        // A request only ever shortens the window: repeating it cannot extend the provider's time.
        // Safe cast: windowEnd < claimEnd, which fits uint32.
        if (windowEnd < claimEnd) state.claimEnd = uint32(claimEnd = windowEnd);
        emit CloseRequested(sessionId, msg.sender, claimEnd);
    }

    /// @inheritdoc IComputeEscrow
    function closeByProvider(SessionTerms calldata terms) external {
        bytes32 sessionId = SessionLib.id(terms);
        SessionState storage state = _openState(sessionId);
        if (msg.sender != terms.receiptSigner) {
            (address owner,,) = _REGISTRY.settlementParties(terms.providerId);
            if (msg.sender != owner) revert EscrowNotAuthorized(sessionId, msg.sender);
        }
        _finalize(terms, sessionId, state);
    }

    /// @inheritdoc IComputeEscrow
    function finalize(SessionTerms calldata terms) external {
        bytes32 sessionId = SessionLib.id(terms);
        SessionState storage state = _openState(sessionId);
        if (block.timestamp < state.claimEnd) revert EscrowClaimWindowOpen(sessionId, state.claimEnd);
        _finalize(terms, sessionId, state);
    }

    /// @inheritdoc IComputeEscrow
    function slashDoubleSign(
        Voucher calldata first,
        CompactSignature calldata firstSignature,
        Voucher calldata second,
        CompactSignature calldata secondSignature
    ) external nonReentrant {
        SessionTerms calldata terms = first.terms;
        bytes32 sessionId = SessionLib.id(terms);
        if (SessionLib.id(second.terms) != sessionId || first.sequence != second.sequence) {
            revert EscrowInvalidSlashProof();
        }
        // Opened here (finalized sessions included): its terms passed the registry's checks at open,
        // so its provider and receipt signer are the ones the proof binds.
        if (_sessions[sessionId].claimEnd == 0) revert EscrowUnknownSession(sessionId);
        bytes32 firstDigest = _hashTypedDataV4(SessionLib.hash(first, sessionId));
        bytes32 secondDigest = _hashTypedDataV4(SessionLib.hash(second, sessionId));
        address signer = terms.receiptSigner;
        if (
            firstDigest == secondDigest || _recover(firstDigest, firstSignature) != signer
                || _recover(secondDigest, secondSignature) != signer
        ) revert EscrowInvalidSlashProof();

        uint256 providerId = terms.providerId;
        uint256 amount = _REGISTRY.slash(providerId);
        uint256 reward = amount * SLASH_REWARD_BPS / _BPS;
        emit DoubleSignSlashed(providerId, signer, msg.sender, amount, reward);
        address[] memory payees = new address[](2);
        uint256[] memory amounts = new uint256[](2);
        uint256 count;
        if (reward != 0) (payees[count], amounts[count++]) = (msg.sender, reward);
        if (amount != reward) (payees[count], amounts[count++]) = (_treasury, amount - reward);
        _payLedger(payees, amounts, count);
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputeEscrow
    function setFee(uint256 feeBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setFee(feeBps_);
    }

    /// @inheritdoc IComputeEscrow
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    /*//////////////////////////////////////////////////////////////
                          INTERNALS: BUDGETS
    //////////////////////////////////////////////////////////////*/

    function _createBudget(uint256 amount, uint256 perSessionLimit, uint256 expiry, address[] calldata agents)
        private
        returns (uint256 budgetId)
    {
        if (amount == 0 || amount > type(uint128).max) revert EscrowInvalidAmount(amount);
        _checkBudgetTerms(perSessionLimit, expiry);
        budgetId = ++_budgetCount;
        // Safe casts: bounded by the checks above.
        _budgets[budgetId] = Budget({
            creator: msg.sender,
            expiry: uint32(expiry),
            available: uint128(amount),
            perSessionLimit: uint128(perSessionLimit)
        });
        emit BudgetCreated(budgetId, msg.sender, amount, perSessionLimit, expiry);
        _setAgentsAllowed(budgetId, agents, true);
        _deposit(amount);
    }

    /// @dev Pulls `amount` USDC from the caller and keeps it as the escrow's ledger balance.
    function _deposit(uint256 amount) private {
        _TOKEN.pullExact(msg.sender, amount);
        _LEDGER.pay(address(this), amount);
    }

    /// @dev Adds `amount` to an unexpired budget; the caller then brings the funds in.
    function _addToBudget(uint256 budgetId, uint256 amount) private {
        Budget storage budget = _budget(budgetId);
        if (block.timestamp >= budget.expiry) revert EscrowBudgetExpired(budgetId, budget.expiry);
        uint256 available = budget.available + amount;
        if (amount == 0 || available > type(uint128).max) revert EscrowInvalidAmount(amount);
        // Safe cast: checked against uint128 above.
        budget.available = uint128(available);
        emit BudgetToppedUp(budgetId, msg.sender, amount);
    }

    function _checkBudgetTerms(uint256 perSessionLimit, uint256 expiry) private view {
        if (perSessionLimit == 0 || perSessionLimit > type(uint64).max) revert EscrowInvalidAmount(perSessionLimit);
        // Sessions settle until deadline + window, which must fit the uint32 timestamps.
        if (expiry <= block.timestamp || expiry > type(uint32).max - _CHALLENGE_WINDOW) {
            revert EscrowInvalidExpiry(expiry);
        }
    }

    function _setAgentsAllowed(uint256 budgetId, address[] calldata agents, bool allowed) private {
        for (uint256 i; i < agents.length; ++i) {
            if (agents[i] == address(0)) revert EscrowZeroAddress();
            _allowedAgents[budgetId][agents[i]] = allowed;
            emit AgentAllowedSet(budgetId, agents[i], allowed);
        }
    }

    function _budget(uint256 budgetId) private view returns (Budget storage budget) {
        budget = _budgets[budgetId];
        if (budget.creator == address(0)) revert EscrowUnknownBudget(budgetId);
    }

    function _onlyCreator(uint256 budgetId) private view returns (Budget storage budget) {
        budget = _budget(budgetId);
        if (budget.creator != msg.sender) revert EscrowNotBudgetCreator(budgetId, msg.sender);
    }

    /*//////////////////////////////////////////////////////////////
                          INTERNALS: SESSIONS
    //////////////////////////////////////////////////////////////*/

    /// @dev Opens one session. `checkedBudget` is a budget whose creator this transaction has already
    /// found free to move funds (0: none); returns the session id and the budget checked now.
    function _open(SessionTerms calldata terms, CompactSignature calldata agentSignature, uint256 checkedBudget)
        private
        returns (bytes32 sessionId, uint256 budgetId)
    {
        if (terms.agent == address(0)) revert EscrowZeroAddress();
        sessionId = SessionLib.id(terms);
        SessionState storage state = _sessions[sessionId];
        if (state.claimEnd != 0) revert EscrowSessionExists(sessionId);
        if (msg.sender != terms.agent && _recover(_hashTypedDataV4(sessionId), agentSignature) != terms.agent) {
            revert EscrowInvalidSignature(sessionId, terms.agent);
        }

        budgetId = terms.budgetId;
        Budget storage budget = _budget(budgetId);
        uint256 expiry = budget.expiry;
        if (block.timestamp >= expiry) revert EscrowBudgetExpired(budgetId, expiry);
        if (terms.deadline <= block.timestamp || terms.deadline > expiry) {
            revert EscrowInvalidDeadline(terms.deadline, expiry);
        }
        if (!_allowedAgents[budgetId][terms.agent]) revert EscrowAgentNotAllowed(budgetId, terms.agent);
        // A creator who may not move funds (frozen, or blacklisted by the token) cannot spend a budget
        // through new sessions either; sessions already open still settle what their agents signed.
        // A batch checks each budget's creator once.
        if (budgetId != checkedBudget && !_LEDGER.canMove(budget.creator)) {
            revert EscrowCreatorRestricted(budgetId, budget.creator);
        }
        uint256 maxSpend = terms.maxSpend;
        if (maxSpend > budget.perSessionLimit) {
            revert EscrowSessionLimitExceeded(budgetId, budget.perSessionLimit, maxSpend);
        }
        uint256 available = budget.available;
        if (maxSpend > available) revert EscrowInsufficientBudget(budgetId, available, maxSpend);

        IProviderRegistry.SessionQuote memory quote = _REGISTRY.quote(terms.providerId, terms.modelId);
        if (
            quote.inputPricePer1K != terms.inputPricePer1K || quote.outputPricePer1K != terms.outputPricePer1K
                || quote.minChargePerCall != terms.minChargePerCall
        ) revert EscrowPriceMismatch(terms.providerId, terms.modelId);
        if (quote.receiptSigner != terms.receiptSigner) {
            revert EscrowReceiptSignerMismatch(terms.providerId, quote.receiptSigner, terms.receiptSigner);
        }
        if (terms.feeBps != _feeBps) revert EscrowFeeMismatch(_feeBps, terms.feeBps);
        if (maxSpend == 0 || maxSpend < quote.minChargePerCall) {
            revert EscrowSessionTooSmall(maxSpend, quote.minChargePerCall);
        }

        // Safe: maxSpend <= available; expiry + window fits uint32 (checked when the expiry was set).
        budget.available = uint128(available - maxSpend);
        state.claimEnd = uint32(terms.deadline + uint256(_CHALLENGE_WINDOW));
        emit SessionOpened(sessionId, budgetId, terms.agent, terms);
    }

    /// @dev Verifies and applies one voucher, adding what it pays to the provider's tally.
    function _settle(SignedVoucher calldata signed, ProviderTally[] memory tallies, bool requireFinal)
        private
        returns (bytes32 sessionId, SessionState storage state)
    {
        Voucher calldata voucher = signed.voucher;
        SessionTerms calldata terms = voucher.terms;
        sessionId = SessionLib.id(terms);
        if (requireFinal && !voucher.isFinal) revert EscrowVoucherNotFinal(sessionId);
        state = _sessions[sessionId];
        SessionState memory previous = state;
        if (previous.claimEnd <= FINALIZED) revert EscrowSessionNotOpen(sessionId);
        if (block.timestamp >= previous.claimEnd) revert EscrowClaimWindowOver(sessionId, previous.claimEnd);
        SessionState memory next = SessionState({
            settled: voucher.cumulativeCost,
            sequence: voucher.sequence,
            requestCount: voucher.requestCount,
            inputTokens: voucher.inputTokens,
            outputTokens: voucher.outputTokens,
            latencyMs: voucher.latencyMs,
            claimEnd: previous.claimEnd
        });
        if (next.sequence <= previous.sequence) revert EscrowVoucherStale(sessionId, previous.sequence, next.sequence);
        if (
            next.settled < previous.settled || next.requestCount < previous.requestCount
                || next.inputTokens < previous.inputTokens || next.outputTokens < previous.outputTokens
                || next.latencyMs < previous.latencyMs
        ) revert EscrowVoucherNotMonotonic(sessionId);
        uint256 maxSpend = terms.maxSpend;
        if (next.settled > maxSpend) revert EscrowVoucherExceedsLock(sessionId, maxSpend, next.settled);
        // Cannot overflow: a uint32 times a uint32.
        unchecked {
            uint256 minimum = uint256(next.requestCount) * terms.minChargePerCall;
            if (next.settled < minimum) revert EscrowVoucherBelowMinCharge(sessionId, minimum, next.settled);
        }

        bytes32 digest = _hashTypedDataV4(SessionLib.hash(voucher, sessionId));
        address agent = terms.agent;
        if (_recover(digest, signed.agentSignature) != agent) revert EscrowInvalidSignature(sessionId, agent);
        address receiptSigner = terms.receiptSigner;
        if (_recover(digest, signed.providerSignature) != receiptSigner) {
            revert EscrowInvalidSignature(sessionId, receiptSigner);
        }

        SessionLib.store(state, next);
        ProviderTally memory tally = _tallyFor(tallies, terms.providerId);
        // Unchecked: every delta is non-negative (monotonicity checked above), each is below 2^64,
        // and at most MAX_BATCH of them are summed into 64-bit (or 256-bit) totals; a fee is at most
        // MAX_FEE_BPS of its payment.
        unchecked {
            uint256 paid = next.settled - previous.settled;
            tally.amount += paid;
            tally.fees += paid * terms.feeBps / _BPS;
            tally.metrics.requests += next.requestCount - previous.requestCount;
            tally.metrics.inputTokens += next.inputTokens - previous.inputTokens;
            tally.metrics.outputTokens += next.outputTokens - previous.outputTokens;
            tally.metrics.latencyMs += next.latencyMs - previous.latencyMs;
            emit VoucherSettled(sessionId, next.sequence, paid);
        }
    }

    /// @dev Marks the session finalized and returns its unused lock to the budget.
    function _finalize(SessionTerms calldata terms, bytes32 sessionId, SessionState storage state) private {
        uint256 settled = state.settled;
        uint256 returned = terms.maxSpend - settled;
        state.claimEnd = FINALIZED;
        // Checked addition: a budget never holds more than was deposited into it (< 2^128).
        _budgets[terms.budgetId].available += uint128(returned);
        emit SessionFinalized(sessionId, settled, returned);
    }

    function _openState(bytes32 sessionId) private view returns (SessionState storage state) {
        state = _sessions[sessionId];
        if (state.claimEnd <= FINALIZED) revert EscrowSessionNotOpen(sessionId);
    }

    /*//////////////////////////////////////////////////////////////
                          INTERNALS: PAYOUTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Finds (or starts) the tally of `providerId`; tallies fill from index 0, unused ones have id 0.
    function _tallyFor(ProviderTally[] memory tallies, uint256 providerId)
        private
        view
        returns (ProviderTally memory tally)
    {
        uint256 i;
        for (; i < tallies.length; ++i) {
            tally = tallies[i];
            if (tally.providerId == providerId) return tally;
            if (tally.providerId == 0) break;
        }
        (,, address payout) = _REGISTRY.settlementParties(providerId);
        tally = tallies[i];
        tally.providerId = providerId;
        tally.payout = payout;
    }

    /// @dev Records each provider's metrics and pays payouts and the protocol fee into the ledger.
    function _payout(ProviderTally[] memory tallies) private {
        uint256 count = tallies.length;
        address[] memory payees = new address[](count + 1);
        uint256[] memory amounts = new uint256[](count + 1);
        uint256 payeeCount;
        uint256 fees;
        for (uint256 i; i < count; ++i) {
            ProviderTally memory tally = tallies[i];
            if (tally.providerId == 0) break;
            uint256 earnings = tally.amount - tally.fees;
            fees += tally.fees;
            tally.metrics.earnings = earnings;
            if (earnings != 0) (payees[payeeCount], amounts[payeeCount++]) = (tally.payout, earnings);
            _REGISTRY.recordSettlement(tally.providerId, tally.metrics);
        }
        if (fees != 0) (payees[payeeCount], amounts[payeeCount++]) = (_treasury, fees);
        _payLedger(payees, amounts, payeeCount);
    }

    /// @dev Credits the first `count` entries from this contract's ledger balance (no token moves).
    function _payLedger(address[] memory payees, uint256[] memory amounts, uint256 count) private {
        if (count == 0) return;
        assembly ("memory-safe") {
            mstore(payees, count)
            mstore(amounts, count)
        }
        _LEDGER.transferMany(payees, amounts);
    }

    function _checkBatch(uint256 size) private pure returns (uint256) {
        if (size == 0 || size > MAX_BATCH) revert EscrowInvalidBatchSize(size, MAX_BATCH);
        return size;
    }

    /// @dev ECDSA recovery of a compact signature; address(0) for anything invalid (including
    /// high-s), which never matches a signer.
    function _recover(bytes32 digest, CompactSignature calldata signature) private pure returns (address signer) {
        (signer,,) = ECDSA.tryRecover(digest, signature.r, signature.yParityAndS);
    }

    function _setFee(uint256 feeBps_) private {
        if (feeBps_ > MAX_FEE_BPS) revert EscrowFeeTooHigh(feeBps_, MAX_FEE_BPS);
        // Safe cast: at most MAX_FEE_BPS.
        _feeBps = uint16(feeBps_);
        emit FeeSet(feeBps_);
    }

    function _checkWiring(address expected, address actual) private pure {
        if (actual != expected) revert EscrowWiringMismatch(expected, actual);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert EscrowZeroAddress();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }
}
