// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAgentMarketplace} from "../../contracts/interfaces/IAgentMarketplace.sol";
import {IComputeEscrow} from "../../contracts/interfaces/IComputeEscrow.sol";
import {ISplitsLedger} from "../../contracts/interfaces/ISplitsLedger.sol";
import {GasCap} from "./utils/GasCap.sol";
import {Suite} from "./utils/Suite.sol";

// Unbounded loops (SECURITY.md 18): every bounded loop, at its bound and with worst-case inputs, fits
// Base's per-transaction gas cap of 2^24 (EIP-7825), counting the transaction's intrinsic and calldata
// gas. Each worst case is built in setUp, a call of its own, so that nothing the measured call touches
// is warm from the setup: every account, provider, budget and leaf is cold and, where it can be, fresh
// (a zero storage slot written for the first time is the most expensive write). Gas metering is paused
// while building (setUp and the test are themselves calls under the same 2^24 cap) and resumed only
// around the measured call. The figures are emitted as `GasMeasured` events (see `-vvvv`).

/// @dev Splits helper: sorts recipients by address, as the ledger requires.
abstract contract SplitBuilder is Suite {
    function _createSplit(ISplitsLedger.SplitRecipient[] memory recipients, address remainder)
        internal
        returns (address)
    {
        for (uint256 i = 1; i < recipients.length; ++i) {
            ISplitsLedger.SplitRecipient memory item = recipients[i];
            uint256 j = i;
            while (j > 0 && recipients[j - 1].account > item.account) {
                recipients[j] = recipients[j - 1];
                --j;
            }
            recipients[j] = item;
        }
        return ledger.createSplit(ISplitsLedger.Split(recipients, remainder));
    }

    /// @dev A split of one recipient `a` with `share` and remainder recipient `b`.
    function _pair(address a, uint256 share, address b) internal returns (address) {
        ISplitsLedger.SplitRecipient[] memory recipients = new ISplitsLedger.SplitRecipient[](1);
        recipients[0] = ISplitsLedger.SplitRecipient(a, uint32(share));
        return _createSplit(recipients, b);
    }
}

/// @notice `ledger.distribute` of the largest split: 64 fresh leaves at the maximum depth of 4, with
/// as many nested splits as those bounds allow (57: each one its own code read, state write and event).
contract LedgerWorstCaseGasTest is SplitBuilder, GasCap {
    uint256 internal constant AMOUNT = 1_000_000_000_000; // 1M USDC: every leaf's part is non-zero
    address internal root;

    function setUp() public {
        _deploySuite();
        vm.pauseGasMetering();
        // 32 depth-1 splits of two fresh leaves, paired into 16 of depth 2, then 8 of depth 3, then the root.
        address[] memory level = new address[](32);
        for (uint256 i; i < 32; ++i) {
            level[i] = _pair(_leaf(2 * i), 500_000, _leaf(2 * i + 1));
        }
        for (uint256 width = 16; width >= 8; width /= 2) {
            for (uint256 i; i < width; ++i) {
                level[i] = _pair(level[2 * i], 500_000, level[2 * i + 1]);
            }
        }
        ISplitsLedger.SplitRecipient[] memory recipients = new ISplitsLedger.SplitRecipient[](7);
        for (uint256 i; i < 7; ++i) {
            recipients[i] = ISplitsLedger.SplitRecipient(level[i], 125_000);
        }
        root = _createSplit(recipients, level[7]);
        usdc.mint(address(this), AMOUNT);
        usdc.approve(address(ledger), AMOUNT);
        ledger.pay(root, AMOUNT);
        vm.resumeGasMetering();
    }

    function _leaf(uint256 i) internal pure returns (address) {
        return address(uint160(0x1EAF0000 + i));
    }

    function test_distribute_WorstCaseSplitFitsTheCap() public {
        vm.pauseGasMetering();
        assertEq(ledger.balanceOf(root), AMOUNT, "the root holds the payment undistributed");
        _assertUnderCap(
            "ledger.distribute: 64 fresh leaves, depth 4, 57 splits",
            address(ledger),
            abi.encodeCall(ledger.distribute, (root))
        );
        uint256 leaves;
        for (uint256 i; i < 64; ++i) {
            uint256 credit = ledger.balanceOf(_leaf(i));
            assertEq(credit, AMOUNT / 64, "every leaf gets 1/64");
            leaves += credit;
        }
        assertEq(leaves, AMOUNT, "the leaves got everything (no dust at these shares)");
        assertEq(ledger.balanceOf(root), 0, "the root's balance is distributed");
    }
}

/// @notice `settle`, `closeCooperative` and `openSessions` of MAX_BATCH sessions, each for a different
/// provider (its own payout, never credited before, and its own metrics), budget and agent.
contract EscrowWorstCaseGasTest is Suite, GasCap {
    uint256 internal constant BATCH = 100; // ComputeEscrow.MAX_BATCH, asserted in setUp
    uint256 internal constant MAX_SPEND = 5_000_000;

    IComputeEscrow.SessionTerms[] internal _opened;
    IComputeEscrow.SessionTerms[] internal _toOpen;

    function setUp() public {
        _deploySuite();
        vm.pauseGasMetering();
        assertEq(escrow.MAX_BATCH(), BATCH, "MAX_BATCH");
        uint256 expiry = block.timestamp + 30 days;
        for (uint256 i; i < BATCH; ++i) {
            _registerProvider(_providerOwner(i), vm.addr(_signerKey(i)), _payout(i), MIN_STAKE);
        }
        for (uint256 j; j < 2 * BATCH; ++j) {
            _createBudget(address(uint160(0xC0000000 + j)), 2 * MAX_SPEND, MAX_SPEND, expiry, vm.addr(_agentKey(j)));
        }
        for (uint256 i; i < BATCH; ++i) {
            IComputeEscrow.SessionTerms memory terms =
                _terms(vm.addr(_agentKey(i)), i + 1, i + 1, MAX_SPEND, block.timestamp + 1 days, i);
            vm.prank(terms.agent);
            escrow.openSession(terms, IComputeEscrow.CompactSignature(0, 0));
            _opened.push(terms);
            _toOpen.push(
                _terms(vm.addr(_agentKey(BATCH + i)), BATCH + i + 1, i + 1, MAX_SPEND, block.timestamp + 1 days, i)
            );
        }
        vm.resumeGasMetering();
    }

    function _providerOwner(uint256 i) internal pure returns (address) {
        return address(uint160(0x0E000000 + i));
    }

    function _payout(uint256 i) internal pure returns (address) {
        return address(uint160(0xFA000000 + i));
    }

    function _signerKey(uint256 i) internal pure returns (uint256) {
        return 0x5160000 + i;
    }

    function _agentKey(uint256 j) internal pure returns (uint256) {
        return 0xA6000000 + j;
    }

    /// @dev One signed voucher per opened session, every metric moving (so every metric slot is written).
    function _batch(bool isFinal) internal returns (IComputeEscrow.SignedVoucher[] memory batch) {
        batch = new IComputeEscrow.SignedVoucher[](BATCH);
        for (uint256 i; i < BATCH; ++i) {
            IComputeEscrow.Voucher memory voucher = _voucher(_opened[i], 1, 4_000_000 + i, 3, isFinal);
            batch[i] = _signVoucher(voucher, _agentKey(i), _signerKey(i));
        }
    }

    function _assertPaid() internal view {
        uint256 fees;
        for (uint256 i; i < BATCH; ++i) {
            uint256 cost = 4_000_000 + i;
            uint256 fee = cost * FEE_BPS / 10_000;
            assertEq(ledger.balanceOf(_payout(i)), cost - fee, "each provider's payout credited");
            assertEq(registry.getMetrics(i + 1).requests, 3, "each provider's metrics recorded");
            fees += fee;
        }
        assertEq(ledger.balanceOf(treasury), fees, "the fees credited once");
    }

    function test_settle_WorstCaseBatchFitsTheCap() public {
        vm.pauseGasMetering();
        IComputeEscrow.SignedVoucher[] memory batch = _batch(false);
        _assertUnderCap(
            "escrow.settle: 100 vouchers, 100 providers with fresh payouts",
            address(escrow),
            abi.encodeCall(escrow.settle, (batch))
        );
        _assertPaid();
    }

    function test_closeCooperative_WorstCaseBatchFitsTheCap() public {
        vm.pauseGasMetering();
        IComputeEscrow.SignedVoucher[] memory batch = _batch(true);
        _assertUnderCap(
            "escrow.closeCooperative: 100 vouchers, 100 providers and budgets, fresh payouts",
            address(escrow),
            abi.encodeCall(escrow.closeCooperative, (batch))
        );
        _assertPaid();
        for (uint256 i; i < BATCH; ++i) {
            assertEq(escrow.getSession(escrow.sessionIdOf(_opened[i])).claimEnd, escrow.FINALIZED(), "finalized");
            assertEq(escrow.getBudget(i + 1).available, 2 * MAX_SPEND - 4_000_000 - i, "the rest returned");
        }
    }

    function test_openSessions_WorstCaseBatchFitsTheCap() public {
        vm.pauseGasMetering();
        IComputeEscrow.OpenRequest[] memory requests = new IComputeEscrow.OpenRequest[](BATCH);
        for (uint256 i; i < BATCH; ++i) {
            IComputeEscrow.SessionTerms memory terms = _toOpen[i];
            requests[i] = IComputeEscrow.OpenRequest(terms, _sign(_agentKey(BATCH + i), escrow.openDigest(terms)));
        }
        _assertUnderCap(
            "escrow.openSessions: 100 sessions, 100 budgets (distinct creators) and providers",
            address(escrow),
            abi.encodeCall(escrow.openSessions, (requests))
        );
        for (uint256 i; i < BATCH; ++i) {
            IComputeEscrow.SessionTerms memory terms = _toOpen[i];
            uint256 claimEnd = escrow.getSession(escrow.sessionIdOf(terms)).claimEnd;
            assertEq(claimEnd, terms.deadline + CHALLENGE_WINDOW, "opened");
            assertEq(escrow.getBudget(BATCH + i + 1).available, MAX_SPEND, "locked");
        }
    }
}

/// @notice `distribute` (and `updateTerms`, which runs it) of a full payment chain: MAX_PENDING payments,
/// each from a payer whose referrer is its own 64-leaf split never credited before, each with a partial
/// call, plus unattributed USDC at the payment address, through a flow using every component (16 fixed
/// amounts and 16 shares) with distinct fresh recipients: ledger accounts, or escrow budgets (the
/// costlier kind: each is an escrow call and a ledger transfer).
contract MarketplaceWorstCaseGasTest is SplitBuilder, GasCap {
    uint256 internal constant PRICE = 1_000;
    uint256 internal constant PENDING = 256; // AgentMarketplace.MAX_PENDING, asserted in setUp
    uint256 internal constant REFERRAL_SHARE = 100_000;
    uint256 internal constant SCALE = 1_000_000;
    uint256 internal constant UNATTRIBUTED = 2 * PRICE + 333;
    address internal constant OWNER_REFERRER = address(0x0E7E0000);

    uint256 internal accountsAgent;
    uint256 internal budgetsAgent;
    IAgentMarketplace.PendingPayment[] internal _payments;
    address[] internal _referrers;

    function setUp() public {
        _deploySuite();
        vm.pauseGasMetering();
        assertEq(marketplace.MAX_PENDING(), PENDING, "MAX_PENDING");
        assertEq(marketplace.MAX_COMPONENTS(), 16, "MAX_COMPONENTS");
        // A shared 63-leaf split T; each referrer is {a fresh leaf of its own, remainder T}: 64 leaves.
        address shared = _pair(_wideSplit(0x1EA00000, 30), 500_000, _wideSplit(0x1EB00000, 31));
        for (uint256 k; k < 33; ++k) {
            uint256 budgetId = _createBudget(
                address(uint160(0xC1000 + k)), 1_000_000, 1_000_000, block.timestamp + 30 days, address(1)
            );
            assertEq(budgetId, k + 1, "budget ids");
        }
        IAgentMarketplace.AgentMetadata memory metadata = IAgentMarketplace.AgentMetadata("Agent", "", "https://a");
        accountsAgent = marketplace.list(metadata, PRICE, _flow(false), OWNER_REFERRER);
        budgetsAgent = marketplace.list(metadata, PRICE, _flow(true), address(0));
        for (uint256 i; i < PENDING; ++i) {
            address payer = address(uint160(0xBA000000 + i));
            address referrer = _pair(address(uint160(0x1EC00000 + i)), 10_000, shared);
            uint256 amount = PRICE + 1 + i;
            usdc.mint(payer, 2 * amount);
            vm.startPrank(payer);
            usdc.approve(address(ledger), 2 * amount);
            ledger.pay(payer, 2 * amount);
            ledger.approve(address(marketplace), type(uint256).max);
            marketplace.payFromBalance(accountsAgent, amount, referrer);
            marketplace.payFromBalance(budgetsAgent, amount, referrer);
            vm.stopPrank();
            _payments.push(IAgentMarketplace.PendingPayment(payer, referrer, amount));
            _referrers.push(referrer);
        }
        usdc.mint(marketplace.paymentAddressOf(accountsAgent), UNATTRIBUTED);
        usdc.mint(marketplace.paymentAddressOf(budgetsAgent), UNATTRIBUTED);
        vm.resumeGasMetering();
    }

    /// @dev A flat split of `count` fresh recipients from `base` plus a fresh remainder recipient.
    function _wideSplit(uint256 base, uint256 count) internal returns (address) {
        ISplitsLedger.SplitRecipient[] memory recipients = new ISplitsLedger.SplitRecipient[](count);
        for (uint256 i; i < count; ++i) {
            recipients[i] = ISplitsLedger.SplitRecipient(address(uint160(base + i + 1)), 10_000);
        }
        return _createSplit(recipients, address(uint160(base)));
    }

    /// @dev Output `k` of the worst-case flow: a fresh account, or budget k + 1 (created in setUp).
    function _recipient(bool budgets, uint256 k) internal pure returns (IAgentMarketplace.Recipient memory) {
        if (!budgets) {
            return IAgentMarketplace.Recipient(
                IAgentMarketplace.RecipientKind.Account, address(uint160(0xF1000 + k)), 0
            );
        }
        return IAgentMarketplace.Recipient(IAgentMarketplace.RecipientKind.Budget, address(0), uint64(k + 1));
    }

    /// @dev 16 fixed amounts, 16 shares, both referral shares and a remainder: 33 distinct recipients.
    function _flow(bool budgets) internal pure returns (IAgentMarketplace.FlowOfFunds memory flow) {
        flow.fixedAmounts = new IAgentMarketplace.FixedAmount[](16);
        flow.shares = new IAgentMarketplace.Share[](16);
        for (uint256 k; k < 16; ++k) {
            flow.fixedAmounts[k] = IAgentMarketplace.FixedAmount(_recipient(budgets, k), 1);
            flow.shares[k] = IAgentMarketplace.Share(_recipient(budgets, 16 + k), uint32(SCALE / 16));
        }
        flow.payerReferrerShare = uint32(REFERRAL_SHARE);
        flow.payeeReferrerShare = uint32(REFERRAL_SHARE);
        flow.remainder = _recipient(budgets, 32);
    }

    /// @dev The payer's referrer's reward for a payment of PRICE + p, 0 < p < PRICE: a tenth of the full
    /// call, and of the partial call as far as the 16 fixed units it pays first leave room for.
    function _referrerReward(uint256 p) internal pure returns (uint256) {
        uint256 left = p > 16 ? p - 16 : 0;
        uint256 partialReward = p * REFERRAL_SHARE / SCALE;
        return PRICE * REFERRAL_SHARE / SCALE + (partialReward < left ? partialReward : left);
    }

    function _pendingTotal() internal view returns (uint256 total) {
        for (uint256 i; i < PENDING; ++i) {
            total += _payments[i].amount;
        }
    }

    /// @dev Checks the batch was distributed whole: nothing pending, nothing left, every referrer paid.
    function _assertDistributed(uint256 agentId, uint256 marketplaceBefore) internal view {
        (,, uint256 pending) = marketplace.paymentChain(agentId);
        assertEq(pending, 0, "nothing pending");
        assertEq(usdc.balanceOf(marketplace.paymentAddressOf(agentId)), 0, "the payment address emptied");
        assertEq(marketplaceBefore - ledger.balanceOf(address(marketplace)), _pendingTotal(), "pending paid out");
        for (uint256 i; i < PENDING; ++i) {
            assertEq(ledger.balanceOf(_referrers[i]), _referrerReward(1 + i), "each referrer credited its reward");
        }
    }

    function test_distribute_WorstCaseAccountFlowFitsTheCap() public {
        vm.pauseGasMetering();
        uint256 before = ledger.balanceOf(address(marketplace));
        _assertUnderCap(
            "marketplace.distribute: 256 payments, 256 split referrers, 33 fresh accounts",
            address(marketplace),
            abi.encodeCall(marketplace.distribute, (accountsAgent, _flow(false), _payments))
        );
        _assertDistributed(accountsAgent, before);
        assertTrue(ledger.balanceOf(OWNER_REFERRER) != 0, "the payee's referrer paid");
    }

    function test_distribute_WorstCaseBudgetFlowFitsTheCap() public {
        vm.pauseGasMetering();
        uint256 before = ledger.balanceOf(address(marketplace));
        uint256 escrowBefore = ledger.balanceOf(address(escrow));
        _assertUnderCap(
            "marketplace.distribute: 256 payments, 256 split referrers, 33 budgets",
            address(marketplace),
            abi.encodeCall(marketplace.distribute, (budgetsAgent, _flow(true), _payments))
        );
        _assertDistributed(budgetsAgent, before);
        for (uint256 k = 1; k <= 33; ++k) {
            assertTrue(escrow.getBudget(k).available > 1_000_000, "every budget topped up");
        }
        assertTrue(ledger.balanceOf(address(escrow)) > escrowBefore, "the escrow holds the top-ups");
    }

    function test_updateTerms_WorstCaseFitsTheCap() public {
        vm.pauseGasMetering();
        uint256 before = ledger.balanceOf(address(marketplace));
        IAgentMarketplace.FlowOfFunds memory current = _flow(true);
        _assertUnderCap(
            "marketplace.updateTerms: distributes 256 payments, 256 split referrers, 33 budgets",
            address(marketplace),
            abi.encodeCall(marketplace.updateTerms, (budgetsAgent, 2 * PRICE, current, current, _payments))
        );
        _assertDistributed(budgetsAgent, before);
        assertEq(marketplace.getAgent(budgetsAgent).pricePerCall, 2 * PRICE, "new price");
    }
}
