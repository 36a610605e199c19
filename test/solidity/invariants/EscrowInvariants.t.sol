// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {Suite} from "../utils/Suite.sol";
import {EscrowHandler} from "./EscrowHandler.sol";

/// @notice Stateful invariants of the escrow, ledger and registry (SECURITY.md, "Contracts: invariants"),
/// fuzzed through EscrowHandler only.
/// forge-config: default.invariant.runs = 32
/// forge-config: default.invariant.depth = 64
contract EscrowInvariantsTest is Suite {
    EscrowHandler internal handler;

    function setUp() public {
        _deploySuite();
        handler = new EscrowHandler(usdc, ledger, registry, escrow);
        vm.label(address(handler), "EscrowHandler");
        handler.bootstrap();
    }

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    /// @notice Only the handler is fuzzed (Foundry-compatible target selection, read by EDR).
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice The handler's actions (everything but `bootstrap`).
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](16);
        selectors[0] = EscrowHandler.createBudget.selector;
        selectors[1] = EscrowHandler.topUp.selector;
        selectors[2] = EscrowHandler.refund.selector;
        selectors[3] = EscrowHandler.returnExpired.selector;
        selectors[4] = EscrowHandler.openSession.selector;
        selectors[5] = EscrowHandler.settle.selector;
        selectors[6] = EscrowHandler.closeCooperative.selector;
        selectors[7] = EscrowHandler.requestClose.selector;
        selectors[8] = EscrowHandler.finalize.selector;
        selectors[9] = EscrowHandler.closeByProvider.selector;
        selectors[10] = EscrowHandler.drainAfterExpiry.selector;
        selectors[11] = EscrowHandler.warp.selector;
        selectors[12] = EscrowHandler.withdraw.selector;
        selectors[13] = EscrowHandler.register.selector;
        selectors[14] = EscrowHandler.requestUnstake.selector;
        selectors[15] = EscrowHandler.withdrawUnstaked.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    function _session(uint256 i) internal view returns (EscrowHandler.SessionGhost memory) {
        return handler.sessionGhost(i);
    }

    /// @dev Unspent lock of an open session (zero once finalized).
    function _lock(EscrowHandler.SessionGhost memory s) internal view returns (uint256) {
        IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
        if (state.claimEnd == escrow.FINALIZED()) return 0;
        return s.terms.maxSpend - state.settled;
    }

    /*//////////////////////////////////////////////////////////////
                              CONSERVATION
    //////////////////////////////////////////////////////////////*/

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_escrowBalanceEqualsBudgetsPlusLocks() public view {
        uint256 total;
        for (uint256 id = 1; id <= handler.budgetTotal(); ++id) {
            total += escrow.getBudget(id).available;
        }
        for (uint256 i; i < handler.sessionCount(); ++i) {
            total += _lock(_session(i));
        }
        assertEq(usdc.balanceOf(address(escrow)), total, "escrow USDC == sum(available) + sum(open locks)");
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_ledgerBalanceEqualsAccountBalances() public view {
        address[] memory accounts = handler.accounts();
        uint256 total;
        for (uint256 i; i < accounts.length; ++i) {
            total += ledger.balanceOf(accounts[i]);
        }
        (, uint256 dust) = ledger.splitTotals(handler.split());
        assertEq(usdc.balanceOf(address(ledger)), total + dust, "ledger USDC == sum(balances) + split dust");
        assertEq(
            usdc.balanceOf(address(ledger)),
            handler.ghostPaid() - handler.totalWithdrawn(),
            "ledger USDC == paid in - withdrawn"
        );
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_registryBalanceEqualsStakes() public view {
        uint256 total;
        for (uint256 i; i < handler.providerCount(); ++i) {
            IProviderRegistry.Provider memory p = registry.getProvider(handler.providerIds(i));
            total += uint256(p.stake) + p.pendingUnstake;
        }
        assertEq(usdc.balanceOf(address(registry)), total, "registry USDC == sum(stake + pendingUnstake)");
        assertEq(total, handler.ghostStakeIn() - handler.ghostStakeOut(), "stakes == staked - withdrawn");
    }

    /*//////////////////////////////////////////////////////////////
                              PER SESSION
    //////////////////////////////////////////////////////////////*/

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_sessionSettledWithinLock() public view {
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
            assertLe(state.settled, s.terms.maxSpend, "settled <= maxSpend");
            assertEq(state.settled, s.settled, "settled == model");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_sessionSettledAndSequenceNeverDecrease() public view {
        assertEq(handler.monotonicityBreaks(), 0, "a session's settled or sequence decreased");
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
            assertEq(state.sequence, s.sequence, "sequence == last settled voucher's");
            assertEq(state.requestCount, s.requests, "request count == last settled voucher's");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_finalizedSessionNeverChanges() public view {
        assertEq(handler.finalizedChanges(), 0, "a finalized session changed");
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
            assertTrue(state.claimEnd != 0, "an opened session is known");
            assertTrue(s.finalized == (state.claimEnd == escrow.FINALIZED()), "finalized == model");
            if (!s.finalized) assertEq(state.claimEnd, s.claimEnd, "claim end == model");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_eachVoucherStatePaidAtMostOnce() public view {
        uint256 settled;
        for (uint256 i; i < handler.sessionCount(); ++i) {
            settled += escrow.getSession(_session(i).id).settled;
        }
        assertEq(handler.ghostPaid(), settled, "total paid to the ledger == sum(settled)");
    }

    /*//////////////////////////////////////////////////////////////
                           BUDGETS & ACCOUNTS
    //////////////////////////////////////////////////////////////*/

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_budgetDepositedEqualsSpentRefundedRemaining() public view {
        uint256 count = handler.budgetTotal();
        uint256[] memory locks = new uint256[](count + 1);
        uint256[] memory spent = new uint256[](count + 1);
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            locks[s.terms.budgetId] += _lock(s);
            spent[s.terms.budgetId] += escrow.getSession(s.id).settled;
        }
        for (uint256 id = 1; id <= count; ++id) {
            EscrowHandler.BudgetGhost memory b = handler.budgetGhost(id);
            uint256 remaining = escrow.getBudget(id).available + locks[id];
            assertEq(spent[id], b.spent, "spent == model");
            assertEq(b.deposited, spent[id] + b.refunded + remaining, "deposited == spent + refunded + remaining");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_accountWithdrawnWithinCredited() public view {
        address[] memory accounts = handler.accounts();
        for (uint256 i; i < accounts.length; ++i) {
            uint256 credited = handler.credited(accounts[i]);
            uint256 withdrawn = handler.withdrawn(accounts[i]);
            assertLe(withdrawn, credited, "withdrawn <= credited");
            assertEq(ledger.balanceOf(accounts[i]), credited - withdrawn, "balance == credited - withdrawn");
        }
    }

    /*//////////////////////////////////////////////////////////////
                           LIVENESS & REGISTRY
    //////////////////////////////////////////////////////////////*/

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_refundAlwaysSucceedsAfterExpiryAndWindow() public view {
        assertEq(handler.livenessFailures(), 0, "finalize/returnExpired failed after expiry + window");
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_unstakeOnlyAfterDelay() public view {
        assertEq(handler.earlyUnstakeWithdrawals(), 0, "unstake withdrawn before its delay");
        for (uint256 i; i < handler.providerCount(); ++i) {
            uint256 id = handler.providerIds(i);
            IProviderRegistry.Provider memory p = registry.getProvider(id);
            if (p.pendingUnstake != 0) {
                assertEq(p.unstakeAvailableAt, handler.lastUnstakeRequest(id) + UNSTAKE_DELAY, "available at");
            }
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: default.invariant.depth = 64
    function invariant_handlerSawNoUnexpectedOutcome() public view {
        assertEq(handler.violations(), 0, handler.firstViolation());
    }
}
