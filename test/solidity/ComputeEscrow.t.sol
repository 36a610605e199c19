// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../../contracts/interfaces/IComputeEscrow.sol";
import {Suite} from "./utils/Suite.sol";

/// @notice Fuzz tests of ComputeEscrow's budget, session and voucher rules against the real suite.
/// @dev The escrow keeps its budgets as its ledger balance: settling moves ledger credits, never tokens.
contract ComputeEscrowFuzzTest is Suite {
    uint256 internal constant AGENT_KEY = 0xA6E47;
    uint256 internal constant SIGNER_KEY = 0x5161E2;
    uint256 internal constant BUDGET = 1_000_000_000; // 1,000 USDC
    uint256 internal constant LIMIT = 500_000_000;

    address internal agent;
    address internal signer;
    address internal providerOwner = address(0x0A11CE);
    address internal payout = address(0xFA1D);
    address internal creator = address(0xC4EA7E);
    uint256 internal providerId;
    uint256 internal budgetId;
    uint256 internal expiry;
    /// @dev USDC the ledger holds after setUp (the provider's stake and the budget): settlement never changes it.
    uint256 internal ledgerHeld;

    function setUp() public {
        _deploySuite();
        agent = vm.addr(AGENT_KEY);
        signer = vm.addr(SIGNER_KEY);
        providerId = _registerProvider(providerOwner, signer, payout, MIN_STAKE);
        expiry = block.timestamp + 30 days;
        budgetId = _createBudget(creator, BUDGET, LIMIT, expiry, agent);
        ledgerHeld = usdc.balanceOf(address(ledger));
    }

    function _open(uint256 maxSpend, uint256 salt)
        internal
        returns (IComputeEscrow.SessionTerms memory terms, bytes32 id)
    {
        terms = _terms(agent, budgetId, providerId, maxSpend, block.timestamp + 1 days, salt);
        id = _openSigned(terms, AGENT_KEY);
    }

    function _settle(IComputeEscrow.SessionTerms memory terms, uint256 sequence, uint256 cost, uint256 requests)
        internal
    {
        IComputeEscrow.Voucher memory voucher = _voucher(terms, sequence, cost, requests, false);
        escrow.settle(_one(_signVoucher(voucher, AGENT_KEY, SIGNER_KEY)));
    }

    function _fee(uint256 amount) internal pure returns (uint256) {
        return amount * FEE_BPS / 10_000;
    }

    /// @dev What settlement has credited: the provider's payout plus the protocol fee.
    function _paidOut() internal view returns (uint256) {
        return ledger.balanceOf(payout) + ledger.balanceOf(treasury);
    }

    /*//////////////////////////////////////////////////////////////
                                 UNIT
    //////////////////////////////////////////////////////////////*/

    function test_setUp_RunsOnLocalChainWithSuiteWired() public view {
        assertEq(block.chainid, 31_337, "chain id");
        assertEq(registry.escrow(), address(escrow), "escrow bound");
        assertTrue(ledger.isCustodian(address(escrow)), "escrow is a custodian");
        assertEq(ledger.balanceOf(address(escrow)), BUDGET, "escrow holds the budget in the ledger");
        assertEq(usdc.balanceOf(address(escrow)), 0, "escrow holds no tokens");
        assertEq(usdc.balanceOf(address(registry)), 0, "registry holds no tokens");
        assertEq(ledger.balanceOf(address(registry)), MIN_STAKE, "registry holds the stake in the ledger");
        assertEq(ledgerHeld, BUDGET + MIN_STAKE, "the ledger holds every token");
    }

    function test_settle_RevertWhen_VoucherStale() public {
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(10_000_000, 1);
        IComputeEscrow.SignedVoucher memory signed =
            _signVoucher(_voucher(terms, 1, 4_000_000, 3, false), AGENT_KEY, SIGNER_KEY);
        escrow.settle(_one(signed));
        uint256 escrowBalance = ledger.balanceOf(address(escrow));

        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowVoucherStale.selector, id, 1, 1));
        escrow.settle(_one(signed));
        assertEq(ledger.balanceOf(address(escrow)), escrowBalance, "replay paid nothing");
        assertEq(_paidOut(), 4_000_000, "paid once");
        assertEq(escrow.getSession(id).settled, 4_000_000, "settled unchanged");
    }

    /*//////////////////////////////////////////////////////////////
                                 FUZZ
    //////////////////////////////////////////////////////////////*/

    function testFuzz_settle_PaysOnlyTheDifference(uint256 maxSpend, uint256 first, uint256 second) public {
        maxSpend = bound(maxSpend, MIN_CHARGE, LIMIT);
        first = bound(first, 0, maxSpend);
        second = bound(second, first, maxSpend);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(maxSpend, 7);
        assertEq(ledger.balanceOf(address(escrow)), BUDGET, "opening moves no funds");
        assertEq(escrow.getBudget(budgetId).available, BUDGET - maxSpend, "lock taken from budget");

        _settle(terms, 1, first, 1);
        assertEq(_paidOut(), first, "first settlement pays its cost");
        assertEq(ledger.balanceOf(address(escrow)), BUDGET - first, "escrow paid exactly the cost");
        assertEq(usdc.balanceOf(address(ledger)), ledgerHeld, "settling moves no tokens");
        assertEq(ledger.balanceOf(payout), first - _fee(first), "provider earnings after first");
        assertEq(ledger.balanceOf(treasury), _fee(first), "fee after first");

        _settle(terms, 2, second, 2);
        uint256 delta = second - first;
        assertEq(_paidOut(), second, "second settlement pays only the difference");
        assertEq(ledger.balanceOf(address(escrow)), BUDGET - second, "escrow balance after second");
        assertEq(
            ledger.balanceOf(payout), first - _fee(first) + delta - _fee(delta), "provider earnings after second"
        );
        assertEq(ledger.balanceOf(treasury), _fee(first) + _fee(delta), "fees after second");
        assertEq(ledger.balanceOf(payout) + ledger.balanceOf(treasury), second, "payee credits == cumulative cost");

        // A newer state with the same cumulative cost pays nothing.
        _settle(terms, 3, second, 3);
        assertEq(_paidOut(), second, "same cumulative cost pays zero");
        assertEq(usdc.balanceOf(address(ledger)), ledgerHeld, "no tokens moved");
        IComputeEscrow.SessionState memory state = escrow.getSession(id);
        assertEq(state.settled, second, "settled");
        assertEq(state.sequence, 3, "sequence");
        // Suite._voucher counts only the requests the cost pays for (requestCount x MIN_CHARGE <= cost).
        uint256 requests = second / MIN_CHARGE < 3 ? second / MIN_CHARGE : 3;
        assertEq(state.requestCount, requests, "requests");
        assertEq(registry.getMetrics(providerId).earnings, ledger.balanceOf(payout), "metrics earnings");
    }

    function testFuzz_settle_RevertWhen_VoucherStale(uint256 settledSequence, uint256 staleSequence, uint256 cost)
        public
    {
        settledSequence = bound(settledSequence, 1, type(uint32).max);
        staleSequence = bound(staleSequence, 0, settledSequence);
        uint256 maxSpend = 10_000_000;
        cost = bound(cost, 0, maxSpend - 1);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(maxSpend, 11);
        _settle(terms, settledSequence, cost, 1);

        // Even a stale voucher that would raise the cost is rejected.
        IComputeEscrow.SignedVoucher memory stale =
            _signVoucher(_voucher(terms, staleSequence, maxSpend, 2, false), AGENT_KEY, SIGNER_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(IComputeEscrow.EscrowVoucherStale.selector, id, settledSequence, staleSequence)
        );
        escrow.settle(_one(stale));

        IComputeEscrow.SessionState memory state = escrow.getSession(id);
        assertEq(state.settled, cost, "settled unchanged");
        assertEq(state.sequence, settledSequence, "sequence unchanged");
        assertEq(_paidOut(), cost, "nothing more paid");
    }

    function testFuzz_open_RevertWhen_LockAbovePerSessionLimit(uint256 limit, uint256 maxSpend) public {
        limit = bound(limit, MIN_CHARGE, type(uint64).max - 1);
        maxSpend = bound(maxSpend, limit + 1, type(uint64).max);
        vm.prank(creator);
        escrow.setBudgetTerms(budgetId, limit, expiry);

        IComputeEscrow.SessionTerms memory terms =
            _terms(agent, budgetId, providerId, maxSpend, block.timestamp + 1 days, 3);
        IComputeEscrow.CompactSignature memory signature = _sign(AGENT_KEY, escrow.openDigest(terms));
        vm.expectRevert(
            abi.encodeWithSelector(IComputeEscrow.EscrowSessionLimitExceeded.selector, budgetId, limit, maxSpend)
        );
        escrow.openSession(terms, signature);
        assertEq(escrow.getBudget(budgetId).available, BUDGET, "nothing locked");
        assertEq(escrow.getSession(escrow.sessionIdOf(terms)).claimEnd, 0, "no session");

        // At the limit (when the budget holds it) the open succeeds and locks exactly maxSpend.
        if (limit <= BUDGET) {
            terms.maxSpend = uint64(limit);
            bytes32 id = _openSigned(terms, AGENT_KEY);
            assertEq(escrow.getBudget(budgetId).available, BUDGET - limit, "locked exactly the limit");
            assertEq(escrow.getSession(id).claimEnd, terms.deadline + CHALLENGE_WINDOW, "claim end");
        }
    }

    function testFuzz_settle_RevertWhen_CostAboveLock(uint256 maxSpend, uint256 cost) public {
        maxSpend = bound(maxSpend, MIN_CHARGE, LIMIT);
        cost = bound(cost, maxSpend + 1, type(uint64).max);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(maxSpend, 5);
        IComputeEscrow.SignedVoucher memory signed =
            _signVoucher(_voucher(terms, 1, cost, 1, false), AGENT_KEY, SIGNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowVoucherExceedsLock.selector, id, maxSpend, cost));
        escrow.settle(_one(signed));
        assertEq(escrow.getSession(id).settled, 0, "nothing settled");
        assertEq(ledger.balanceOf(address(escrow)), BUDGET, "nothing paid");

        // Exactly the lock is fine.
        _settle(terms, 1, maxSpend, 1);
        assertEq(_paidOut(), maxSpend, "paid the whole lock");
    }

    function testFuzz_settle_RevertWhen_CostBelowMinCharge(uint256 requests, uint256 cost) public {
        requests = bound(requests, 1, 1_000);
        uint256 minimum = requests * MIN_CHARGE;
        cost = bound(cost, 0, minimum - 1);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(LIMIT, 23);
        IComputeEscrow.Voucher memory voucher = _voucher(terms, 1, cost, 0, false);
        voucher.requestCount = uint32(requests); // padded metrics the cost does not pay for
        IComputeEscrow.SignedVoucher memory signed = _signVoucher(voucher, AGENT_KEY, SIGNER_KEY);
        vm.expectRevert(
            abi.encodeWithSelector(IComputeEscrow.EscrowVoucherBelowMinCharge.selector, id, minimum, cost)
        );
        escrow.settle(_one(signed));
        assertEq(escrow.getSession(id).requestCount, 0, "metrics not padded");
    }

    function testFuzz_refund_RevertWhen_AmountIsLockedInSession(uint256 maxSpend, uint256 extra) public {
        maxSpend = bound(maxSpend, MIN_CHARGE, LIMIT);
        extra = bound(extra, 1, maxSpend);
        _open(maxSpend, 9);
        uint256 available = BUDGET - maxSpend;
        vm.expectRevert(
            abi.encodeWithSelector(
                IComputeEscrow.EscrowInsufficientBudget.selector, budgetId, available, available + extra
            )
        );
        vm.prank(creator);
        escrow.refund(budgetId, available + extra);

        vm.prank(creator);
        escrow.refund(budgetId, available);
        assertEq(usdc.balanceOf(creator), available, "refunded the unlocked part to the creator's wallet");
        assertEq(ledger.balanceOf(address(escrow)), maxSpend, "lock stays claimable");
        assertEq(usdc.balanceOf(address(ledger)), ledgerHeld - available, "the refund left the ledger");
    }

    function testFuzz_finalize_ReturnsUnusedLockAfterWindow(uint256 maxSpend, uint256 cost, uint256 closeAfter)
        public
    {
        maxSpend = bound(maxSpend, MIN_CHARGE, LIMIT);
        cost = bound(cost, 0, maxSpend);
        closeAfter = bound(closeAfter, 0, 1 days - 1);
        // Time is tracked in a local: the optimizer may reuse an earlier TIMESTAMP read across vm.warp.
        uint256 t = block.timestamp;
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(maxSpend, 13);
        _settle(terms, 1, cost, 1);

        t += closeAfter;
        vm.warp(t);
        vm.prank(agent);
        escrow.requestClose(terms);
        uint256 claimEnd = escrow.getSession(id).claimEnd;
        assertEq(claimEnd, t + CHALLENGE_WINDOW, "window starts at the request");

        // A repeated request later never extends the window.
        vm.warp(t + 1 hours);
        vm.prank(creator);
        escrow.requestClose(terms);
        assertEq(escrow.getSession(id).claimEnd, claimEnd, "window not extended");

        vm.warp(claimEnd - 1);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowClaimWindowOpen.selector, id, claimEnd));
        escrow.finalize(terms);

        vm.warp(claimEnd);
        escrow.finalize(terms);
        assertEq(escrow.getBudget(budgetId).available, BUDGET - cost, "unused lock returned");
        assertEq(escrow.getSession(id).claimEnd, escrow.FINALIZED(), "finalized");

        IComputeEscrow.SignedVoucher memory late =
            _signVoucher(_voucher(terms, 2, cost, 2, false), AGENT_KEY, SIGNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowSessionNotOpen.selector, id));
        escrow.settle(_one(late));

        vm.warp(expiry);
        escrow.returnExpired(budgetId);
        assertEq(ledger.balanceOf(creator), BUDGET - cost, "creator's ledger balance got back everything unspent");
        assertEq(ledger.balanceOf(address(escrow)), 0, "escrow empty");
        assertEq(usdc.balanceOf(address(ledger)), ledgerHeld, "returning moves no tokens");
    }

    function testFuzz_closeCooperative_PaysDifferenceAndFinalizes(uint256 maxSpend, uint256 first, uint256 last)
        public
    {
        maxSpend = bound(maxSpend, MIN_CHARGE, LIMIT);
        first = bound(first, 0, maxSpend);
        last = bound(last, first, maxSpend);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(maxSpend, 17);
        _settle(terms, 1, first, 1);

        IComputeEscrow.SignedVoucher memory notFinal =
            _signVoucher(_voucher(terms, 2, last, 2, false), AGENT_KEY, SIGNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowVoucherNotFinal.selector, id));
        escrow.closeCooperative(_one(notFinal));

        escrow.closeCooperative(_one(_signVoucher(_voucher(terms, 2, last, 2, true), AGENT_KEY, SIGNER_KEY)));
        assertEq(_paidOut(), last, "paid the cumulative total once");
        assertEq(escrow.getBudget(budgetId).available, BUDGET - last, "rest returned at once");
        assertEq(escrow.getSession(id).claimEnd, escrow.FINALIZED(), "finalized");
        assertEq(escrow.getSession(id).settled, last, "settled");
    }

    function testFuzz_settle_RevertWhen_SignedByWrongKey(uint256 wrongKey) public {
        wrongKey = bound(wrongKey, 1, 2 ** 128);
        vm.assume(wrongKey != AGENT_KEY && wrongKey != SIGNER_KEY);
        (IComputeEscrow.SessionTerms memory terms, bytes32 id) = _open(10_000_000, 19);
        IComputeEscrow.SignedVoucher memory forged =
            _signVoucher(_voucher(terms, 1, 5_000_000, 1, false), wrongKey, SIGNER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowInvalidSignature.selector, id, agent));
        escrow.settle(_one(forged));

        forged = _signVoucher(_voucher(terms, 1, 5_000_000, 1, false), AGENT_KEY, wrongKey);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowInvalidSignature.selector, id, signer));
        escrow.settle(_one(forged));
        assertEq(_paidOut(), 0, "nothing paid");
        assertEq(ledger.balanceOf(address(escrow)), BUDGET, "nothing left the escrow");
    }
}
