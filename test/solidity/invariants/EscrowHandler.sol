// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ComputeEscrow} from "../../../contracts/ComputeEscrow.sol";
import {ProviderRegistry} from "../../../contracts/ProviderRegistry.sol";
import {SplitsLedger} from "../../../contracts/SplitsLedger.sol";
import {MockUSDC} from "../../../contracts/mocks/MockUSDC.sol";
import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "../../../contracts/interfaces/ISplitsLedger.sol";
import {Suite} from "../utils/Suite.sol";

/// @notice Drives the suite through bounded random actions of creators, agents, providers, relayers
/// and ledger accounts, keeping a model of what every balance should be (ghost variables).
/// @dev Every action checks its own outcome against the model; an unexpected success or revert is
/// counted in `violations` (a revert here would be discarded by the fuzzer, so nothing reverts).
/// Time is kept in `ghostNow`: the optimizer may reuse a TIMESTAMP read across a vm.warp.
contract EscrowHandler is Suite {
    uint256 public constant MAX_BUDGETS = 12;
    uint256 public constant MAX_SESSIONS = 24;
    uint256 public constant MAX_PROVIDERS = 5;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant SCALE = 1_000_000;
    address internal constant SINK = address(0x51CC);
    address internal constant FUNDER = address(0xF0F0);

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
    mapping(uint256 providerId => uint256) public lastUnstakeRequest;

    address[] internal _accounts;
    mapping(address account => bool) internal _known;
    mapping(address account => uint256) public directCredited;
    mapping(address account => uint256) public withdrawn;
    address public split;
    address[3] public splitRecipients = [address(0xD0001), address(0xD0002), address(0xD0003)];
    uint256[3] public splitShares = [uint256(300_000), 450_000, 250_000];

    uint256 public ghostNow;
    uint256 public ghostPaid;
    uint256 public ghostStakeIn;
    uint256 public ghostStakeOut;
    uint256 public totalWithdrawn;

    uint256 public violations;
    string public firstViolation;
    uint256 public livenessFailures;
    uint256 public earlyUnstakeWithdrawals;
    uint256 public monotonicityBreaks;
    uint256 public finalizedChanges;
    mapping(string action => uint256) public calls;

    constructor(MockUSDC usdc_, SplitsLedger ledger_, ProviderRegistry registry_, ComputeEscrow escrow_) {
        usdc = usdc_;
        ledger = ledger_;
        registry = registry_;
        escrow = escrow_;
        ghostNow = block.timestamp;
        _know(treasury);

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
        this.openSession(0, 0, 0, 10_000_000, 1 days, true);
        this.openSession(0, 1, 1, 10_000_000, 2 days, false);
    }

    modifier step {
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

    function accounts() external view returns (address[] memory) {
        return _accounts;
    }

    function providerCount() external view returns (uint256) {
        return providerIds.length;
    }

    /// @notice What `account` has been credited in the ledger: direct credits plus its lifetime split share.
    function credited(address account) public view returns (uint256 total) {
        total = directCredited[account];
        (uint256 received,) = ledger.splitTotals(split);
        for (uint256 i; i < 3; ++i) {
            if (splitRecipients[i] == account) total += received * splitShares[i] / SCALE;
        }
    }

    /*//////////////////////////////////////////////////////////////
                                BUDGETS
    //////////////////////////////////////////////////////////////*/

    function createBudget(uint256 creatorSeed, uint256 amount, uint256 limit, uint256 duration)
        external
        step
    {
        if (budgetTotal >= MAX_BUDGETS) return;
        address creator = creators[creatorSeed % 2];
        amount = bound(amount, 1_000_000, 1_000_000_000);
        limit = bound(limit, MIN_CHARGE, 600_000_000);
        uint256 expiry = ghostNow + bound(duration, 1 hours, 10 days);
        address[] memory agents = new address[](3);
        for (uint256 i; i < 3; ++i) {
            agents[i] = vm.addr(agentKeys[i]);
        }
        usdc.mint(creator, amount);
        vm.prank(creator);
        usdc.approve(address(escrow), amount);
        vm.prank(creator);
        try escrow.createBudget(amount, limit, expiry, agents) returns (uint256 budgetId) {
            budgetTotal = budgetId;
            _budgets[budgetId] = BudgetGhost(creator, expiry, amount, 0, 0);
            ++calls["createBudget"];
        } catch {
            _violation("createBudget reverted");
        }
    }

    function topUp(uint256 budgetSeed, uint256 amount) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        amount = bound(amount, 1, 100_000_000);
        usdc.mint(FUNDER, amount);
        vm.prank(FUNDER);
        usdc.approve(address(escrow), amount);
        bool expired = ghostNow >= _budgets[budgetId].expiry;
        vm.prank(FUNDER);
        try escrow.topUp(budgetId, amount) {
            if (expired) _violation("topUp of an expired budget succeeded");
            _budgets[budgetId].deposited += amount;
            ++calls["topUp"];
        } catch {
            if (!expired) _violation("topUp reverted");
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
        uint256 before = usdc.balanceOf(b.creator);
        vm.prank(b.creator);
        try escrow.refund(budgetId, amount) {
            if (amount > available) _violation("refund beyond available succeeded");
            if (usdc.balanceOf(b.creator) != before + amount) _violation("refund paid a wrong amount");
            b.refunded += amount;
            ++calls["refund"];
        } catch {
            if (amount <= available) _violation("refund reverted");
        }
    }

    function returnExpired(uint256 budgetSeed) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        BudgetGhost storage b = _budgets[budgetId];
        uint256 available = escrow.getBudget(budgetId).available;
        bool shouldWork = ghostNow >= b.expiry && available != 0;
        uint256 before = usdc.balanceOf(b.creator);
        try escrow.returnExpired(budgetId) {
            if (!shouldWork) _violation("returnExpired succeeded before expiry or when empty");
            if (usdc.balanceOf(b.creator) != before + available) _violation("returnExpired paid a wrong amount");
            b.refunded += available;
            ++calls["returnExpired"];
        } catch {
            if (shouldWork) _violation("returnExpired reverted");
        }
    }

    /*//////////////////////////////////////////////////////////////
                                SESSIONS
    //////////////////////////////////////////////////////////////*/

    function openSession(
        uint256 budgetSeed,
        uint256 agentSeed,
        uint256 providerSeed,
        uint256 maxSpend,
        uint256 deadlineSeed,
        bool viaRelayer
    ) external step {
        if (budgetTotal == 0 || _sessions.length >= MAX_SESSIONS) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        uint256 providerId = providerIds[providerSeed % providerIds.length];
        IComputeEscrow.Budget memory budget = escrow.getBudget(budgetId);
        if (ghostNow >= budget.expiry || !registry.getProvider(providerId).active) return;
        uint256 cap = budget.perSessionLimit < budget.available ? budget.perSessionLimit : budget.available;
        if (cap < MIN_CHARGE) return;
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
        IComputeEscrow.CompactSignature memory signature;
        if (viaRelayer) signature = _sign(agentKey, escrow.openDigest(terms));
        else vm.prank(terms.agent);
        try escrow.openSession(terms, signature) returns (bytes32 id) {
            SessionGhost storage s = _sessions.push();
            s.terms = terms;
            s.id = id;
            s.agentKey = agentKey;
            s.signerKey = signerKeyOf[providerId];
            s.claimEnd = uint256(terms.deadline) + CHALLENGE_WINDOW;
            _observed[_sessions.length - 1] = escrow.getSession(id);
            ++calls["openSession"];
        } catch {
            _violation("openSession reverted");
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

    function closeByProvider(uint256 sessionSeed, bool bySigner) external step {
        (bool found, uint256 index) = _pickOpenSession(sessionSeed, false);
        if (!found) return;
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

    /// @notice Liveness: once a budget's expiry plus the challenge window has passed, every open
    /// session of it finalizes and the whole unallocated balance returns to its creator.
    function drainAfterExpiry(uint256 budgetSeed) external step {
        if (budgetTotal == 0) return;
        uint256 budgetId = 1 + budgetSeed % budgetTotal;
        BudgetGhost storage b = _budgets[budgetId];
        uint256 end = b.expiry + CHALLENGE_WINDOW;
        if (ghostNow < end) {
            ghostNow = end;
            vm.warp(end);
        }
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
        uint256 available = escrow.getBudget(budgetId).available;
        if (available != 0) {
            uint256 before = usdc.balanceOf(b.creator);
            try escrow.returnExpired(budgetId) {
                b.refunded += available;
                if (usdc.balanceOf(b.creator) != before + available) _violation("liveness: wrong amount returned");
            } catch {
                ++livenessFailures;
                _violation("liveness: returnExpired after expiry + window reverted");
            }
        }
        if (escrow.getBudget(budgetId).available != 0) {
            ++livenessFailures;
            _violation("liveness: budget not empty after drain");
        }
        ++calls["drainAfterExpiry"];
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
        uint256 before = usdc.balanceOf(SINK);
        vm.prank(account);
        try ledger.withdraw(SINK, amount) {
            if (amount > balance) _violation("withdraw above balance succeeded");
            if (usdc.balanceOf(SINK) != before + amount) _violation("withdraw sent a wrong amount");
            withdrawn[account] += amount;
            totalWithdrawn += amount;
            ++calls["withdraw"];
        } catch {
            if (amount <= balance) _violation("withdraw reverted");
        }
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTRY
    //////////////////////////////////////////////////////////////*/

    function register(uint256 ownerSeed, uint256 stake, bool splitPayout) external step {
        if (providerIds.length >= MAX_PROVIDERS) return;
        _newProvider(providerOwners[ownerSeed % 2], bound(stake, MIN_STAKE, 1_000_000_000), splitPayout);
        ++calls["register"];
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
            if (usdc.balanceOf(p.owner) != before + p.pendingUnstake) _violation("unstake paid a wrong amount");
            ghostStakeOut += p.pendingUnstake;
            ++calls["withdrawUnstaked"];
        } catch {
            if (ready) _violation("withdrawUnstaked reverted");
        }
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

    function _newProvider(address owner, uint256 stake, bool splitPayout) internal {
        uint256 signerKey = 0x516E00 + providerIds.length + 1;
        address payout = splitPayout ? split : address(uint160(0xFA0000 + providerIds.length + 1));
        if (!splitPayout) _know(payout);
        uint256 providerId = _registerProvider(owner, vm.addr(signerKey), payout, stake);
        providerIds.push(providerId);
        signerKeyOf[providerId] = signerKey;
        ghostStakeIn += stake;
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

    /// @dev Settles (or cooperatively closes) and checks the money moved; false if it reverted.
    function _trySettle(SessionGhost storage s, IComputeEscrow.SignedVoucher memory signed, bool cooperative)
        internal
        returns (bool)
    {
        uint256 ledgerBefore = usdc.balanceOf(address(ledger));
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        if (cooperative) {
            try escrow.closeCooperative(_one(signed)) {} catch { return false; }
        } else {
            try escrow.settle(_one(signed)) {} catch { return false; }
        }
        uint256 delta = signed.voucher.cumulativeCost - s.settled;
        uint256 paid = usdc.balanceOf(address(ledger)) - ledgerBefore;
        if (paid != delta) _violation("settlement paid other than the difference");
        if (escrowBefore - usdc.balanceOf(address(escrow)) != delta) {
            _violation("escrow released other than the difference");
        }
        ghostPaid += paid;
        _budgets[s.terms.budgetId].spent += delta;
        uint256 fee = delta * FEE_BPS / BPS;
        directCredited[treasury] += fee;
        (,, address payout) = registry.settlementParties(s.terms.providerId);
        if (payout != split) directCredited[payout] += delta - fee;
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
            if (previous.claimEnd == escrow.FINALIZED() && changed) {
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
