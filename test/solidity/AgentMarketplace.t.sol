// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAgentMarketplace} from "../../contracts/interfaces/IAgentMarketplace.sol";
import {PaymentChainLib} from "../../contracts/libraries/PaymentChainLib.sol";
import {Suite} from "./utils/Suite.sol";

/// @notice Fuzz tests of the agent marketplace: split conservation (Σ outputs == input), conservation
/// of a whole distribution, and the payment chain's monotonicity and replay safety (SECURITY.md 17).
/// The worst-case batch against Base's per-transaction gas cap is in WorstCaseGas.t.sol; the stateful
/// invariants are in invariants/MarketplaceInvariants.t.sol.
/// forge-config: default.fuzz.runs = 128
contract AgentMarketplaceFuzzTest is Suite {
    uint256 internal constant SCALE = 1_000_000;

    address internal owner = address(0xA11CE);
    address internal ownerReferrer = address(0xE7E);

    function setUp() public {
        _deploySuite();
    }

    function _rand(uint256 seed, string memory tag, uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, tag, i)));
    }

    function _account(address who) internal pure returns (IAgentMarketplace.Recipient memory) {
        return IAgentMarketplace.Recipient(IAgentMarketplace.RecipientKind.Account, who, 0);
    }

    /// @dev A valid random flow for `price`: up to 16 fixed amounts and 16 shares to accounts in
    /// 0x1000.. (some repeated), referral shares up to 20% each, remainder the treasury or an account.
    function _randomFlow(uint256 seed, uint256 price)
        internal
        pure
        returns (IAgentMarketplace.FlowOfFunds memory flow)
    {
        flow.payerReferrerShare = uint32(bound(_rand(seed, "payer", 0), 0, 200_000));
        flow.payeeReferrerShare = uint32(bound(_rand(seed, "payee", 0), 0, 200_000));
        uint256 available =
            price - price * flow.payerReferrerShare / SCALE - price * flow.payeeReferrerShare / SCALE;
        uint256 fixedCount = bound(_rand(seed, "fixed", 0), 0, 16);
        if (fixedCount > available) fixedCount = available;
        flow.fixedAmounts = new IAgentMarketplace.FixedAmount[](fixedCount);
        for (uint256 i; i < fixedCount; ++i) {
            uint256 amount = bound(_rand(seed, "amount", i), 1, available / (fixedCount - i));
            available -= amount;
            flow.fixedAmounts[i] = IAgentMarketplace.FixedAmount(_account(_recipient(seed, i)), uint64(amount));
        }
        uint256 shareCount = bound(_rand(seed, "shares", 0), 0, 16);
        flow.shares = new IAgentMarketplace.Share[](shareCount);
        uint256 left = SCALE;
        for (uint256 j; j < shareCount; ++j) {
            uint256 share = bound(_rand(seed, "share", j), 1, left / (shareCount - j));
            if (j == shareCount - 1 && seed % 4 == 0) share = left; // sometimes the shares take everything
            left -= share;
            flow.shares[j] = IAgentMarketplace.Share(_account(_recipient(seed, 16 + j)), uint32(share));
        }
        flow.remainder = _account(seed % 3 == 0 ? address(0) : address(0xBEEF));
    }

    /// @dev One of 24 recipient accounts, so flows sometimes name the same account twice.
    function _recipient(uint256 seed, uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + _rand(seed, "recipient", i) % 24));
    }

    function _list(IAgentMarketplace.FlowOfFunds memory flow, uint256 price) internal returns (uint256 agentId) {
        vm.prank(owner);
        IAgentMarketplace.AgentMetadata memory metadata = IAgentMarketplace.AgentMetadata("Agent", "", "https://agent");
        agentId = marketplace.list(metadata, price, flow, ownerReferrer);
    }

    /// @dev Pays `amount` to `agentId` from `payer`'s ledger balance (minting and depositing it first).
    function _pay(uint256 agentId, address payer, uint256 amount) internal {
        usdc.mint(payer, amount);
        vm.startPrank(payer);
        usdc.approve(address(ledger), amount);
        ledger.pay(payer, amount);
        ledger.approve(address(marketplace), type(uint256).max);
        marketplace.payFromBalance(agentId, amount, address(0));
        vm.stopPrank();
    }

    /// @dev Sum of the ledger balances of every account a random flow, its referrers and the treasury can reach.
    function _credited(address[] memory referrers) internal view returns (uint256 sum) {
        for (uint256 i; i < 24; ++i) {
            sum += ledger.balanceOf(address(uint160(0x1000 + i)));
        }
        for (uint256 i; i < referrers.length; ++i) {
            sum += ledger.balanceOf(referrers[i]);
        }
        sum += ledger.balanceOf(address(0xBEEF)) + ledger.balanceOf(treasury) + ledger.balanceOf(ownerReferrer);
    }

    /*//////////////////////////////////////////////////////////////
                                 SPLIT
    //////////////////////////////////////////////////////////////*/

    function testFuzz_split_OutputsSumToInput(uint256 seed, uint256 price, uint256 amount) public {
        price = bound(price, 1, 1e12);
        amount = bound(amount, 0, 1e18);
        IAgentMarketplace.FlowOfFunds memory flow = _randomFlow(seed, price);
        _list(flow, price); // proves the flow valid for the price

        IAgentMarketplace.PaymentSplit memory parts = marketplace.splitPayment(flow, price, amount);
        uint256 sum = parts.payerReferrerReward + parts.payeeReferrerReward;
        for (uint256 k; k < parts.outputs.length; ++k) {
            sum += parts.outputs[k];
        }
        assertEq(sum, amount, "outputs + referral rewards == payment");
        assertEq(parts.outputs.length, flow.fixedAmounts.length + flow.shares.length + 1, "one output per component");

        // Full calls are never capped: each gets every fixed amount and both referral rewards.
        uint256 calls = amount / price;
        for (uint256 i; i < flow.fixedAmounts.length; ++i) {
            assertGe(parts.outputs[i], calls * flow.fixedAmounts[i].amount, "fixed amount per full call");
            assertLe(parts.outputs[i], (calls + 1) * flow.fixedAmounts[i].amount, "at most one partial call more");
        }
        assertGe(parts.payerReferrerReward, calls * (price * flow.payerReferrerShare / SCALE), "payer reward per call");
        assertGe(parts.payeeReferrerReward, calls * (price * flow.payeeReferrerShare / SCALE), "payee reward per call");
    }

    /*//////////////////////////////////////////////////////////////
                              DISTRIBUTION
    //////////////////////////////////////////////////////////////*/

    /// @notice Payments through the marketplace wait as its ledger balance; plain transfers wait at the
    /// payment address. A distribution credits exactly their sum and leaves neither anything.
    function testFuzz_distribute_CreditsExactlyWhatIsPendingAndWhatThePaymentAddressHeld(
        uint256 seed,
        uint256 price,
        uint256 paymentCount,
        uint256 extra
    ) public {
        price = bound(price, 1, 1e9);
        paymentCount = bound(paymentCount, 0, 12);
        extra = bound(extra, 0, 3e9);
        uint256 agentId = _list(_randomFlow(seed, price), price);
        address paymentAddress = marketplace.paymentAddressOf(agentId);

        IAgentMarketplace.PendingPayment[] memory payments = new IAgentMarketplace.PendingPayment[](paymentCount);
        // Each referrer is listed once (zero entries are never credited).
        address[] memory referrers = new address[](paymentCount);
        for (uint256 i; i < paymentCount; ++i) {
            address payer = address(uint160(0xA000 + _rand(seed, "payer", i) % 5));
            if (marketplace.referrerOf(payer) == address(0) && _rand(seed, "refer", i) % 2 == 0) {
                referrers[i] = address(uint160(0xF000 + i));
                vm.prank(payer);
                marketplace.setReferrer(referrers[i]);
            }
            uint256 amount = price * bound(_rand(seed, "calls", i), 1, 3);
            if (_rand(seed, "partial", i) % 2 == 0) amount += _rand(seed, "rest", i) % price;
            _pay(agentId, payer, amount);
            payments[i] = IAgentMarketplace.PendingPayment(payer, marketplace.referrerOf(payer), amount);
        }
        if (extra != 0) usdc.mint(paymentAddress, extra);
        uint256 attributed = ledger.balanceOf(address(marketplace));
        uint256 held = attributed + usdc.balanceOf(paymentAddress);
        (,, uint256 pending) = marketplace.paymentChain(agentId);
        assertEq(pending, paymentCount, "every payment pending");
        uint256 paid;
        for (uint256 i; i < paymentCount; ++i) {
            paid += payments[i].amount;
        }
        assertEq(attributed, paid, "payments through the marketplace wait as its ledger balance");
        assertEq(usdc.balanceOf(paymentAddress), extra, "only plain transfers wait at the payment address");

        IAgentMarketplace.FlowOfFunds memory flow = _randomFlow(seed, price);
        if (held == 0) {
            vm.expectRevert(abi.encodeWithSelector(IAgentMarketplace.MarketplaceNothingToDistribute.selector, agentId));
            marketplace.distribute(agentId, flow, payments);
            return;
        }
        uint256 creditedBefore = _credited(referrers);
        uint256 ledgerBefore = usdc.balanceOf(address(ledger));
        marketplace.distribute(agentId, flow, payments);

        assertEq(_credited(referrers) - creditedBefore, held, "sum of credits == pending + what the address held");
        assertEq(usdc.balanceOf(address(ledger)) - ledgerBefore, extra, "the plain transfers moved into the ledger");
        assertEq(usdc.balanceOf(paymentAddress), 0, "payment address emptied");
        assertEq(ledger.balanceOf(address(marketplace)), 0, "the marketplace keeps nothing");
        assertEq(usdc.balanceOf(address(marketplace)), 0, "the marketplace holds no tokens");
        (,, pending) = marketplace.paymentChain(agentId);
        assertEq(pending, 0, "nothing pending");
    }

    /*//////////////////////////////////////////////////////////////
                             PAYMENT CHAIN
    //////////////////////////////////////////////////////////////*/

    function testFuzz_chain_AdvancesMonotonicallyAndNeverReplays(uint256 seed, uint256 firstCount, uint256 secondCount)
        public
    {
        firstCount = bound(firstCount, 1, 10);
        secondCount = bound(secondCount, 1, 10);
        uint256 price = 1_000;
        IAgentMarketplace.FlowOfFunds memory flow = _randomFlow(seed, price);
        uint256 agentId = _list(flow, price);
        (bytes32 genesis,,) = marketplace.paymentChain(agentId);

        IAgentMarketplace.PendingPayment[] memory first = _payRound(agentId, seed, "first", firstCount, genesis);
        (bytes32 head,,) = marketplace.paymentChain(agentId);
        marketplace.distribute(agentId, flow, first);
        bytes32 settled = PaymentChainLib.settled(head);
        _assertChain(agentId, settled, settled, 0);
        assertTrue(settled != genesis, "the hash part moved on");

        // The distributed payments cannot be distributed again, even with new funds there.
        usdc.mint(marketplace.paymentAddressOf(agentId), price);
        bytes32 replayed = settled;
        for (uint256 i; i < first.length; ++i) {
            replayed = PaymentChainLib.link(replayed, first[i].payer, first[i].referrer, first[i].amount);
        }
        vm.expectRevert(
            abi.encodeWithSelector(IAgentMarketplace.MarketplaceChainMismatch.selector, agentId, settled, replayed)
        );
        marketplace.distribute(agentId, flow, first);

        IAgentMarketplace.PendingPayment[] memory second = _payRound(agentId, seed, "second", secondCount, settled);
        (head,,) = marketplace.paymentChain(agentId);
        // Old and new payments together are not the pending ones either.
        IAgentMarketplace.PendingPayment[] memory both =
            new IAgentMarketplace.PendingPayment[](firstCount + secondCount);
        bytes32 computed = settled;
        for (uint256 i; i < both.length; ++i) {
            both[i] = i < firstCount ? first[i] : second[i - firstCount];
            computed = PaymentChainLib.link(computed, both[i].payer, both[i].referrer, both[i].amount);
        }
        vm.expectRevert(
            abi.encodeWithSelector(IAgentMarketplace.MarketplaceChainMismatch.selector, agentId, head, computed)
        );
        marketplace.distribute(agentId, flow, both);
        marketplace.distribute(agentId, flow, second);
        _assertChain(agentId, PaymentChainLib.settled(head), PaymentChainLib.settled(head), 0);
    }

    /// @dev Pays `count` times, checking after each that the head advances by one link from `base`.
    function _payRound(uint256 agentId, uint256 seed, string memory tag, uint256 count, bytes32 base)
        internal
        returns (IAgentMarketplace.PendingPayment[] memory payments)
    {
        payments = new IAgentMarketplace.PendingPayment[](count);
        bytes32 expected = base;
        for (uint256 i; i < count; ++i) {
            address payer = address(uint160(0xA000 + _rand(seed, tag, i) % 3));
            uint256 amount = 1_000 + _rand(seed, tag, i + 100) % 2_000;
            _pay(agentId, payer, amount);
            payments[i] = IAgentMarketplace.PendingPayment(payer, address(0), amount);
            bytes32 next = PaymentChainLib.link(expected, payer, address(0), amount);
            assertTrue(next != expected, "every payment moves the head");
            expected = next;
            _assertChain(agentId, expected, base, i + 1);
        }
    }

    function _assertChain(uint256 agentId, bytes32 head, bytes32 base, uint256 pending) internal view {
        (bytes32 actualHead, bytes32 actualBase, uint256 actualPending) = marketplace.paymentChain(agentId);
        assertEq(actualHead, head, "head");
        assertEq(actualBase, base, "base (changes only on distribution)");
        assertEq(actualPending, pending, "pending count");
    }

    function test_link_IsTheDocumentedHash() public pure {
        bytes32 state = bytes32(uint256(0xabc) << 32 | 7);
        bytes32 next = PaymentChainLib.link(state, address(0xB0B), address(0xF4A), 12_000);
        bytes32 hash = keccak256(abi.encode(state, address(0xB0B), address(0xF4A), uint256(12_000)));
        assertEq(uint256(next), uint256(hash) & ~uint256(0xffffffff) | 8, "hash with the count + 1 in the low 32 bits");
    }
}
