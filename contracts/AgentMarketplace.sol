// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {AgentPaymentAddress} from "./AgentPaymentAddress.sol";
import {IAgentMarketplace} from "./interfaces/IAgentMarketplace.sol";
import {IAgentPaymentAddress} from "./interfaces/IAgentPaymentAddress.sol";
import {IComputeEscrow} from "./interfaces/IComputeEscrow.sol";
import {IERC3009} from "./interfaces/IERC3009.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";
import {FlowOfFundsLib} from "./libraries/FlowOfFundsLib.sol";
import {PaymentChainLib} from "./libraries/PaymentChainLib.sol";
import {TallyLib} from "./libraries/TallyLib.sol";
import {TokenPullLib} from "./libraries/TokenPullLib.sol";

/// @title AgentMarketplace
/// @notice Agent listings with a price per call and a flow of funds; payments to an agent's payment
/// address are split by that flow into SplitsLedger balances and ComputeEscrow budgets, in batches.
/// @dev Payments through the marketplace wait as its ledger balance (the sum of every agent's pending
/// payments) until `distribute` credits them on. Referral attribution needs no storage per payment (see
/// `PaymentChainLib`). The admin can only set the treasury and hand its role over (two steps, with a delay).
contract AgentMarketplace is IAgentMarketplace, AccessControlDefaultAdminRules, EIP712, ReentrancyGuardTransient {
    using FlowOfFundsLib for FlowOfFunds;
    using TallyLib for TallyLib.Tally;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Shares and referral shares are parts of this scale (parts per million).
    uint256 public constant SHARE_SCALE = FlowOfFundsLib.SHARE_SCALE;
    /// @notice Most fixed amounts, and most shares, one flow may list.
    uint256 public constant MAX_COMPONENTS = 16;
    /// @notice Most payments an agent may have pending; then payments through the marketplace wait
    /// for a distribution (which a full chain cannot race). A full batch of them with every flow
    /// component used and every referrer distinct stays far below Base's per-transaction gas cap.
    uint256 public constant MAX_PENDING = 256;
    /// @notice Longest agent name, in bytes.
    uint256 public constant MAX_NAME_LENGTH = 64;
    /// @notice Longest endpoint or metadata URI, in bytes.
    uint256 public constant MAX_URI_LENGTH = 512;
    /// @notice EIP-712 typehash of a signed referral.
    bytes32 public constant REFERRAL_TYPEHASH = keccak256("Referral(address account,address referrer)");

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev Owner, status and price share the slot a payment reads.
    struct Listing {
        address owner;
        AgentStatus status;
        uint64 pricePerCall;
        bytes32 flowHash;
    }

    /// @dev `head` is written by every payment; `base` only by distributions (see PaymentChainLib).
    struct PaymentChain {
        bytes32 head;
        bytes32 base;
        address paymentAddress;
    }

    /// @dev What a batch owes, before it is paid: per flow output, the payee referral rewards, the
    /// full calls (all of them, and those without a payer referrer) and the credits per ledger account.
    struct Distribution {
        uint256[] outputs;
        uint256 payeeRewards;
        uint256 calls;
        uint256 unreferredCalls;
        TallyLib.Tally credits;
    }

    IERC20 private immutable _TOKEN;
    ISplitsLedger private immutable _LEDGER;
    IComputeEscrow private immutable _ESCROW;
    address private immutable _PAYMENT_ADDRESS_IMPLEMENTATION;

    address private _treasury;
    uint256 private _agentCount;
    mapping(uint256 agentId => Listing) private _listings;
    mapping(uint256 agentId => PaymentChain) private _chains;
    mapping(uint256 agentId => AgentMetadata) private _metadata;
    mapping(address account => address referrer) private _referrers;
    mapping(address owner => uint256 listings) private _listingCounts;

    /// @param token_ The USDC token (immutable); the ledger and the escrow must hold the same.
    /// @param ledger_ The ledger that holds pending payments and credits every distribution (this
    /// marketplace must be one of its custodians).
    /// @param escrow_ The escrow whose budgets can be recipients.
    /// @param adminDelay Seconds a new admin must wait to accept the role (two-step transfer).
    /// @param admin Holder of the admin role (sets the treasury).
    /// @param treasury_ Ledger account (or split) receiving a flow's remainder when none is named.
    constructor(
        IERC20 token_,
        ISplitsLedger ledger_,
        IComputeEscrow escrow_,
        uint48 adminDelay,
        address admin,
        address treasury_
    ) AccessControlDefaultAdminRules(adminDelay, admin) EIP712("AgentMesh Marketplace", "1") {
        _checkToken(address(token_), address(ledger_.token()));
        _checkToken(address(token_), address(escrow_.token()));
        _TOKEN = token_;
        _LEDGER = ledger_;
        _ESCROW = escrow_;
        _PAYMENT_ADDRESS_IMPLEMENTATION = address(new AgentPaymentAddress(token_, ledger_));
        _setTreasury(treasury_);
        ledger_.approve(address(escrow_), type(uint256).max);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgentMarketplace
    function token() external view returns (IERC20) {
        return _TOKEN;
    }

    /// @inheritdoc IAgentMarketplace
    function ledger() external view returns (ISplitsLedger) {
        return _LEDGER;
    }

    /// @inheritdoc IAgentMarketplace
    function escrow() external view returns (IComputeEscrow) {
        return _ESCROW;
    }

    /// @inheritdoc IAgentMarketplace
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IAgentMarketplace
    function agentCount() external view returns (uint256) {
        return _agentCount;
    }

    /// @inheritdoc IAgentMarketplace
    function getAgent(uint256 agentId) external view returns (Agent memory) {
        Listing storage listing = _listing(agentId);
        return Agent({
            owner: listing.owner,
            status: listing.status,
            pricePerCall: listing.pricePerCall,
            flowHash: listing.flowHash,
            paymentAddress: _chains[agentId].paymentAddress,
            metadata: _metadata[agentId]
        });
    }

    /// @inheritdoc IAgentMarketplace
    function paymentAddressOf(uint256 agentId) external view returns (address) {
        _listing(agentId);
        return _chains[agentId].paymentAddress;
    }

    /// @inheritdoc IAgentMarketplace
    function nextPaymentAddress(address owner) external view returns (address) {
        return Clones.predictDeterministicAddress(_PAYMENT_ADDRESS_IMPLEMENTATION, _paymentSalt(owner));
    }

    /// @inheritdoc IAgentMarketplace
    function paymentAddressImplementation() external view returns (address) {
        return _PAYMENT_ADDRESS_IMPLEMENTATION;
    }

    /// @inheritdoc IAgentMarketplace
    function referrerOf(address account) external view returns (address) {
        return _referrers[account];
    }

    /// @inheritdoc IAgentMarketplace
    function paymentChain(uint256 agentId) external view returns (bytes32 head, bytes32 base, uint256 pending) {
        PaymentChain storage chain = _chains[agentId];
        (head, base) = (chain.head, chain.base);
        pending = PaymentChainLib.pending(head);
    }

    /// @inheritdoc IAgentMarketplace
    function hashFlow(FlowOfFunds calldata flow) external pure returns (bytes32) {
        return flow.hash();
    }

    /// @inheritdoc IAgentMarketplace
    function splitPayment(FlowOfFunds calldata flow, uint256 pricePerCall, uint256 amount)
        external
        pure
        returns (PaymentSplit memory)
    {
        if (pricePerCall == 0) revert MarketplaceInvalidPrice(pricePerCall);
        return FlowOfFundsLib.splitPayment(flow.amounts(), pricePerCall, amount);
    }

    /// @inheritdoc IAgentMarketplace
    function referralDigest(address account, address referrer) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REFERRAL_TYPEHASH, account, referrer)));
    }

    /*//////////////////////////////////////////////////////////////
                                LISTINGS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgentMarketplace
    function list(AgentMetadata calldata metadata, uint256 pricePerCall, FlowOfFunds calldata flow, address referrer)
        external
        returns (uint256 agentId)
    {
        _checkMetadata(metadata);
        bytes32 flowHash = _checkTerms(pricePerCall, flow);
        agentId = ++_agentCount;
        // Safe cast: _checkTerms bounds the price to 64 bits.
        _listings[agentId] = Listing({
            owner: msg.sender, status: AgentStatus.Active, pricePerCall: uint64(pricePerCall), flowHash: flowHash
        });
        _metadata[agentId] = metadata;
        bytes32 salt = _paymentSalt(msg.sender);
        ++_listingCounts[msg.sender];
        address paymentAddress = Clones.cloneDeterministic(_PAYMENT_ADDRESS_IMPLEMENTATION, salt);
        bytes32 genesis = PaymentChainLib.genesis(agentId);
        _chains[agentId] = PaymentChain({head: genesis, base: genesis, paymentAddress: paymentAddress});
        emit AgentListed(agentId, msg.sender, paymentAddress, metadata);
        emit AgentTermsSet(agentId, pricePerCall, flowHash, flow);
        _recordReferrer(msg.sender, referrer, false);
    }

    /// @inheritdoc IAgentMarketplace
    function updateAgent(uint256 agentId, AgentMetadata calldata metadata) external {
        _ownedListing(agentId);
        _checkMetadata(metadata);
        _metadata[agentId] = metadata;
        emit AgentUpdated(agentId, metadata);
    }

    /// @inheritdoc IAgentMarketplace
    function updateTerms(
        uint256 agentId,
        uint256 pricePerCall,
        FlowOfFunds calldata flow,
        FlowOfFunds calldata currentFlow,
        PendingPayment[] calldata pending
    ) external nonReentrant {
        Listing storage listing = _ownedListing(agentId);
        bytes32 flowHash = _checkTerms(pricePerCall, flow);
        (uint256 currentPrice, bytes32 currentHash) = (listing.pricePerCall, listing.flowHash);
        // Safe cast: _checkTerms bounds the price to 64 bits.
        (listing.pricePerCall, listing.flowHash) = (uint64(pricePerCall), flowHash);
        emit AgentTermsSet(agentId, pricePerCall, flowHash, flow);
        _distribute(agentId, listing.owner, currentPrice, currentHash, currentFlow, pending);
    }

    /// @inheritdoc IAgentMarketplace
    function pause(uint256 agentId) external {
        _setStatus(agentId, AgentStatus.Active, AgentStatus.Paused);
    }

    /// @inheritdoc IAgentMarketplace
    function unpause(uint256 agentId) external {
        _setStatus(agentId, AgentStatus.Paused, AgentStatus.Active);
    }

    /// @inheritdoc IAgentMarketplace
    function retire(uint256 agentId) external {
        _ownedListing(agentId).status = AgentStatus.Retired;
        emit AgentStatusChanged(agentId, AgentStatus.Retired);
    }

    /// @inheritdoc IAgentMarketplace
    function transferAgent(uint256 agentId, address newOwner) external {
        Listing storage listing = _ownedListing(agentId);
        if (newOwner == address(0)) revert MarketplaceZeroAddress();
        listing.owner = newOwner;
        emit AgentOwnershipTransferred(agentId, msg.sender, newOwner);
    }

    /*//////////////////////////////////////////////////////////////
                               REFERRALS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgentMarketplace
    function setReferrer(address referrer) external {
        _recordReferrer(msg.sender, referrer, true);
    }

    /// @inheritdoc IAgentMarketplace
    function setReferrerWithSig(address account, address referrer, bytes calldata signature) external {
        if (!SignatureChecker.isValidSignatureNow(account, referralDigest(account, referrer), signature)) {
            revert MarketplaceInvalidSignature(account);
        }
        _recordReferrer(account, referrer, true);
    }

    /*//////////////////////////////////////////////////////////////
                               PAYMENTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgentMarketplace
    function payWithAuthorization(
        uint256 agentId,
        address from,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external nonReentrant {
        address paymentAddress = _acceptPayment(agentId, from, value);
        uint256 before = _TOKEN.balanceOf(paymentAddress);
        IERC3009(address(_TOKEN)).transferWithAuthorization(
            from, paymentAddress, value, validAfter, validBefore, nonce, signature
        );
        uint256 received = _TOKEN.balanceOf(paymentAddress) - before;
        if (received != value) revert TokenPullLib.TokenDepositMismatch(value, received);
        IAgentPaymentAddress(paymentAddress).deposit(value);
    }

    /// @inheritdoc IAgentMarketplace
    function payFromBalance(uint256 agentId, uint256 amount, address referrer) external nonReentrant {
        _recordReferrer(msg.sender, referrer, false);
        _acceptPayment(agentId, msg.sender, amount);
        _LEDGER.transferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IAgentMarketplace
    function payFromBalanceWithSig(
        uint256 agentId,
        address payer,
        uint256 amount,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant {
        _acceptPayment(agentId, payer, amount);
        _LEDGER.transferWithSig(payer, address(this), amount, bytes32(agentId), deadline, signature);
    }

    /// @inheritdoc IAgentMarketplace
    function distribute(uint256 agentId, FlowOfFunds calldata flow, PendingPayment[] calldata payments)
        external
        nonReentrant
    {
        Listing storage listing = _listing(agentId);
        if (!_distribute(agentId, listing.owner, listing.pricePerCall, listing.flowHash, flow, payments)) {
            revert MarketplaceNothingToDistribute(agentId);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgentMarketplace
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    /*//////////////////////////////////////////////////////////////
                          INTERNALS: LISTINGS
    //////////////////////////////////////////////////////////////*/

    function _listing(uint256 agentId) private view returns (Listing storage listing) {
        listing = _listings[agentId];
        if (listing.status == AgentStatus.None) revert MarketplaceUnknownAgent(agentId);
    }

    /// @dev The caller's listing, unless retired (retired is final).
    function _ownedListing(uint256 agentId) private view returns (Listing storage listing) {
        listing = _listing(agentId);
        if (listing.owner != msg.sender) revert MarketplaceNotAgentOwner(agentId, msg.sender);
        if (listing.status == AgentStatus.Retired) revert MarketplaceInvalidStatus(agentId, AgentStatus.Retired);
    }

    function _setStatus(uint256 agentId, AgentStatus from, AgentStatus to) private {
        Listing storage listing = _ownedListing(agentId);
        if (listing.status != from) revert MarketplaceInvalidStatus(agentId, listing.status);
        listing.status = to;
        emit AgentStatusChanged(agentId, to);
    }

    function _checkMetadata(AgentMetadata calldata metadata) private pure {
        uint256 length = bytes(metadata.name).length;
        if (length == 0 || length > MAX_NAME_LENGTH) revert MarketplaceInvalidName(length, MAX_NAME_LENGTH);
        length = bytes(metadata.endpoint).length;
        if (length == 0 || length > MAX_URI_LENGTH) revert MarketplaceInvalidEndpoint(length, MAX_URI_LENGTH);
        length = bytes(metadata.metadataURI).length;
        if (length > MAX_URI_LENGTH) revert MarketplaceInvalidMetadataURI(length, MAX_URI_LENGTH);
    }

    /// @dev Validates a price and flow, including that Split recipients are ledger splits and Budget
    /// recipients escrow budgets; returns the flow's hash.
    function _checkTerms(uint256 pricePerCall, FlowOfFunds calldata flow) private view returns (bytes32) {
        if (pricePerCall == 0 || pricePerCall > type(uint64).max) revert MarketplaceInvalidPrice(pricePerCall);
        flow.validate(pricePerCall, MAX_COMPONENTS);
        uint256 outputs = flow.outputCount();
        for (uint256 k; k < outputs; ++k) {
            Recipient calldata recipient = flow.recipientAt(k);
            if (recipient.kind == RecipientKind.Split && !_LEDGER.isSplit(recipient.account)) {
                revert MarketplaceFlowUnknownSplit(recipient.account);
            }
            if (recipient.kind == RecipientKind.Account && _LEDGER.isCustodian(recipient.account)) {
                revert MarketplaceFlowInvalidRecipient(k);
            }
            if (recipient.kind == RecipientKind.Budget && recipient.budgetId > _ESCROW.budgetCount()) {
                revert MarketplaceFlowUnknownBudget(recipient.budgetId);
            }
        }
        return flow.hash();
    }

    /// @dev The CREATE2 salt of `owner`'s next payment address: its owner and its listing count.
    function _paymentSalt(address owner) private view returns (bytes32) {
        return keccak256(abi.encode(owner, _listingCounts[owner]));
    }

    function _checkToken(address expected, address actual) private pure {
        if (actual != expected) revert MarketplaceTokenMismatch(expected, actual);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert MarketplaceZeroAddress();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /*//////////////////////////////////////////////////////////////
                     INTERNALS: REFERRALS AND PAYMENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Records `referrer` as `account`'s referrer. Strict (explicit) calls revert on a zero
    /// referrer, a self-referral, an existing referrer or a custodian referrer; implicit ones (listing,
    /// payment) ignore them.
    function _recordReferrer(address account, address referrer, bool strict) private {
        address current = _referrers[account];
        if (referrer == address(0) || referrer == account || current != address(0) || _LEDGER.isCustodian(referrer)) {
            if (!strict) return;
            if (referrer == address(0)) revert MarketplaceZeroAddress();
            if (referrer == account) revert MarketplaceSelfReferral(account);
            if (current != address(0)) revert MarketplaceReferrerAlreadySet(account, current);
            revert MarketplaceCustodianReferrer(referrer);
        }
        _referrers[account] = referrer;
        emit ReferrerRecorded(account, referrer);
    }

    /// @dev Checks agent `agentId` takes a payment of `amount` now, appends it to the agent's chain
    /// with `payer`'s current referrer, and returns the agent's payment address.
    function _acceptPayment(uint256 agentId, address payer, uint256 amount) private returns (address) {
        Listing storage listing = _listings[agentId];
        AgentStatus status = listing.status;
        if (status != AgentStatus.Active) {
            if (status == AgentStatus.None) revert MarketplaceUnknownAgent(agentId);
            revert MarketplaceInvalidStatus(agentId, status);
        }
        uint256 price = listing.pricePerCall;
        if (amount < price) revert MarketplacePaymentBelowPrice(agentId, price, amount);
        PaymentChain storage chain = _chains[agentId];
        bytes32 head = chain.head;
        if (PaymentChainLib.pending(head) >= MAX_PENDING) revert MarketplacePendingFull(agentId, MAX_PENDING);
        address referrer = _referrers[payer];
        head = PaymentChainLib.link(head, payer, referrer, amount);
        chain.head = head;
        emit AgentPaid(agentId, payer, referrer, amount, head);
        return chain.paymentAddress;
    }

    /*//////////////////////////////////////////////////////////////
                        INTERNALS: DISTRIBUTION
    //////////////////////////////////////////////////////////////*/

    /// @dev Verifies `flow` against `flowHash` and `payments` against the chain, then splits them and
    /// the USDC the payment address holds (unattributed) by `flow` at `price`. Returns false, having
    /// changed nothing, when nothing is pending and the payment address holds nothing it can move.
    function _distribute(
        uint256 agentId,
        address owner,
        uint256 price,
        bytes32 flowHash,
        FlowOfFunds calldata flow,
        PendingPayment[] calldata payments
    ) private returns (bool) {
        PaymentChain storage chain = _chains[agentId];
        uint256 unattributed = _depositUnattributed(chain.paymentAddress);
        if (unattributed == 0 && PaymentChainLib.pending(chain.head) == 0) return false;
        bytes32 actualHash = flow.hash();
        if (actualHash != flowHash) revert MarketplaceFlowMismatch(agentId, flowHash, actualHash);

        FlowOfFundsLib.Amounts memory terms = flow.amounts();
        PaymentSplit memory perCall = FlowOfFundsLib.split(terms, price);
        Distribution memory batch = Distribution({
            outputs: new uint256[](perCall.outputs.length),
            payeeRewards: 0,
            calls: 0,
            unreferredCalls: 0,
            credits: TallyLib.create(2 * perCall.outputs.length + payments.length + 2)
        });
        (bytes32 head, uint256 attributed) = _tallyPayments(batch, terms, price, perCall, chain.base, payments);
        if (head != chain.head) revert MarketplaceChainMismatch(agentId, chain.head, head);

        head = PaymentChainLib.settled(head);
        (chain.head, chain.base) = (head, head);
        emit PaymentsDistributed(agentId, payments.length, attributed, unattributed, head);

        _addPayment(batch, terms, price, unattributed);
        _finishTally(batch, perCall, _referrers[owner]);
        _payOut(batch, flow);
        return true;
    }

    /// @dev Moves the USDC `paymentAddress` holds into the marketplace's ledger balance and returns how
    /// much; zero when it holds none or the token refuses the move (paused, or the address blacklisted),
    /// so such funds wait for a later distribution and block nothing else.
    function _depositUnattributed(address paymentAddress) private returns (uint256 amount) {
        amount = _TOKEN.balanceOf(paymentAddress);
        if (amount == 0) return 0;
        try IAgentPaymentAddress(paymentAddress).deposit(amount) {}
        catch {
            return 0;
        }
    }

    /// @dev Re-hashes `payments` from `base` and adds each to the batch; returns the head reached and
    /// the payments' sum.
    function _tallyPayments(
        Distribution memory batch,
        FlowOfFundsLib.Amounts memory terms,
        uint256 price,
        PaymentSplit memory perCall,
        bytes32 base,
        PendingPayment[] calldata payments
    ) private pure returns (bytes32 head, uint256 attributed) {
        head = base;
        uint256 payerReward = perCall.payerReferrerReward;
        for (uint256 i; i < payments.length; ++i) {
            PendingPayment calldata payment = payments[i];
            (address referrer, uint256 amount) = (payment.referrer, payment.amount);
            head = PaymentChainLib.link(head, payment.payer, referrer, amount);
            attributed += amount;
            // Full calls are tallied as counts and paid out per output once, at the end; only the
            // payer's referrer differs from one payment to the next.
            uint256 calls = amount / price;
            batch.calls += calls;
            if (referrer == address(0)) batch.unreferredCalls += calls;
            else batch.credits.add(referrer, calls * payerReward);
            uint256 rest = amount % price;
            if (rest != 0) _addPartialCall(batch, terms, referrer, rest);
        }
    }

    /// @dev Adds a payment of `amount` without a payer referrer (the unattributed funds) to the batch.
    function _addPayment(
        Distribution memory batch,
        FlowOfFundsLib.Amounts memory terms,
        uint256 price,
        uint256 amount
    ) private pure {
        uint256 calls = amount / price;
        batch.calls += calls;
        batch.unreferredCalls += calls;
        uint256 rest = amount % price;
        if (rest != 0) _addPartialCall(batch, terms, address(0), rest);
    }

    /// @dev Adds one call paid less than the price (split on its own: its fixed amounts are capped).
    function _addPartialCall(
        Distribution memory batch,
        FlowOfFundsLib.Amounts memory terms,
        address referrer,
        uint256 amount
    ) private pure {
        uint256[] memory outputs = batch.outputs;
        (uint256 payerReward, uint256 payeeReward) = FlowOfFundsLib.addSplit(terms, amount, outputs);
        batch.payeeRewards += payeeReward;
        if (referrer == address(0)) outputs[outputs.length - 1] += payerReward;
        else batch.credits.add(referrer, payerReward);
    }

    /// @dev Adds the full calls' outputs, sends payer rewards without a referrer to the remainder, and
    /// the payee rewards to the owner's referrer (or the remainder).
    function _finishTally(Distribution memory batch, PaymentSplit memory perCall, address payeeReferrer)
        private
        pure
    {
        uint256[] memory outputs = batch.outputs;
        uint256 calls = batch.calls;
        for (uint256 k; k < outputs.length; ++k) {
            outputs[k] += calls * perCall.outputs[k];
        }
        uint256 remainder = outputs.length - 1;
        outputs[remainder] += batch.unreferredCalls * perCall.payerReferrerReward;
        uint256 payeeRewards = batch.payeeRewards + calls * perCall.payeeReferrerReward;
        if (payeeReferrer == address(0)) outputs[remainder] += payeeRewards;
        else batch.credits.add(payeeReferrer, payeeRewards);
    }

    /// @dev Pays every output from the marketplace's ledger balance: budgets through the escrow's
    /// topUpFromBalance (an expired budget's share goes to its creator's ledger balance, so no budget can
    /// block a distribution), everything else with one ledger transferMany of the per-account totals.
    function _payOut(Distribution memory batch, FlowOfFunds calldata flow) private {
        uint256[] memory outputs = batch.outputs;
        TallyLib.Tally memory credits = batch.credits;
        for (uint256 k; k < outputs.length; ++k) {
            uint256 amount = outputs[k];
            if (amount == 0) continue;
            Recipient calldata recipient = flow.recipientAt(k);
            if (recipient.kind != RecipientKind.Budget) {
                credits.add(recipient.account == address(0) ? _treasury : recipient.account, amount);
                continue;
            }
            IComputeEscrow.Budget memory budget = _ESCROW.getBudget(recipient.budgetId);
            if (block.timestamp < budget.expiry) _ESCROW.topUpFromBalance(recipient.budgetId, amount);
            else credits.add(budget.creator, amount);
        }
        if (credits.count == 0) return;
        (address[] memory payees, uint256[] memory amounts) = credits.entries();
        _LEDGER.transferMany(payees, amounts);
    }
}
