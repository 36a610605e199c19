// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ISplitsLedger} from "../../contracts/interfaces/ISplitsLedger.sol";
import {IMockUSDC, ITestLedger} from "./utils/Interfaces.sol";
import {TestBase} from "./utils/Vm.sol";

/// @notice Fuzz tests of the ledger's split arithmetic (lazy: paying a split credits its balance, `distribute`
/// fans it out) and withdrawals.
contract SplitsLedgerFuzzTest is TestBase {
    uint256 internal constant SCALE = 1_000_000;

    IMockUSDC internal usdc;
    ITestLedger internal ledger;
    address internal payer = address(0x9A7E5);
    address internal remainder = address(0xBEEF00);

    function setUp() public {
        usdc = IMockUSDC(_deploy("contracts/mocks/MockUSDC.sol:MockUSDC", abi.encode("USD Coin")));
        ledger = ITestLedger(
            _deploy("contracts/SplitsLedger.sol:SplitsLedger", abi.encode(usdc, uint48(2 days), address(this)))
        );
        usdc.mint(payer, type(uint128).max);
        vm.prank(payer);
        usdc.approve(address(ledger), type(uint256).max);
    }

    function _rand(uint256 seed, string memory tag, uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, tag, i)));
    }

    /// @dev A split of `n` sorted recipients with random non-zero shares (sometimes summing to the whole scale).
    function _randomSplit(uint256 seed, uint256 n)
        internal
        pure
        returns (ISplitsLedger.Split memory split, uint256 remainderShare)
    {
        split.recipients = new ISplitsLedger.SplitRecipient[](n);
        uint256 total;
        for (uint256 i; i < n; ++i) {
            uint256 share = bound(_rand(seed, "share", i), 1, SCALE / n);
            // Ascending addresses, well above the precompiles.
            split.recipients[i] = ISplitsLedger.SplitRecipient(address(uint160(0x10000 + i * 0x100)), uint32(share));
            total += share;
        }
        if (seed % 4 == 0) {
            // Give the last recipient everything left: the remainder recipient's share is zero.
            split.recipients[n - 1].share += uint32(SCALE - total);
            total = SCALE;
        }
        split.remainderRecipient = address(0xBEEF00);
        remainderShare = SCALE - total;
    }

    function _amount(uint256 seed, uint256 j) internal pure returns (uint256) {
        uint256 r = _rand(seed, "amount", j);
        // Mix dust-sized payments (where rounding matters most) with large ones.
        return r % 3 == 0 ? bound(r >> 8, 1, 1_000_000_000_000) : bound(r >> 8, 1, 10);
    }

    /*//////////////////////////////////////////////////////////////
                                 SPLITS
    //////////////////////////////////////////////////////////////*/

    function testFuzz_split_CreditsFloorOfLifetimeShare(uint256 seed, uint256 recipientCount, uint256 paymentCount)
        public
    {
        uint256 n = bound(recipientCount, 1, 8);
        uint256 payments = bound(paymentCount, 1, 25);
        (ISplitsLedger.Split memory definition, uint256 remainderShare) = _randomSplit(seed, n);
        address split = ledger.createSplit(definition);
        assertEq(split, ledger.predictSplitAddress(definition), "predicted address");

        uint256 received;
        uint256 distributed;
        for (uint256 j; j < payments; ++j) {
            uint256 amount = _amount(seed, j);
            received += amount;
            vm.prank(payer);
            ledger.pay(split, amount);
            // Paying a split only credits its own balance; anyone fans it out, now or after more payments.
            assertEq(ledger.balanceOf(split), received - distributed, "a split holds what it has not distributed");
            if (j == payments - 1 || _rand(seed, "distribute", j) % 2 == 0) {
                ledger.distribute(split);
                distributed = received;
                assertEq(ledger.balanceOf(split), 0, "distributing empties the split's balance");
            }

            uint256 credited;
            for (uint256 i; i < n; ++i) {
                ISplitsLedger.SplitRecipient memory r = definition.recipients[i];
                uint256 expected = distributed * r.share / SCALE;
                assertEq(ledger.balanceOf(r.account), expected, "recipient == floor(distributed * share / scale)");
                credited += expected;
            }
            uint256 remainderExpected = distributed * remainderShare / SCALE;
            assertEq(ledger.balanceOf(remainder), remainderExpected, "remainder recipient");
            credited += remainderExpected;

            (uint256 totalDistributed, uint256 dust) = ledger.splitTotals(split);
            assertEq(totalDistributed, distributed, "lifetime distributed");
            assertEq(credited + dust, distributed, "credited + dust == distributed");
            assertLt(dust, n + 1, "dust < number of entries");
            assertEq(
                usdc.balanceOf(address(ledger)),
                credited + dust + ledger.balanceOf(split),
                "ledger holds credits + dust + the undistributed balance"
            );
        }
    }

    function testFuzz_distribute_RevertWhen_NothingToDistributeOrNotASplit(uint256 seed, address notASplit) public {
        (ISplitsLedger.Split memory definition,) = _randomSplit(seed, 3);
        address split = ledger.createSplit(definition);
        vm.assume(notASplit != split);
        vm.expectRevert(ISplitsLedger.LedgerZeroAmount.selector);
        ledger.distribute(split);
        vm.expectRevert(abi.encodeWithSelector(ISplitsLedger.LedgerNotASplit.selector, notASplit));
        ledger.distribute(notASplit);
    }

    function testFuzz_split_RepeatedSmallPaymentsNeverStarveMinority(uint256 share, uint256 payments) public {
        share = bound(share, 1, 1_000); // at most 0.1%
        payments = bound(payments, 1, 200);
        ISplitsLedger.Split memory definition;
        definition.recipients = new ISplitsLedger.SplitRecipient[](1);
        definition.recipients[0] = ISplitsLedger.SplitRecipient(address(0x10000), uint32(share));
        definition.remainderRecipient = remainder;
        address split = ledger.createSplit(definition);
        uint256 amount = SCALE / share / 3 + 1; // each payment alone rounds the minority's part to ~0
        for (uint256 j; j < payments; ++j) {
            vm.prank(payer);
            ledger.pay(split, amount);
            ledger.distribute(split); // each payment distributed on its own: the worst case for rounding
        }
        uint256 received = amount * payments;
        assertEq(ledger.balanceOf(address(0x10000)), received * share / SCALE, "minority gets its lifetime share");
        (, uint256 dust) = ledger.splitTotals(split);
        assertLt(dust, 2, "dust below the entry count");
    }

    function testFuzz_split_NestedCreditsFloorOfFloor(uint256 outerShare, uint256 innerShare, uint256 seed) public {
        outerShare = bound(outerShare, 1, SCALE);
        innerShare = bound(innerShare, 1, SCALE);
        ISplitsLedger.Split memory inner;
        inner.recipients = new ISplitsLedger.SplitRecipient[](1);
        inner.recipients[0] = ISplitsLedger.SplitRecipient(address(0xA0001), uint32(innerShare));
        inner.remainderRecipient = address(0xA0002);
        address innerSplit = ledger.createSplit(inner);

        ISplitsLedger.Split memory outer;
        outer.recipients = new ISplitsLedger.SplitRecipient[](1);
        outer.recipients[0] = ISplitsLedger.SplitRecipient(innerSplit, uint32(outerShare));
        outer.remainderRecipient = address(0xA0003);
        address outerSplit = ledger.createSplit(outer);

        uint256 received;
        for (uint256 j; j < 10; ++j) {
            uint256 amount = _amount(seed, j);
            received += amount;
            vm.prank(payer);
            ledger.pay(outerSplit, amount);
            ledger.distribute(outerSplit); // passes the inner split's part straight through it
            assertEq(ledger.balanceOf(innerSplit), 0, "a nested split is distributed with its parent");

            uint256 innerReceived = received * outerShare / SCALE;
            (uint256 gotInner,) = ledger.splitTotals(innerSplit);
            assertEq(gotInner, innerReceived, "inner split receives floor of its share");
            assertEq(ledger.balanceOf(address(0xA0001)), innerReceived * innerShare / SCALE, "leaf a");
            assertEq(
                ledger.balanceOf(address(0xA0002)), innerReceived * (SCALE - innerShare) / SCALE, "leaf b"
            );
            assertEq(ledger.balanceOf(address(0xA0003)), received * (SCALE - outerShare) / SCALE, "leaf c");
            (, uint256 outerDust) = ledger.splitTotals(outerSplit);
            (, uint256 innerDust) = ledger.splitTotals(innerSplit);
            uint256 leaves = ledger.balanceOf(address(0xA0001)) + ledger.balanceOf(address(0xA0002))
                + ledger.balanceOf(address(0xA0003));
            assertEq(leaves + outerDust + innerDust, received, "leaves + dust == received");
            assertEq(usdc.balanceOf(address(ledger)), received, "ledger holds every payment");
        }
    }

    /*//////////////////////////////////////////////////////////////
                              WITHDRAWALS
    //////////////////////////////////////////////////////////////*/

    function testFuzz_withdraw_RevertWhen_AmountExceedsBalance(uint256 credited, uint256 amount) public {
        credited = bound(credited, 1, type(uint128).max / 2);
        amount = bound(amount, credited + 1, type(uint256).max);
        address account = address(0xACC0);
        vm.prank(payer);
        ledger.pay(account, credited);

        vm.expectRevert(
            abi.encodeWithSelector(ISplitsLedger.LedgerInsufficientBalance.selector, account, credited, amount)
        );
        vm.prank(account);
        ledger.withdraw(address(0x51AC), amount);
        assertEq(ledger.balanceOf(account), credited, "balance unchanged");
        assertEq(usdc.balanceOf(address(0x51AC)), 0, "nothing sent");

        vm.prank(account);
        ledger.withdraw(address(0x51AC), credited);
        assertEq(ledger.balanceOf(account), 0, "emptied");
        assertEq(usdc.balanceOf(address(0x51AC)), credited, "exactly the balance sent");
    }

    function testFuzz_withdraw_TotalNeverExceedsCredited(uint256 credited, uint256 seed) public {
        credited = bound(credited, 1, 1_000_000_000_000);
        address account = address(0xACC1);
        vm.prank(payer);
        ledger.pay(account, credited);
        uint256 withdrawn;
        for (uint256 j; j < 12; ++j) {
            uint256 amount = bound(_rand(seed, "withdraw", j), 1, credited);
            uint256 balance = credited - withdrawn;
            if (amount > balance) {
                vm.expectRevert(
                    abi.encodeWithSelector(ISplitsLedger.LedgerInsufficientBalance.selector, account, balance, amount)
                );
                vm.prank(account);
                ledger.withdraw(address(0x51AC), amount);
            } else {
                vm.prank(account);
                ledger.withdraw(address(0x51AC), amount);
                withdrawn += amount;
            }
            assertEq(ledger.balanceOf(account), credited - withdrawn, "balance == credited - withdrawn");
            assertEq(usdc.balanceOf(address(0x51AC)), withdrawn, "received == withdrawn");
            assertLe(withdrawn, credited, "withdrawn <= credited");
        }
    }
}
