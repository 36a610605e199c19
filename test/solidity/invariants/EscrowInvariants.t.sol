// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {Suite} from "../utils/Suite.sol";
import {EscrowHandler} from "./EscrowHandler.sol";

/// @notice Stateful invariants of the escrow, ledger and registry (SECURITY.md, "Contracts: invariants"),
/// fuzzed through EscrowHandler only: budgets, sessions, vouchers, signer rotation, double-sign slashing
/// (valid and forged), fee changes, stakes, and USDC's pause and blacklist.
/// forge-config: default.invariant.runs = 48
/// forge-config: default.invariant.depth = 96
contract EscrowInvariantsTest is Suite {
    EscrowHandler internal handler;

    function setUp() public {
        _deploySuite();
        vm.pauseGasMetering();
        // Deployed from its artifact: embedding its creation code would make this test too big to deploy.
        // After editing the handler, rebuild it (`hardhat build`, or run the tests without file arguments).
        handler = EscrowHandler(
            _deploy(
                "test/solidity/invariants/EscrowHandler.sol:EscrowHandler",
                abi.encode(usdc, ledger, registry, escrow, admin)
            )
        );
        vm.label(address(handler), "EscrowHandler");
        handler.bootstrap();
        vm.resumeGasMetering();
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
        bytes4[] memory selectors = new bytes4[](25);
        selectors[0] = EscrowHandler.createBudget.selector;
        selectors[1] = EscrowHandler.topUp.selector;
        selectors[2] = EscrowHandler.refund.selector;
        selectors[3] = EscrowHandler.returnExpired.selector;
        selectors[4] = EscrowHandler.setBudgetTerms.selector;
        selectors[5] = EscrowHandler.openSession.selector;
        selectors[6] = EscrowHandler.settle.selector;
        selectors[7] = EscrowHandler.closeCooperative.selector;
        selectors[8] = EscrowHandler.requestClose.selector;
        selectors[9] = EscrowHandler.finalize.selector;
        selectors[10] = EscrowHandler.closeByProvider.selector;
        selectors[11] = EscrowHandler.drainAfterExpiry.selector;
        selectors[12] = EscrowHandler.warp.selector;
        selectors[13] = EscrowHandler.withdraw.selector;
        selectors[14] = EscrowHandler.distributeSplit.selector;
        selectors[15] = EscrowHandler.register.selector;
        selectors[16] = EscrowHandler.addStake.selector;
        selectors[17] = EscrowHandler.requestUnstake.selector;
        selectors[18] = EscrowHandler.withdrawUnstaked.selector;
        selectors[19] = EscrowHandler.rotateSigner.selector;
        selectors[20] = EscrowHandler.slashDoubleSign.selector;
        selectors[21] = EscrowHandler.setFee.selector;
        selectors[22] = EscrowHandler.setTokenPaused.selector;
        selectors[23] = EscrowHandler.setBlacklisted.selector;
        // Settling is what most of the properties are about: give it a second entry.
        selectors[24] = EscrowHandler.settle.selector;
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
                           CUSTODY (EXACT)
    //////////////////////////////////////////////////////////////*/

    /// @notice The escrow's ledger balance is exactly its budgets' unallocated funds plus what open
    /// sessions still lock (maxSpend − settled); it holds no tokens of its own.
    function invariant_escrowLedgerBalanceEqualsBudgetsPlusLocks() public view {
        uint256 total;
        for (uint256 id = 1; id <= handler.budgetTotal(); ++id) {
            total += escrow.getBudget(id).available;
        }
        for (uint256 i; i < handler.sessionCount(); ++i) {
            total += _lock(_session(i));
        }
        assertEq(ledger.balanceOf(address(escrow)), total, "escrow's ledger balance == sum(available) + sum(locks)");
        assertEq(usdc.balanceOf(address(escrow)), 0, "the escrow holds no tokens");
    }

    /// @notice The ledger holds exactly every balance in it (accounts, the split, the custodians) plus
    /// the split's rounding dust, which is exactly what was deposited minus what was withdrawn.
    function invariant_ledgerHoldsExactlyEveryBalance() public view {
        address[] memory accounts = handler.accounts();
        uint256 total = ledger.balanceOf(address(escrow)) + ledger.balanceOf(address(registry))
            + ledger.balanceOf(handler.split());
        for (uint256 i; i < accounts.length; ++i) {
            total += ledger.balanceOf(accounts[i]);
        }
        (, uint256 dust) = ledger.splitTotals(handler.split());
        assertEq(usdc.balanceOf(address(ledger)), total + dust, "ledger USDC == sum(balances) + split dust");
        assertEq(
            usdc.balanceOf(address(ledger)),
            handler.ghostLedgerIn() - handler.ghostLedgerOut(),
            "ledger USDC == deposited - withdrawn"
        );
    }

    /// @notice The registry's ledger balance is exactly its stakes plus pending unstakes.
    function invariant_registryLedgerBalanceEqualsStakes() public view {
        uint256 total;
        for (uint256 i; i < handler.providerCount(); ++i) {
            IProviderRegistry.Provider memory p = registry.getProvider(handler.providerIds(i));
            total += uint256(p.stake) + p.pendingUnstake;
        }
        assertEq(ledger.balanceOf(address(registry)), total, "registry's ledger balance == sum(stake + pending)");
        assertEq(
            total,
            handler.ghostStakeIn() - handler.ghostStakeOut() - handler.ghostSlashed(),
            "stakes == staked - withdrawn - slashed"
        );
        assertEq(usdc.balanceOf(address(registry)), 0, "the registry holds no tokens");
    }

    /*//////////////////////////////////////////////////////////////
                              PER SESSION
    //////////////////////////////////////////////////////////////*/

    function invariant_sessionSettledWithinLock() public view {
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
            assertLe(state.settled, s.terms.maxSpend, "settled <= maxSpend");
            assertEq(state.settled, s.settled, "settled == model");
        }
    }

    function invariant_sessionSettledAndSequenceNeverDecrease() public view {
        assertEq(handler.monotonicityBreaks(), 0, "a session's settled or sequence decreased");
        for (uint256 i; i < handler.sessionCount(); ++i) {
            EscrowHandler.SessionGhost memory s = _session(i);
            IComputeEscrow.SessionState memory state = escrow.getSession(s.id);
            assertEq(state.sequence, s.sequence, "sequence == last settled voucher's");
            assertEq(state.requestCount, s.requests, "request count == last settled voucher's");
        }
    }

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

    function invariant_eachVoucherStatePaidAtMostOnce() public view {
        uint256 settled;
        for (uint256 i; i < handler.sessionCount(); ++i) {
            settled += escrow.getSession(_session(i).id).settled;
        }
        assertEq(handler.ghostPaid(), settled, "total paid out of locks == sum(settled)");
    }

    /// @notice Each session pays the fee it opened with, whatever the admin sets later (SECURITY.md 23).
    function invariant_sessionPaysTheFeeItOpenedWith() public view {
        assertEq(handler.feeMismatches(), 0, "a settlement paid a fee other than its session's");
        for (uint256 i; i < handler.sessionCount(); ++i) {
            assertLe(_session(i).terms.feeBps, escrow.MAX_FEE_BPS(), "a session's fee is within the maximum");
        }
    }

    /*//////////////////////////////////////////////////////////////
                      BUDGETS, ACCOUNTS AND SPLITS
    //////////////////////////////////////////////////////////////*/

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

    function invariant_accountWithdrawnWithinCredited() public view {
        address[] memory accounts = handler.accounts();
        for (uint256 i; i < accounts.length; ++i) {
            uint256 credited = handler.credited(accounts[i]);
            uint256 withdrawn = handler.withdrawn(accounts[i]);
            assertLe(withdrawn, credited, "withdrawn <= credited");
            assertEq(ledger.balanceOf(accounts[i]), credited - withdrawn, "balance == credited - withdrawn");
        }
    }

    /// @notice The split (a provider's payout) holds what it was paid and has not distributed; what it
    /// distributed is exactly its entries' credits plus the dust it holds back.
    function invariant_splitCreditedPlusDustEqualsDistributed() public view {
        address split = handler.split();
        (uint256 distributed, uint256 dust) = ledger.splitTotals(split);
        assertEq(distributed, handler.ghostSplitDistributed(), "split distributed == model");
        assertEq(
            ledger.balanceOf(split),
            handler.directCredited(split) - distributed,
            "split balance == paid to it - distributed"
        );
        uint256 credits;
        for (uint256 i; i < 3; ++i) {
            credits += distributed * handler.splitShares(i) / 1_000_000;
        }
        assertEq(credits + dust, distributed, "credited + dust == distributed");
        assertLt(dust, 3, "dust below the entry count");
    }

    /*//////////////////////////////////////////////////////////////
                      LIVENESS, REGISTRY, SLASHING
    //////////////////////////////////////////////////////////////*/

    /// @notice After expiry plus the window, finalize and returnExpired always succeed, also while the
    /// token is paused and blacklists the creator, the escrow and the ledger.
    function invariant_refundAlwaysSucceedsAfterExpiryAndWindow() public view {
        assertEq(handler.livenessFailures(), 0, "finalize/returnExpired failed after expiry + window");
    }

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

    /// @notice Only a valid double-sign proof slashes; a slashed provider keeps nothing and stays inactive.
    function invariant_slashOnlyOnValidProof() public view {
        assertEq(handler.forgedSlashes(), 0, "a forged proof slashed");
        for (uint256 i; i < handler.providerCount(); ++i) {
            uint256 id = handler.providerIds(i);
            IProviderRegistry.Provider memory p = registry.getProvider(id);
            assertTrue(p.slashed == handler.slashedInModel(id), "slashed == model");
            if (p.slashed) {
                assertEq(uint256(p.stake) + p.pendingUnstake, 0, "a slashed provider keeps no stake");
                assertTrue(!p.active, "a slashed provider is inactive");
            }
        }
    }

    function invariant_handlerSawNoUnexpectedOutcome() public view {
        assertEq(handler.violations(), 0, handler.firstViolation());
    }
}
