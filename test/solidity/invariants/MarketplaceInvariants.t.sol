// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAgentMarketplace} from "../../../contracts/interfaces/IAgentMarketplace.sol";
import {GasCap} from "../utils/GasCap.sol";
import {Suite} from "../utils/Suite.sol";
import {MarketplaceHandler} from "./MarketplaceHandler.sol";

/// @notice Stateful invariants of the AgentMarketplace (SECURITY.md, "Contracts: invariants": Marketplace
/// and Splits; attacks 14, 17, 18, 24), fuzzed through MarketplaceHandler only.
/// forge-config: default.invariant.runs = 32
/// forge-config: default.invariant.depth = 64
contract MarketplaceInvariantsTest is Suite, GasCap {
    uint256 internal constant SCALE = 1_000_000;
    /// @dev Execution gas the distributability check may spend in one invariant call: the agents with
    /// the most pending payments are checked first, so the ones it skips hold smaller batches.
    uint256 internal constant CHECK_BUDGET = 12_000_000;

    MarketplaceHandler internal handler;

    function setUp() public {
        _deploySuite();
        vm.pauseGasMetering();
        // Deployed from its artifact: embedding its creation code would make this test too big to deploy.
        // After editing the handler, rebuild it (`hardhat build`, or run the tests without file arguments).
        handler = MarketplaceHandler(
            _deploy(
                "test/solidity/invariants/MarketplaceHandler.sol:MarketplaceHandler",
                abi.encode(usdc, ledger, registry, escrow, marketplace, admin)
            )
        );
        vm.label(address(handler), "MarketplaceHandler");
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

    /// @notice The handler's actions; listing and paying get a second entry so that runs reach them early.
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](21);
        selectors[0] = MarketplaceHandler.list.selector;
        selectors[1] = MarketplaceHandler.prefund.selector;
        selectors[2] = MarketplaceHandler.updateTerms.selector;
        selectors[3] = MarketplaceHandler.transferAgent.selector;
        selectors[4] = MarketplaceHandler.setStatus.selector;
        selectors[5] = MarketplaceHandler.payFromBalance.selector;
        selectors[6] = MarketplaceHandler.payWithAuthorization.selector;
        selectors[7] = MarketplaceHandler.payBurst.selector;
        selectors[8] = MarketplaceHandler.fillChain.selector;
        selectors[9] = MarketplaceHandler.plainTransfer.selector;
        selectors[10] = MarketplaceHandler.setReferrer.selector;
        selectors[11] = MarketplaceHandler.distribute.selector;
        selectors[12] = MarketplaceHandler.distributeSplit.selector;
        selectors[13] = MarketplaceHandler.withdraw.selector;
        selectors[14] = MarketplaceHandler.setTokenPaused.selector;
        selectors[15] = MarketplaceHandler.setBlacklisted.selector;
        selectors[16] = MarketplaceHandler.warp.selector;
        selectors[17] = MarketplaceHandler.list.selector;
        selectors[18] = MarketplaceHandler.payFromBalance.selector;
        selectors[19] = MarketplaceHandler.payWithAuthorization.selector;
        selectors[20] = MarketplaceHandler.distribute.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    /*//////////////////////////////////////////////////////////////
                               INVARIANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice USDC held at payment addresses plus the marketplace's ledger balance is exactly what is
    /// pending (payments through the marketplace) plus what is unattributed (plain transfers); each
    /// agent's chain counts exactly its pending payments; the marketplace holds no tokens itself.
    function invariant_paymentAddressesAndMarketplaceHoldExactlyPendingPlusUnattributed() public view {
        uint256 pending;
        for (uint256 i; i < handler.agentCount(); ++i) {
            IAgentMarketplace.PendingPayment[] memory payments = handler.pendingOf(i);
            for (uint256 k; k < payments.length; ++k) {
                pending += payments[k].amount;
            }
            (,, uint256 count) = marketplace.paymentChain(handler.agentGhost(i).id);
            assertEq(count, payments.length, "chain's pending count == model");
        }
        address[] memory addresses = handler.paymentAddresses();
        uint256 held;
        uint256 unattributed;
        for (uint256 i; i < addresses.length; ++i) {
            assertEq(usdc.balanceOf(addresses[i]), handler.unattributedAt(addresses[i]), "payment address == model");
            held += usdc.balanceOf(addresses[i]);
            unattributed += handler.unattributedAt(addresses[i]);
        }
        assertEq(
            held + ledger.balanceOf(address(marketplace)),
            pending + unattributed,
            "USDC at payment addresses + marketplace's ledger balance == pending + unattributed"
        );
        assertEq(ledger.balanceOf(address(marketplace)), pending, "the marketplace's ledger balance == pending");
        assertEq(usdc.balanceOf(address(marketplace)), 0, "the marketplace holds no tokens");
    }

    /// @notice Every agent's pending payments (with whatever its payment address holds) can be distributed
    /// right now, by anyone, in one transaction under 2^24 gas: tried on a snapshot, then rolled back.
    function invariant_everyPendingPaymentDistributableUnderCap() public {
        vm.pauseGasMetering();
        uint256 snapshot = vm.snapshotState();
        uint256 count = handler.agentCount();
        bool[] memory done = new bool[](count);
        uint256 spent;
        for (uint256 n; n < count && spent < CHECK_BUDGET; ++n) {
            uint256 index = _mostPending(done);
            done[index] = true;
            (uint256 agentId, IAgentMarketplace.FlowOfFunds memory flow, IAgentMarketplace.PendingPayment[] memory p) =
                handler.distribution(index);
            address paymentAddress = marketplace.paymentAddressOf(agentId);
            bool movable = usdc.balanceOf(paymentAddress) != 0 && !usdc.paused()
                && !usdc.isBlacklisted(paymentAddress) && !usdc.isBlacklisted(address(ledger));
            if (p.length == 0 && !movable) continue;
            bytes memory data = abi.encodeCall(marketplace.distribute, (agentId, flow, p));
            vm.resumeGasMetering();
            (bool ok,, uint256 used) = _measuredCall(address(marketplace), data);
            vm.pauseGasMetering();
            assertTrue(ok, "a pending batch could not be distributed");
            assertLt(_transactionGas(data, used), TRANSACTION_GAS_CAP, "a pending batch needs more than 2^24 gas");
            spent += used;
        }
        vm.revertToState(snapshot);
        for (uint256 i; i < count; ++i) {
            (,, uint256 pending) = marketplace.paymentChain(handler.agentGhost(i).id);
            assertEq(pending, handler.pendingOf(i).length, "the check was rolled back");
        }
        assertLt(handler.maxDistributionGas(), TRANSACTION_GAS_CAP, "a distribution exceeded 2^24 gas");
        vm.resumeGasMetering();
    }

    /// @notice A referrer, once recorded, never changes (and none is recorded but by the rules).
    function invariant_referrersNeverChange() public view {
        address[] memory accounts = handler.accounts();
        for (uint256 i; i < accounts.length; ++i) {
            assertEq(marketplace.referrerOf(accounts[i]), handler.ghostReferrer(accounts[i]), "referrer == model");
        }
    }

    /// @notice Each split distributed exactly what it was paid directly and its parent passed through it,
    /// and credited + dust == distributed (its credits to a nested split counted whether that one passed
    /// them through or, blacklisted, kept them); each leaf holds exactly its lifetime share.
    function invariant_splitsCreditedPlusDustEqualsDistributed() public view {
        address[3] memory splits = [handler.splits(0), handler.splits(1), handler.splits(2)];
        uint256[3] memory distributed;
        uint256[3] memory dust;
        for (uint256 i; i < 3; ++i) {
            (distributed[i], dust[i]) = ledger.splitTotals(splits[i]);
        }
        // C is nobody's recipient; B is C's (60%), A is B's (50%). A nested split distributes what it was
        // paid itself plus what its parent passed through it (all of its part, unless it was blacklisted).
        for (uint256 i; i < 3; ++i) {
            assertEq(
                distributed[i],
                handler.ownDistributed(splits[i]) + handler.passedThrough(splits[i]),
                "split distributed == own + passed through"
            );
        }
        assertLe(handler.passedThrough(splits[1]), distributed[2] * 600_000 / SCALE, "B got at most its part");
        assertLe(handler.passedThrough(splits[0]), distributed[1] * 500_000 / SCALE, "A got at most its part");
        // Leaves (A: L1 20%, L2 30%, L3 rest; B: L4 25%, L7 rest; C: L5 10%, L6 rest) hold their lifetime share.
        uint256[7] memory expected = [
            distributed[0] * 200_000 / SCALE,
            distributed[0] * 300_000 / SCALE,
            distributed[0] * 500_000 / SCALE,
            distributed[1] * 250_000 / SCALE,
            distributed[2] * 100_000 / SCALE,
            distributed[2] * 300_000 / SCALE,
            distributed[1] * 250_000 / SCALE
        ];
        for (uint256 i; i < 7; ++i) {
            assertEq(ledger.balanceOf(handler.leaves(i)), expected[i], "leaf == floor(distributed x share)");
        }
        uint256 passedToA = distributed[1] * 500_000 / SCALE;
        uint256 passedToB = distributed[2] * 600_000 / SCALE;
        assertEq(expected[0] + expected[1] + expected[2] + dust[0], distributed[0], "A: credited + dust");
        assertEq(expected[3] + passedToA + expected[6] + dust[1], distributed[1], "B: credited + dust");
        assertEq(passedToB + expected[4] + expected[5] + dust[2], distributed[2], "C: credited + dust");
    }

    /// @notice The ledger holds exactly every balance (accounts, splits, custodians) plus the splits'
    /// dust: what was deposited minus what was withdrawn. The escrow's balance is exactly its budgets'.
    function invariant_ledgerHoldsExactlyEveryBalance() public view {
        address[] memory accounts = handler.accounts();
        uint256 total = ledger.balanceOf(address(escrow)) + ledger.balanceOf(address(marketplace))
            + ledger.balanceOf(address(registry));
        for (uint256 i; i < accounts.length; ++i) {
            total += ledger.balanceOf(accounts[i]);
        }
        for (uint256 i; i < 3; ++i) {
            (, uint256 dust) = ledger.splitTotals(handler.splits(i));
            total += ledger.balanceOf(handler.splits(i)) + dust;
        }
        assertEq(usdc.balanceOf(address(ledger)), total, "ledger USDC == sum(balances) + dust");
        assertEq(
            usdc.balanceOf(address(ledger)),
            handler.ghostLedgerIn() - handler.ghostLedgerOut(),
            "ledger USDC == deposited - withdrawn"
        );
        assertEq(
            ledger.balanceOf(address(escrow)),
            escrow.getBudget(1).available + escrow.getBudget(2).available,
            "escrow's ledger balance == its budgets"
        );
    }

    function invariant_handlerSawNoUnexpectedOutcome() public view {
        assertEq(handler.violations(), 0, handler.firstViolation());
    }

    /// @dev The not-yet-checked agent with the most pending payments.
    function _mostPending(bool[] memory done) internal view returns (uint256 best) {
        uint256 most;
        bool found;
        for (uint256 i; i < done.length; ++i) {
            if (done[i]) continue;
            uint256 length = handler.pendingOf(i).length;
            if (!found || length > most) (best, most, found) = (i, length, true);
        }
    }
}
