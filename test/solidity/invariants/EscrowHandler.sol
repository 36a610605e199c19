// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "../../../contracts/interfaces/ISplitsLedger.sol";
import {IMockUSDC, ITestEscrow, ITestLedger, ITestRegistry} from "../utils/Interfaces.sol";
import {Suite} from "../utils/Suite.sol";

/// @notice Drives the suite through bounded random actions of creators, agents, providers, relayers,
/// ledger accounts, the escrow's admin and USDC's pauser/blacklister, keeping a model of what every
/// balance should be (ghost variables).
/// @dev Every action checks its own outcome against the model; an unexpected success or revert is
/// counted in `violations` (a revert here would be discarded by the fuzzer, so nothing reverts).
/// Time is kept in `ghostNow`: the optimizer may reuse a TIMESTAMP read across a vm.warp.
/// Custody: the ledger holds every token; the escrow's budgets and locks and the registry's stakes are
/// their ledger balances, so settlement, slashing and `returnExpired` move credits only, and a paused
/// token or a blacklisted party only ever stops deposits and withdrawals.
contract EscrowHandler is Suite {
    uint256 public constant MAX_BUDGETS = 12;
    uint256 public constant MAX_SESSIONS = 24;
    uint256 public constant MAX_PROVIDERS = 6;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant SCALE = 1_000_000;
    uint256 internal constant MAX_FEE = 1_000;
    uint256 internal constant SLASH_REWARD_BPS = 1_000;
    address internal constant SINK = address(0x51CC);
    address internal constant FUNDER = address(0xF0F0);
    address internal constant SLASHER = address(0x51A5);
    address internal constant STRANGER = address(0x5757);
    uint32 internal constant FINALIZED = 1; // ComputeEscrow.FINALIZED, read every step

    struct SessionGhost {
        IComputeEscrow.SessionTerms terms;
        bytes32 id;
        uint256 agentKey;
        uint256 signerKey;
        uint256 requests;
        uint256 settled;
        uint256 sequence;
        uint256 claimEnd;
        bool finalized;
    }

    struct BudgetGhost {
        address creator;
        uint256 expiry;
        uint256 deposited;
        uint256 refunded;
        uint256 spent;
    }

    uint256[3] internal agentKeys = [uint256(0xA6E001), 0xA6E002, 0xA6E003];
    address[2] internal creators = [address(0xC0001), address(0xC0002)];
    address[2] internal providerOwners = [address(0x0E0001), address(0x0E0002)];

    SessionGhost[] internal _sessions;
    mapping(uint256 index => IComputeEscrow.SessionState) internal _observed;
    mapping(uint256 budgetId => BudgetGhost) internal _budgets;
    uint256 public budgetTotal;

    uint256[] public providerIds;
    mapping(uint256 providerId => uint256) public signerKeyOf;
    mapping(uint256 providerId => uint256[]) internal _retiredKeys;
    mapping(uint256 providerId => uint256) public lastUnstakeRequest;
    mapping(uint256 providerId => bool) public slashedInModel;

    address[] internal _accounts;
    mapping(address account => bool) internal _known;
    mapping(address account => uint256) public directCredited;
    mapping(address account => uint256) public withdrawn;
    address public split;
    address[3] public splitRecipients = [address(0xD0001), address(0xD0002), address(0xD0003)];
    uint256[3] public splitShares = [uint256(300_000), 450_000, 250_000];
    /// @notice What the split has fanned out (the ledger's own `splitTotals` must agree).
    uint256 public ghostSplitDistributed;

    uint256 public ghostNow;
    /// @notice Σ settlement deltas: what left session locks for payouts and fees.
    uint256 public ghostPaid;
    /// @notice Tokens deposited into the ledger (budgets, top-ups, stakes) and withdrawn from it.
    uint256 public ghostLedgerIn;
    uint256 public ghostLedgerOut;
    uint256 public ghostStakeIn;
    uint256 public ghostStakeOut;
    uint256 public ghostSlashed;
    uint256 public totalWithdrawn;

    uint256 public violations;
    string public firstViolation;
    uint256 public livenessFailures;
    uint256 public earlyUnstakeWithdrawals;
    uint256 public monotonicityBreaks;
    uint256 public finalizedChanges;
    uint256 public forgedSlashes;
    uint256 public feeMismatches;
    mapping(string action => uint256) public calls;

    constructor(IMockUSDC usdc_, ITestLedger ledger_, ITestRegistry registry_, ITestEscrow escrow_, address admin_) {
        usdc = usdc_;
        ledger = ledger_;
        registry = registry_;
        escrow = escrow_;
        admin = admin_;
        ghostNow = block.timestamp;
        _know(treasury);
        _know(SLASHER);
        _know(creators[0]);
        _know(creators[1]);

        ISplitsLedger.Split memory definition;
        definition.recipients = new ISplitsLedger.SplitRecipient[](2);
        definition.recipients[0] = ISplitsLedger.SplitRecipient(splitRecipients[0], uint32(splitShares[0]));
        definition.recipients[1] = ISplitsLedger.SplitRecipient(splitRecipients[1], uint32(splitShares[1]));
        definition.remainderRecipient = splitRecipients[2];
        split = ledger.createSplit(definition);
        for (uint256 i; i < 3; ++i) {
            _know(splitRecipients[i]);
        }

        _newProvider(providerOwners[0], MIN_STAKE, false);
        _newProvider(providerOwners[1], 2 * MIN_STAKE, true);
    }

    /// @notice Called once by the test's setUp (not a fuzz target): a funded budget and two open
    /// sessions, so that short call sequences already reach settlement.
    function bootstrap() external {
        if (budgetTotal != 0) return;
        this.createBudget(0, 200_000_000, 50_000_000, 5 days);
        this.openSession(0, 0, 0, 10_000_000, 1 days, true, 0);
        this.openSession(0, 1, 1, 10_000_000, 2 days, false, 0);
    }

    modifier step() {
        if (block.timestamp < ghostNow) vm.warp(ghostNow);
        else ghostNow = block.timestamp;
        _;
        _observe();
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function sessionCount() external view returns (uint256) {
        return _sessions.length;
    }

    function sessionGhost(uint256 i) external view returns (SessionGhost memory) {
        return _sessions[i];
    }

    function observed(uint256 i) external view returns (IComputeEscrow.SessionState memory) {
        return _observed[i];
    }

    function budgetGhost(uint256 budgetId) external view returns (BudgetGhost memory) {
        return _budgets[budgetId];
    }

    /// @notice Every ledger account the suite can credit, except the split and the custodians.
    function accounts() external view returns (address[] memory) {
        return _accounts;
    }

    function providerCount() external view returns (uint256) {
        return providerIds.length;
    }

    /// @notice What `account` has been credited in the ledger: direct credits plus its lifetime split share.
    function credited(address account) public view returns (uint256 total) {
        total = directCredited[account];
        (uint256 distributed,) = ledger.splitTotals(split);
        for (uint256 i; i < 3; ++i) {
            if (splitRecipients[i] == account) total += distributed * splitShares[i] / SCALE;
        }
    }

    /*//////////////////////////////////////////////////////////////
                                BUDGETS
    //////////////////////////////////////////////////////////////*/

    function createBudget(uint256 creatorSeed, uint256 amount, uint256 limit, uint256 duration) external step {
        if (budgetTotal >= MAX_BUDGETS) return;
        address creator = creators[creatorSeed % 2];
        amount = bound(amount, 1_000_000, 1_000_000_000);
        limit = bound(limit, MIN_CHARGE, 600_000_000);
        uint256 expiry = ghostNow + bound(duration, 1 hours, 10 days);
        address[] memory agents = new address[](3);
        for (uint256 i; i < 3; ++i) {
            agents[i] = vm.addr(agentKeys[i]);
        }
        bool shouldWork = _depositWorks(creator, address(escrow));
        _fund(creator, address(escrow), amount);
        vm.prank(creator);
        try escrow.createBudget(amount, limit, expiry, agents) returns (uint256 budgetId) {
            if (!shouldWork) _violation("createBudget succeeded with the token refusing the deposit");
            budgetTotal = budgetId;
            _budgets[budgetId] = BudgetGhost(creator, expiry, amount, 0, 0);
            ghostLedgerIn += amount;
            ++calls["createBudget"];
        } catch {
            if (shouldWork) _violation("createBudget reverted");
        }
    }

    function topUp(uint256 budgetSeed, uint256 amount) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        amount = bound(amount, 1, 100_000_000);
        bool shouldWork = ghostNow < _budgets[budgetId].expiry && _depositWorks(FUNDER, address(escrow));
        _fund(FUNDER, address(escrow), amount);
        vm.prank(FUNDER);
        try escrow.topUp(budgetId, amount) {
            if (!shouldWork) _violation("topUp of an expired budget or a refused deposit succeeded");
            _budgets[budgetId].deposited += amount;
            ghostLedgerIn += amount;
            ++calls["topUp"];
        } catch {
            if (shouldWork) _violation("topUp reverted");
        }
    }

    function refund(uint256 budgetSeed, uint256 amount) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId;
        uint256 available;
        for (uint256 i; i < budgetTotal && available == 0; ++i) {
            budgetId = 1 + (budgetSeed % budgetTotal + i) % budgetTotal;
            available = escrow.getBudget(budgetId).available;
        }
        if (available == 0) return;
        BudgetGhost storage b = _budgets[budgetId];
        // Sometimes ask for more than is unallocated: locked funds must stay put.
        amount = bound(amount, 1, available + available / 4 + 1);
        // The refund is a ledger withdrawal to the creator's wallet: the token must let it through.
        bool shouldWork = amount <= available && _withdrawalWorks(b.creator);
        uint256 before = usdc.balanceOf(b.creator);
        vm.prank(b.creator);
        try escrow.refund(budgetId, amount) {
            if (!shouldWork) _violation("refund beyond available, or to a restricted creator, succeeded");
            if (usdc.balanceOf(b.creator) != before + amount) _violation("refund paid a wrong amount");
            b.refunded += amount;
            ghostLedgerOut += amount;
            ++calls["refund"];
        } catch {
            if (shouldWork) _violation("refund reverted");
        }
    }

    function returnExpired(uint256 budgetSeed) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        _returnExpired(budgetId, false);
    }

    function setBudgetTerms(uint256 budgetSeed, uint256 limit, uint256 duration, bool asStranger) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        BudgetGhost storage b = _budgets[budgetId];
        limit = bound(limit, MIN_CHARGE, 600_000_000);
        uint256 expiry = ghostNow + bound(duration, 1 hours, 10 days);
        vm.prank(asStranger ? STRANGER : b.creator);
        try escrow.setBudgetTerms(budgetId, limit, expiry) {
            if (asStranger) _violation("setBudgetTerms by a non-creator succeeded");
            IComputeEscrow.Budget memory budget = escrow.getBudget(budgetId);
            if (budget.expiry != expiry || budget.perSessionLimit != limit) _violation("setBudgetTerms not applied");
            b.expiry = expiry;
            ++calls["setBudgetTerms"];
        } catch {
            if (!asStranger) _violation("setBudgetTerms reverted");
        }
    }

    /*//////////////////////////////////////////////////////////////
                                SESSIONS
    //////////////////////////////////////////////////////////////*/

    /// @param stale 1: terms carrying a fee other than the current one; 2: a retired receipt signer
    /// (when the provider has one). Both must be refused; anything else opens normally.
    function openSession(
        uint256 budgetSeed,
        uint256 agentSeed,
        uint256 providerSeed,
        uint256 maxSpend,
        uint256 deadlineSeed,
        bool viaRelayer,
        uint256 stale
    ) external step {
        if (budgetTotal == 0 || _sessions.length >= MAX_SESSIONS) return;
        (bool found, uint256 budgetId, uint256 cap) = _pickOpenableBudget(budgetSeed);
        uint256 providerId;
        for (uint256 i; i < providerIds.length && providerId == 0; ++i) {
            uint256 candidate = providerIds[(providerSeed + i) % providerIds.length];
            if (registry.getProvider(candidate).active) providerId = candidate;
        }
        if (!found || providerId == 0) return;
        IComputeEscrow.Budget memory budget = escrow.getBudget(budgetId);
        // Mostly small locks so that budgets host several sessions.
        maxSpend = bound(maxSpend, MIN_CHARGE, cap / 4 > MIN_CHARGE && maxSpend % 4 != 0 ? cap / 4 : cap);
        uint256 agentKey = agentKeys[agentSeed % 3];
        IComputeEscrow.SessionTerms memory terms = _terms(
            vm.addr(agentKey),
            budgetId,
            providerId,
            maxSpend,
            bound(deadlineSeed, ghostNow + 1, budget.expiry),
            _sessions.length + 1
        );
        bytes4 expected;
        if (usdc.isBlacklisted(budget.creator)) {
            expected = IComputeEscrow.EscrowCreatorRestricted.selector;
        } else if (stale % 4 == 1) {
            terms.feeBps = uint16((terms.feeBps + 1 + stale % 7) % (MAX_FEE + 1));
            if (terms.feeBps != escrow.feeBps()) expected = IComputeEscrow.EscrowFeeMismatch.selector;
        } else if (stale % 4 == 2 && _retiredKeys[providerId].length != 0) {
            uint256[] storage retired = _retiredKeys[providerId];
            terms.receiptSigner = vm.addr(retired[stale % retired.length]);
            expected = IComputeEscrow.EscrowReceiptSignerMismatch.selector;
        }
        IComputeEscrow.CompactSignature memory signature;
        if (viaRelayer) signature = _sign(agentKey, escrow.openDigest(terms));
        else vm.prank(terms.agent);
        try escrow.openSession(terms, signature) returns (bytes32 id) {
            if (expected != bytes4(0)) _violation("openSession with a restricted creator or stale terms succeeded");
            SessionGhost storage s = _sessions.push();
            s.terms = terms;
            s.id = id;
            s.agentKey = agentKey;
            s.signerKey = signerKeyOf[providerId];
            s.claimEnd = uint256(terms.deadline) + CHALLENGE_WINDOW;
            _observed[_sessions.length - 1] = escrow.getSession(id);
            ++calls["openSession"];
        } catch (bytes memory reason) {
            if (expected == bytes4(0)) _violation("openSession reverted");
            else if (bytes4(reason) != expected) _violation("openSession refused stale terms with a wrong error");
            else if (expected == IComputeEscrow.EscrowCreatorRestricted.selector) ++calls["openSession restricted"];
            else ++calls["openSession refused"];
        }
    }

    function settle(uint256 sessionSeed, uint256 costSeed, uint256 sequenceStep, uint256 requestStep, bool replay)
        external
        step
    {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, sequenceStep % 8 != 0);
        if (!found) return;
        SessionGhost storage s = _sessions[index];
        IComputeEscrow.SignedVoucher memory signed = _nextVoucher(s, costSeed, sequenceStep, requestStep, false);
        bool windowOpen = ghostNow < s.claimEnd;
        if (_trySettle(s, signed, false)) {
            if (!windowOpen) _violation("settle after the claim window succeeded");
            ++calls["settle"];
            if (replay) {
                // The very same signed state, re-posted by anyone, must never pay again.
                try escrow.settle(_one(signed)) {
                    _violation("a voucher was settled twice");
                } catch {}
            }
        } else if (windowOpen) {
            _violation("settle reverted");
        }
    }

    function closeCooperative(uint256 sessionSeed, uint256 costSeed, uint256 sequenceStep, uint256 requestStep)
        external
        step
    {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, sequenceStep % 8 != 0);
        if (!found) return;
        SessionGhost storage s = _sessions[index];
        IComputeEscrow.SignedVoucher memory signed = _nextVoucher(s, costSeed, sequenceStep, requestStep, true);
        bool windowOpen = ghostNow < s.claimEnd;
        uint256 availableBefore = escrow.getBudget(s.terms.budgetId).available;
        if (_trySettle(s, signed, true)) {
            if (!windowOpen) _violation("closeCooperative after the claim window succeeded");
            _markFinalized(s, availableBefore);
            ++calls["closeCooperative"];
        } else if (windowOpen) {
            _violation("closeCooperative reverted");
        }
    }

    function requestClose(uint256 sessionSeed, bool byCreator) external step {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, true);
        if (!found) return;
        SessionGhost storage s = _sessions[index];
        bool shouldWork = ghostNow < s.claimEnd;
        vm.prank(byCreator ? _budgets[s.terms.budgetId].creator : s.terms.agent);
        try escrow.requestClose(s.terms) {
            if (!shouldWork) _violation("requestClose after the claim window succeeded");
            uint256 windowEnd = ghostNow + CHALLENGE_WINDOW;
            if (windowEnd < s.claimEnd) s.claimEnd = windowEnd;
            if (escrow.getSession(s.id).claimEnd != s.claimEnd) _violation("requestClose set a wrong claimEnd");
            ++calls["requestClose"];
        } catch {
            if (shouldWork) _violation("requestClose reverted");
        }
    }

    function finalize(uint256 sessionSeed) external step {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, false);
        if (!found) return;
        SessionGhost storage s = _sessions[index];
        bool shouldWork = ghostNow >= s.claimEnd;
        uint256 availableBefore = escrow.getBudget(s.terms.budgetId).available;
        try escrow.finalize(s.terms) {
            if (!shouldWork) _violation("finalize inside the claim window succeeded");
            _markFinalized(s, availableBefore);
            ++calls["finalize"];
        } catch {
            if (shouldWork) _violation("finalize reverted");
        }
    }

    /// @notice The provider's owner, or the session's own receipt signer (even after a rotation), closes.
    function closeByProvider(uint256 sessionSeed, bool bySigner) external step {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, false);
        if (!found) return;
        // Half of the time, a session opened before its provider's signer rotated, if there is one.
        for (uint256 i; i < _sessions.length && sessionSeed % 2 == 0; ++i) {
            SessionGhost storage candidate = _sessions[i];
            if (!candidate.finalized && candidate.signerKey != signerKeyOf[candidate.terms.providerId]) {
                index = i;
                break;
            }
        }
        SessionGhost storage s = _sessions[index];
        uint256 availableBefore = escrow.getBudget(s.terms.budgetId).available;
        vm.prank(bySigner ? vm.addr(s.signerKey) : registry.getProvider(s.terms.providerId).owner);
        try escrow.closeByProvider(s.terms) {
            _markFinalized(s, availableBefore);
            ++calls["closeByProvider"];
        } catch {
            _violation("closeByProvider reverted");
        }
    }

    /// @notice Liveness: once a budget's expiry plus the challenge window (and every claim window of its
    /// sessions) has passed, every open session of it finalizes and the whole unallocated balance returns
    /// to its creator. With `hostile`, USDC is paused and blacklists the creator, the escrow and the
    /// ledger meanwhile: none of that may stop it (SECURITY.md 24).
    function drainAfterExpiry(uint256 budgetSeed, bool hostile) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        BudgetGhost storage b = _budgets[budgetId];
        uint256 end = b.expiry + CHALLENGE_WINDOW;
        for (uint256 i; i < _sessions.length; ++i) {
            SessionGhost storage s = _sessions[i];
            // A later setBudgetTerms may have moved the expiry before a session's own claim window.
            if (!s.finalized && s.terms.budgetId == budgetId && s.claimEnd > end) end = s.claimEnd;
        }
        if (ghostNow < end) {
            ghostNow = end;
            vm.warp(end);
        }
        bool[4] memory restore;
        if (hostile) restore = _makeHostile(b.creator);
        for (uint256 i; i < _sessions.length; ++i) {
            SessionGhost storage s = _sessions[i];
            if (s.finalized || s.terms.budgetId != budgetId) continue;
            uint256 availableBefore = escrow.getBudget(budgetId).available;
            try escrow.finalize(s.terms) {
                _markFinalized(s, availableBefore);
            } catch {
                ++livenessFailures;
                _violation("liveness: finalize after expiry + window reverted");
            }
        }
        _returnExpired(budgetId, true);
        if (escrow.getBudget(budgetId).available != 0) {
            ++livenessFailures;
            _violation("liveness: budget not empty after drain");
        }
        if (hostile) _restore(b.creator, restore);
        ++calls[hostile ? "drainAfterExpiry hostile" : "drainAfterExpiry"];
    }

    function warp(uint256 seconds_) external step {
        ghostNow += bound(seconds_, 1, 2 days);
        vm.warp(ghostNow);
        ++calls["warp"];
    }

    /*//////////////////////////////////////////////////////////////
                                 LEDGER
    //////////////////////////////////////////////////////////////*/

    function withdraw(uint256 accountSeed, uint256 amount) external step {
        address account;
        uint256 balance;
        for (uint256 i; i < _accounts.length && balance == 0; ++i) {
            account = _accounts[(accountSeed % _accounts.length + i) % _accounts.length];
            balance = ledger.balanceOf(account);
        }
        if (balance == 0) return;
        amount = bound(amount, 1, balance + 1); // one unit too many now and then
        bool shouldWork = amount <= balance && _withdrawalWorks(account);
        uint256 before = usdc.balanceOf(SINK);
        vm.prank(account);
        try ledger.withdraw(SINK, amount) {
            if (!shouldWork) _violation("withdraw above balance, or by a blacklisted account, succeeded");
            if (usdc.balanceOf(SINK) != before + amount) _violation("withdraw sent a wrong amount");
            withdrawn[account] += amount;
            totalWithdrawn += amount;
            ghostLedgerOut += amount;
            ++calls["withdraw"];
        } catch {
            if (shouldWork) _violation("withdraw reverted");
        }
    }

    /// @notice Fans out what the split (a provider's payout) holds; anyone may, whatever the token does.
    function distributeSplit() external step {
        uint256 balance = ledger.balanceOf(split);
        uint256 leavesBefore;
        for (uint256 i; i < 3; ++i) {
            leavesBefore += ledger.balanceOf(splitRecipients[i]);
        }
        (, uint256 dustBefore) = ledger.splitTotals(split);
        try ledger.distribute(split) {
            if (balance == 0) _violation("distributing an empty split succeeded");
            ghostSplitDistributed += balance;
            uint256 leavesAfter;
            for (uint256 i; i < 3; ++i) {
                leavesAfter += ledger.balanceOf(splitRecipients[i]);
            }
            (, uint256 dustAfter) = ledger.splitTotals(split);
            if (leavesAfter + dustAfter != leavesBefore + dustBefore + balance) {
                _violation("split distribution: credits + dust != amount");
            }
            if (ledger.balanceOf(split) != 0) _violation("split kept a balance after distributing");
            ++calls["distributeSplit"];
        } catch {
            if (balance != 0) _violation("distributing the split reverted");
        }
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTRY
    //////////////////////////////////////////////////////////////*/

    function register(uint256 ownerSeed, uint256 stake, bool splitPayout) external step {
        if (providerIds.length >= MAX_PROVIDERS) return;
        address owner = providerOwners[ownerSeed % 2];
        stake = bound(stake, MIN_STAKE, 1_000_000_000);
        if (_depositWorks(owner, address(registry))) {
            _newProvider(owner, stake, splitPayout);
            ++calls["register"];
            return;
        }
        // The token refuses the stake deposit: registering must fail and change nothing.
        uint256 count = registry.providerCount();
        _fund(owner, address(registry), stake);
        vm.prank(owner);
        IProviderRegistry.ModelConfig[] memory models = new IProviderRegistry.ModelConfig[](0);
        try registry.register(_config(vm.addr(0x516E00), address(0xFA0000)), models, stake) {
            _violation("register succeeded with the token refusing the stake");
        } catch {
            if (registry.providerCount() != count) _violation("a failed register changed the count");
        }
    }

    /// @notice Anyone tops up a provider's stake (refused once slashed, or when the token refuses).
    function addStake(uint256 providerSeed, uint256 amount) external step {
        uint256 providerId = providerIds[providerSeed % providerIds.length];
        amount = bound(amount, 1, 500_000_000);
        uint256 stakeBefore = registry.getProvider(providerId).stake;
        bool shouldWork = !slashedInModel[providerId] && _depositWorks(FUNDER, address(registry));
        _fund(FUNDER, address(registry), amount);
        vm.prank(FUNDER);
        try registry.addStake(providerId, amount) {
            if (!shouldWork) _violation("addStake to a slashed provider, or with a refused deposit, succeeded");
            if (registry.getProvider(providerId).stake != stakeBefore + amount) _violation("addStake wrong stake");
            ghostStakeIn += amount;
            ghostLedgerIn += amount;
            ++calls["addStake"];
        } catch {
            if (shouldWork) _violation("addStake reverted");
        }
    }

    function requestUnstake(uint256 providerSeed, uint256 amount) external step {
        uint256 providerId = providerIds[providerSeed % providerIds.length];
        IProviderRegistry.Provider memory p = registry.getProvider(providerId);
        if (p.stake == 0) return;
        amount = bound(amount, 1, p.stake);
        vm.prank(p.owner);
        try registry.requestUnstake(providerId, amount) {
            lastUnstakeRequest[providerId] = ghostNow;
            if (registry.getProvider(providerId).unstakeAvailableAt != ghostNow + UNSTAKE_DELAY) {
                _violation("unstake available at a wrong time");
            }
            ++calls["requestUnstake"];
        } catch {
            _violation("requestUnstake reverted");
        }
    }

    function withdrawUnstaked(uint256 providerSeed, bool waitForDelay) external step {
        uint256 providerId = providerIds[providerSeed % providerIds.length];
        IProviderRegistry.Provider memory p = registry.getProvider(providerId);
        if (waitForDelay && p.pendingUnstake != 0 && ghostNow < p.unstakeAvailableAt) {
            // Sometimes land exactly on the boundary, sometimes one second short of it.
            ghostNow = p.unstakeAvailableAt - (providerSeed % 4 == 0 ? 1 : 0);
            vm.warp(ghostNow);
        }
        bool ready = p.pendingUnstake != 0 && ghostNow >= lastUnstakeRequest[providerId] + UNSTAKE_DELAY;
        uint256 before = usdc.balanceOf(p.owner);
        vm.prank(p.owner);
        try registry.withdrawUnstaked(providerId) {
            if (!ready) {
                ++earlyUnstakeWithdrawals;
                _violation("unstake withdrawn before its delay");
            }
            if (!_withdrawalWorks(p.owner)) _violation("unstake withdrawn while the token refuses it");
            if (usdc.balanceOf(p.owner) != before + p.pendingUnstake) _violation("unstake paid a wrong amount");
            ghostStakeOut += p.pendingUnstake;
            ghostLedgerOut += p.pendingUnstake;
            ++calls["withdrawUnstaked"];
        } catch {
            if (ready && _withdrawalWorks(p.owner)) _violation("withdrawUnstaked reverted");
        }
    }

    /// @notice The owner rotates the receipt signer: new sessions must name the new key, sessions opened
    /// before keep settling with (and remain provable against) the key they were opened with.
    function rotateSigner(uint256 providerSeed) external step {
        uint256 providerId = providerIds[providerSeed % providerIds.length];
        IProviderRegistry.Provider memory p = registry.getProvider(providerId);
        uint256 oldKey = signerKeyOf[providerId];
        uint256 newKey = oldKey + 1;
        IProviderRegistry.ProviderConfig memory config = _config(vm.addr(newKey), p.payout);
        vm.prank(p.owner);
        try registry.updateProvider(providerId, config) {
            _retiredKeys[providerId].push(oldKey);
            signerKeyOf[providerId] = newKey;
            (, address signer,) = registry.settlementParties(providerId);
            if (signer != vm.addr(newKey)) _violation("rotation not applied");
            ++calls["rotateSigner"];
        } catch {
            _violation("rotateSigner reverted");
        }
    }

    /// @notice Double-sign proofs (SECURITY.md 11, 22). `variant` 0: a valid proof on an opened session,
    /// signed by that session's receipt signer (current or since retired). Forged ones that must revert
    /// and change nothing: 1 a session never opened; 2 another provider's key on this session; 3 the same
    /// state twice; 4 a retired signer on a session it never signed for (or on unopened terms); 5 two
    /// different sequence numbers; 6 another provider's session relabelled as this provider's.
    function slashDoubleSign(uint256 sessionSeed, uint256 variant, uint256 otherSeed) external step {
        if (_sessions.length == 0) return;
        variant %= 7;
        SessionGhost storage s = _sessions[sessionSeed % _sessions.length];
        IComputeEscrow.SessionTerms memory terms = s.terms;
        uint256 key = s.signerKey;
        uint256 sequence = 1 + otherSeed % 1_000;
        uint256 secondSequence = sequence;
        if (variant == 1) {
            terms.salt += 1_000_000; // the very same terms but one field: a session never opened
        } else if (variant == 2) {
            uint256 other = providerIds[otherSeed % providerIds.length];
            if (other == terms.providerId) other = providerIds[(otherSeed + 1) % providerIds.length];
            key = signerKeyOf[other];
        } else if (variant == 4) {
            uint256[] storage retired = _retiredKeys[terms.providerId];
            if (retired.length == 0) {
                variant = 1;
                terms.salt += 1_000_000;
            } else {
                key = retired[otherSeed % retired.length];
                // On a session opened under another key, or else (the retired key was this session's
                // own signer, which still binds it) on terms naming that key that were never opened.
                if (key == s.signerKey) terms.salt += 1_000_000;
            }
        } else if (variant == 5) {
            secondSequence = sequence + 1;
        } else if (variant == 6) {
            uint256 other = providerIds[otherSeed % providerIds.length];
            if (other == terms.providerId) other = providerIds[(otherSeed + 1) % providerIds.length];
            terms.providerId = uint32(other); // signed by this session's own key, naming another provider
        }
        IComputeEscrow.Voucher memory first = _voucher(terms, sequence, terms.maxSpend / 2, 1, false);
        IComputeEscrow.Voucher memory second = _voucher(terms, secondSequence, terms.maxSpend / 2, 1, false);
        if (variant != 3) second.receiptHead = keccak256(abi.encode("conflicting", otherSeed));
        _trySlash(terms.providerId, first, second, key, variant == 0);
    }

    /*//////////////////////////////////////////////////////////////
                          ADMIN AND THE TOKEN
    //////////////////////////////////////////////////////////////*/

    /// @notice The admin changes the fee: sessions keep the fee they opened with (SECURITY.md 23).
    function setFee(uint256 fee, bool asStranger) external step {
        fee = bound(fee, 0, MAX_FEE + 1); // one unit too high now and then
        bool shouldWork = !asStranger && fee <= MAX_FEE;
        vm.prank(asStranger ? STRANGER : admin);
        try escrow.setFee(fee) {
            if (!shouldWork) _violation("setFee by a non-admin, or above the maximum, succeeded");
            ++calls["setFee"];
        } catch {
            if (shouldWork) _violation("setFee reverted");
        }
    }

    function setTokenPaused(bool paused) external step {
        vm.prank(admin); // the test contract deployed MockUSDC: it is its pauser
        if (paused) usdc.pause();
        else usdc.unpause();
        ++calls[paused ? "pauseToken" : "unpauseToken"];
    }

    /// @notice USDC blacklists (or clears) a creator, a provider's payout, the escrow, the ledger or the registry.
    function setBlacklisted(uint256 partySeed, bool listed) external step {
        address party;
        uint256 which = partySeed % 6;
        if (which < 2) party = creators[which];
        else if (which == 2) party = _payoutToBlacklist(partySeed);
        else if (which == 3) party = address(escrow);
        else if (which == 4) party = address(ledger);
        else party = address(registry);
        vm.prank(admin);
        if (listed) usdc.blacklist(party);
        else usdc.unBlacklist(party);
        ++calls[listed ? "blacklist" : "unBlacklist"];
    }

    /*//////////////////////////////////////////////////////////////
                               INTERNALS
    //////////////////////////////////////////////////////////////*/

    /// @dev The first session from `seed` on that is not finalized (and, if asked, still claimable).
    function _pickOpenSession(uint256 seed, bool windowOpen) internal view returns (bool, uint256) {
        uint256 n = _sessions.length;
        for (uint256 i; i < n; ++i) {
            uint256 index = (seed % n + i) % n;
            SessionGhost storage s = _sessions[index];
            if (!s.finalized && (!windowOpen || ghostNow < s.claimEnd)) return (true, index);
        }
        return (false, 0);
    }

    /// @dev The first budget from `seed` on that is not expired and can lock at least one minimum charge.
    function _pickOpenableBudget(uint256 seed) internal view returns (bool, uint256, uint256) {
        for (uint256 i; i < budgetTotal; ++i) {
            uint256 budgetId = 1 + (seed + i) % budgetTotal;
            IComputeEscrow.Budget memory budget = escrow.getBudget(budgetId);
            uint256 cap = budget.perSessionLimit < budget.available ? budget.perSessionLimit : budget.available;
            if (ghostNow < budget.expiry && cap >= MIN_CHARGE) return (true, budgetId, cap);
        }
        return (false, 0, 0);
    }

    function _newProvider(address owner, uint256 stake, bool splitPayout) internal {
        uint256 signerKey = 0x516E00 + (providerIds.length + 1) * 0x100;
        address payout = splitPayout ? split : address(uint160(0xFA0000 + providerIds.length + 1));
        if (!splitPayout) _know(payout);
        uint256 providerId = _registerProvider(owner, vm.addr(signerKey), payout, stake);
        providerIds.push(providerId);
        signerKeyOf[providerId] = signerKey;
        ghostStakeIn += stake;
        ghostLedgerIn += stake;
    }

    function _config(address signer, address payout) internal pure returns (IProviderRegistry.ProviderConfig memory) {
        return IProviderRegistry.ProviderConfig({
            endpoint: "https://provider.example",
            providerType: IProviderRegistry.ProviderType.SelfHosted,
            rateLimitPerMinute: 600,
            minChargePerCall: MIN_CHARGE,
            features: 0,
            receiptSigner: signer,
            payout: payout
        });
    }

    function _nextVoucher(
        SessionGhost storage s,
        uint256 costSeed,
        uint256 sequenceStep,
        uint256 requestStep,
        bool isFinal
    ) internal returns (IComputeEscrow.SignedVoucher memory) {
        uint256 headroom = s.terms.maxSpend - s.settled;
        // A third of the time the cost does not move (pays zero); otherwise a random increment.
        uint256 cost = s.settled + (costSeed % 3 == 0 ? 0 : bound(costSeed >> 2, 0, headroom));
        uint256 requests = s.requests + bound(requestStep, 0, 3);
        IComputeEscrow.Voucher memory voucher =
            _voucher(s.terms, s.sequence + bound(sequenceStep, 1, 3), cost, requests, isFinal);
        return _signVoucher(voucher, s.agentKey, s.signerKey);
    }

    /// @dev Settles (or cooperatively closes) and checks the credits moved; false if it reverted.
    function _trySettle(SessionGhost storage s, IComputeEscrow.SignedVoucher memory signed, bool cooperative)
        internal
        returns (bool)
    {
        (,, address payout) = registry.settlementParties(s.terms.providerId);
        uint256 escrowBefore = ledger.balanceOf(address(escrow));
        uint256 payoutBefore = ledger.balanceOf(payout);
        uint256 treasuryBefore = ledger.balanceOf(treasury);
        uint256 tokensBefore = usdc.balanceOf(address(ledger));
        if (cooperative) {
            try escrow.closeCooperative(_one(signed)) {} catch { return false; }
        } else {
            try escrow.settle(_one(signed)) {} catch { return false; }
        }
        uint256 delta = signed.voucher.cumulativeCost - s.settled;
        // The fee is the session's own, fixed when it opened, whatever the escrow's fee is now.
        uint256 fee = delta * s.terms.feeBps / BPS;
        if (ledger.balanceOf(address(escrow)) + delta != escrowBefore) {
            _violation("escrow released other than the difference");
        }
        if (ledger.balanceOf(payout) != payoutBefore + delta - fee) _violation("payout credited a wrong amount");
        if (ledger.balanceOf(treasury) != treasuryBefore + fee) {
            ++feeMismatches;
            _violation("treasury credited other than the session's fee");
        }
        if (usdc.balanceOf(address(ledger)) != tokensBefore) _violation("settlement moved tokens");
        ghostPaid += delta;
        _budgets[s.terms.budgetId].spent += delta;
        directCredited[treasury] += fee;
        directCredited[payout] += delta - fee;
        s.settled = signed.voucher.cumulativeCost;
        s.sequence = signed.voucher.sequence;
        s.requests = signed.voucher.requestCount;
        return true;
    }

    function _markFinalized(SessionGhost storage s, uint256 availableBefore) internal {
        s.finalized = true;
        uint256 returned = s.terms.maxSpend - s.settled;
        if (escrow.getBudget(s.terms.budgetId).available != availableBefore + returned) {
            _violation("finalize returned a wrong amount to the budget");
        }
    }

    /// @dev returnExpired: works iff the budget expired and holds something; credits the creator's
    /// ledger balance (no token moves, so neither a pause nor a blacklist can stop it).
    function _returnExpired(uint256 budgetId, bool liveness) internal {
        BudgetGhost storage b = _budgets[budgetId];
        uint256 available = escrow.getBudget(budgetId).available;
        bool shouldWork = ghostNow >= b.expiry && available != 0;
        if (liveness && !shouldWork) return;
        uint256 before = ledger.balanceOf(b.creator);
        uint256 escrowBefore = ledger.balanceOf(address(escrow));
        try escrow.returnExpired(budgetId) {
            if (!shouldWork) _violation("returnExpired succeeded before expiry or when empty");
            if (ledger.balanceOf(b.creator) != before + available) _violation("returnExpired credited a wrong amount");
            if (ledger.balanceOf(address(escrow)) + available != escrowBefore) _violation("returnExpired: escrow");
            b.refunded += available;
            directCredited[b.creator] += available;
            ++calls["returnExpired"];
        } catch {
            if (liveness) ++livenessFailures;
            if (shouldWork) _violation("returnExpired reverted");
        }
    }

    /// @dev Submits a double-sign proof and checks it slashed exactly the stake (valid) or nothing (forged).
    function _trySlash(
        uint256 providerId,
        IComputeEscrow.Voucher memory first,
        IComputeEscrow.Voucher memory second,
        uint256 key,
        bool valid
    ) internal {
        IProviderRegistry.Provider memory before = registry.getProvider(providerId);
        uint256 amount = uint256(before.stake) + before.pendingUnstake;
        uint256 reward = amount * SLASH_REWARD_BPS / BPS;
        uint256 slasherBefore = ledger.balanceOf(SLASHER);
        uint256 treasuryBefore = ledger.balanceOf(treasury);
        uint256 registryBefore = ledger.balanceOf(address(registry));
        uint256 escrowBefore = ledger.balanceOf(address(escrow));
        IComputeEscrow.CompactSignature memory firstSignature = _sign(key, escrow.voucherDigest(first));
        IComputeEscrow.CompactSignature memory secondSignature = _sign(key, escrow.voucherDigest(second));
        vm.prank(SLASHER);
        try escrow.slashDoubleSign(first, firstSignature, second, secondSignature) {
            if (!valid) {
                ++forgedSlashes;
                _violation("a forged double-sign proof slashed");
                return;
            }
            IProviderRegistry.Provider memory p = registry.getProvider(providerId);
            if (p.stake != 0 || p.pendingUnstake != 0 || p.active || !p.slashed) _violation("slash left a stake");
            if (ledger.balanceOf(SLASHER) != slasherBefore + reward) _violation("slash reward wrong");
            if (ledger.balanceOf(treasury) != treasuryBefore + amount - reward) _violation("slash remainder wrong");
            if (ledger.balanceOf(address(registry)) + amount != registryBefore) {
                _violation("slash took other than the stake");
            }
            if (ledger.balanceOf(address(escrow)) != escrowBefore) _violation("slash changed the escrow's balance");
            slashedInModel[providerId] = true;
            ghostSlashed += amount;
            directCredited[SLASHER] += reward;
            directCredited[treasury] += amount - reward;
            ++calls["slashDoubleSign"];
        } catch {
            if (valid) {
                _violation("a valid double-sign proof reverted");
                return;
            }
            IProviderRegistry.Provider memory p = registry.getProvider(providerId);
            if (p.stake != before.stake || p.pendingUnstake != before.pendingUnstake || p.slashed != before.slashed) {
                _violation("a refused proof changed the provider");
            }
            ++calls["slashDoubleSign forged"];
        }
    }

    /// @dev Whether `from` can deposit into the ledger through `custodian` (which pulls, then pays the ledger).
    function _depositWorks(address from, address custodian) internal view returns (bool) {
        return !usdc.paused() && !usdc.isBlacklisted(from) && !usdc.isBlacklisted(custodian)
            && !usdc.isBlacklisted(address(ledger));
    }

    /// @dev Whether the ledger can send tokens to (and on behalf of) `account`.
    function _withdrawalWorks(address account) internal view returns (bool) {
        return !usdc.paused() && !usdc.isBlacklisted(account) && !usdc.isBlacklisted(address(ledger));
    }

    /// @dev Mints `amount` to `from` and approves `spender`, as far as the token allows right now.
    function _fund(address from, address spender, uint256 amount) internal {
        if (usdc.paused() || usdc.isBlacklisted(from)) return;
        usdc.mint(from, amount);
        if (usdc.isBlacklisted(spender)) return;
        vm.prank(from);
        usdc.approve(spender, amount);
    }

    function _payoutToBlacklist(uint256 seed) internal view returns (address) {
        for (uint256 i; i < providerIds.length; ++i) {
            (,, address payout) = registry.settlementParties(providerIds[(seed + i) % providerIds.length]);
            if (payout != split) return payout;
        }
        return creators[0];
    }

    /// @dev Pauses the token and blacklists `creator`, the escrow and the ledger; returns what was set before.
    function _makeHostile(address creator) internal returns (bool[4] memory previous) {
        previous = [
            usdc.paused(),
            usdc.isBlacklisted(creator),
            usdc.isBlacklisted(address(escrow)),
            usdc.isBlacklisted(address(ledger))
        ];
        vm.startPrank(admin);
        if (!previous[0]) usdc.pause();
        usdc.blacklist(creator);
        usdc.blacklist(address(escrow));
        usdc.blacklist(address(ledger));
        vm.stopPrank();
    }

    function _restore(address creator, bool[4] memory previous) internal {
        vm.startPrank(admin);
        if (!previous[0]) usdc.unpause();
        if (!previous[1]) usdc.unBlacklist(creator);
        if (!previous[2]) usdc.unBlacklist(address(escrow));
        if (!previous[3]) usdc.unBlacklist(address(ledger));
        vm.stopPrank();
    }

    /// @dev After every action: settled and sequence never decrease, a finalized session never changes.
    function _observe() internal {
        for (uint256 i; i < _sessions.length; ++i) {
            IComputeEscrow.SessionState memory previous = _observed[i];
            IComputeEscrow.SessionState memory current = escrow.getSession(_sessions[i].id);
            if (current.settled < previous.settled || current.sequence < previous.sequence) {
                ++monotonicityBreaks;
                _violation("session settled or sequence decreased");
            }
            bool changed = keccak256(abi.encode(previous)) != keccak256(abi.encode(current));
            if (previous.claimEnd == FINALIZED && changed) {
                ++finalizedChanges;
                _violation("a finalized session changed");
            }
            _observed[i] = current;
        }
    }

    function _know(address account) internal {
        if (_known[account]) return;
        _known[account] = true;
        _accounts.push(account);
    }

    function _violation(string memory what) internal {
        if (violations == 0) firstViolation = what;
        ++violations;
    }
}
