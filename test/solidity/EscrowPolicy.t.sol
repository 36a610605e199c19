// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IComputeEscrow} from "../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../contracts/interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "../../contracts/interfaces/ISplitsLedger.sol";
import {IMockUSDC} from "./utils/Interfaces.sol";
import {Suite} from "./utils/Suite.sol";

/// @notice Issue 11's escrow rules, one property per test: slashing proofs bound to the session's own
/// signer (SECURITY.md 11, 22), fees fixed at open (23), and USDC's pause and blacklist stopping no
/// signed claim and no refund (24). The stateful suite (invariants/EscrowInvariants.t.sol) fuzzes the
/// same actions in random orders.
contract EscrowPolicyTest is Suite {
    uint256 internal constant AGENT_KEY = 0xA6E47;
    uint256 internal constant SIGNER_KEY = 0x5161E2;
    uint256 internal constant NEW_SIGNER_KEY = 0x5161E3;
    uint256 internal constant OTHER_SIGNER_KEY = 0x5161E4;
    uint256 internal constant BUDGET = 1_000_000_000;
    uint256 internal constant LOCK = 10_000_000;

    address internal agent;
    address internal providerOwner = address(0x0A11CE);
    address internal payout = address(0xFA1D);
    address internal creator = address(0xC4EA7E);
    address internal reporter = address(0x4E9047);
    uint256 internal providerId;
    uint256 internal otherProviderId;
    uint256 internal budgetId;
    uint256 internal expiry;

    function setUp() public {
        _deploySuite();
        agent = vm.addr(AGENT_KEY);
        providerId = _registerProvider(providerOwner, vm.addr(SIGNER_KEY), payout, 2 * MIN_STAKE);
        otherProviderId =
            _registerProvider(address(0x0B0B), vm.addr(OTHER_SIGNER_KEY), address(0xFA2D), MIN_STAKE);
        expiry = block.timestamp + 30 days;
        budgetId = _createBudget(creator, BUDGET, LOCK, expiry, agent);
    }

    function _open(uint256 salt) internal returns (IComputeEscrow.SessionTerms memory terms) {
        terms = _terms(agent, budgetId, providerId, LOCK, block.timestamp + 1 days, salt);
        _openSigned(terms, AGENT_KEY);
    }

    /// @dev A double-sign proof: two different states of `terms` at one sequence number, signed by `key`.
    struct Proof {
        IComputeEscrow.Voucher first;
        IComputeEscrow.CompactSignature firstSignature;
        IComputeEscrow.Voucher second;
        IComputeEscrow.CompactSignature secondSignature;
    }

    function _proof(IComputeEscrow.SessionTerms memory terms, uint256 key) internal returns (Proof memory proof) {
        proof.first = _voucher(terms, 5, 1_000_000, 1, false);
        proof.second = _voucher(terms, 5, 2_000_000, 2, false);
        proof.firstSignature = _sign(key, escrow.voucherDigest(proof.first));
        proof.secondSignature = _sign(key, escrow.voucherDigest(proof.second));
    }

    function _submit(Proof memory proof) internal {
        vm.prank(reporter);
        escrow.slashDoubleSign(proof.first, proof.firstSignature, proof.second, proof.secondSignature);
    }

    function _slash(IComputeEscrow.SessionTerms memory terms, uint256 key) internal {
        _submit(_proof(terms, key));
    }

    function _unknown(IComputeEscrow.SessionTerms memory terms) internal view returns (bytes memory) {
        return abi.encodeWithSelector(IComputeEscrow.EscrowUnknownSession.selector, escrow.sessionIdOf(terms));
    }

    function _termsFor(uint256 id, uint256 salt) internal view returns (IComputeEscrow.SessionTerms memory) {
        return _terms(agent, budgetId, id, LOCK, block.timestamp + 1 days, salt);
    }

    function _rotate(uint256 newKey) internal {
        IProviderRegistry.ProviderConfig memory config = IProviderRegistry.ProviderConfig({
            endpoint: "https://provider.example",
            providerType: IProviderRegistry.ProviderType.SelfHosted,
            rateLimitPerMinute: 600,
            minChargePerCall: MIN_CHARGE,
            features: 0,
            receiptSigner: vm.addr(newKey),
            payout: payout
        });
        vm.prank(providerOwner);
        registry.updateProvider(providerId, config);
    }

    function _assertNotSlashed(uint256 id, uint256 stake) internal view {
        IProviderRegistry.Provider memory p = registry.getProvider(id);
        assertTrue(!p.slashed, "not slashed");
        assertEq(p.stake, stake, "stake intact");
        assertEq(ledger.balanceOf(reporter), 0, "no reward");
    }

    /*//////////////////////////////////////////////////////////////
                               SLASHING
    //////////////////////////////////////////////////////////////*/

    function test_slashDoubleSign_TakesStakeAndPendingUnstake() public {
        IComputeEscrow.SessionTerms memory terms = _open(1);
        vm.prank(providerOwner);
        registry.requestUnstake(providerId, MIN_STAKE / 2);
        uint256 amount = 2 * MIN_STAKE;
        _slash(terms, SIGNER_KEY);
        IProviderRegistry.Provider memory p = registry.getProvider(providerId);
        assertTrue(p.slashed && !p.active, "slashed and deactivated");
        assertEq(uint256(p.stake) + p.pendingUnstake, 0, "stake and pending unstake taken");
        assertEq(ledger.balanceOf(reporter), amount / 10, "the reporter's 10%");
        assertEq(ledger.balanceOf(treasury), amount - amount / 10, "the treasury's rest");
        assertEq(ledger.balanceOf(address(registry)), MIN_STAKE, "only the other provider's stake is left");
    }

    function test_slashDoubleSign_RevertWhen_SessionNeverOpened() public {
        IComputeEscrow.SessionTerms memory terms = _termsFor(providerId, 7);
        Proof memory proof = _proof(terms, SIGNER_KEY);
        vm.expectRevert(_unknown(terms));
        _submit(proof);
        _assertNotSlashed(providerId, 2 * MIN_STAKE);
    }

    function test_slashDoubleSign_RevertWhen_SignedByAnotherProvidersKey() public {
        Proof memory proof = _proof(_open(2), OTHER_SIGNER_KEY);
        vm.expectRevert(IComputeEscrow.EscrowInvalidSlashProof.selector);
        _submit(proof);
        _assertNotSlashed(providerId, 2 * MIN_STAKE);
    }

    function test_slashDoubleSign_RevertWhen_AnotherProvidersSessionIsRelabelled() public {
        // Provider B's session, its terms changed to name provider A: not a session opened for A.
        IComputeEscrow.SessionTerms memory terms = _termsFor(otherProviderId, 3);
        _openSigned(terms, AGENT_KEY);
        terms.providerId = uint32(providerId);
        Proof memory proof = _proof(terms, OTHER_SIGNER_KEY);
        vm.expectRevert(_unknown(terms));
        _submit(proof);
        _assertNotSlashed(providerId, 2 * MIN_STAKE);
        _assertNotSlashed(otherProviderId, MIN_STAKE);
    }

    function test_slashDoubleSign_RetiredSignerBindsOnlyItsOwnSessions() public {
        IComputeEscrow.SessionTerms memory old = _open(4);
        _rotate(NEW_SIGNER_KEY);
        IComputeEscrow.SessionTerms memory current = _open(5);
        assertEq(current.receiptSigner, vm.addr(NEW_SIGNER_KEY), "new sessions name the new signer");

        // The retired key binds nobody for a session opened after the rotation...
        Proof memory proof = _proof(current, SIGNER_KEY);
        vm.expectRevert(IComputeEscrow.EscrowInvalidSlashProof.selector);
        _submit(proof);
        // ...nor for unopened terms naming it.
        IComputeEscrow.SessionTerms memory forged = _termsFor(providerId, 5);
        forged.receiptSigner = vm.addr(SIGNER_KEY);
        proof = _proof(forged, SIGNER_KEY);
        vm.expectRevert(_unknown(forged));
        _submit(proof);
        _assertNotSlashed(providerId, 2 * MIN_STAKE);

        // The old session still settles with the old key, and remains provable against it.
        escrow.settle(_one(_signVoucher(_voucher(old, 1, 3_000_000, 2, false), AGENT_KEY, SIGNER_KEY)));
        assertEq(escrow.getSession(escrow.sessionIdOf(old)).settled, 3_000_000, "old session settled");
        _slash(old, SIGNER_KEY);
        assertTrue(registry.getProvider(providerId).slashed, "slashed on its old session's proof");
    }

    function test_closeByProvider_ByTheSessionsOwnSignerEvenAfterRotation() public {
        IComputeEscrow.SessionTerms memory old = _open(16);
        _rotate(NEW_SIGNER_KEY);
        IComputeEscrow.SessionTerms memory current = _open(17);
        // The new signer is not the old session's signer (nor its owner): it cannot close it.
        bytes memory notAuthorized = abi.encodeWithSelector(
            IComputeEscrow.EscrowNotAuthorized.selector, escrow.sessionIdOf(old), vm.addr(NEW_SIGNER_KEY)
        );
        vm.prank(vm.addr(NEW_SIGNER_KEY));
        vm.expectRevert(notAuthorized);
        escrow.closeByProvider(old);
        // Each session's own signer closes it.
        vm.prank(vm.addr(SIGNER_KEY));
        escrow.closeByProvider(old);
        vm.prank(vm.addr(NEW_SIGNER_KEY));
        escrow.closeByProvider(current);
        assertEq(escrow.getSession(escrow.sessionIdOf(old)).claimEnd, escrow.FINALIZED(), "old session closed");
        assertEq(escrow.getSession(escrow.sessionIdOf(current)).claimEnd, escrow.FINALIZED(), "new session closed");
    }

    function test_openSession_RevertWhen_TermsNameARetiredSigner() public {
        _rotate(NEW_SIGNER_KEY);
        IComputeEscrow.SessionTerms memory terms = _termsFor(providerId, 6);
        terms.receiptSigner = vm.addr(SIGNER_KEY);
        IComputeEscrow.CompactSignature memory signature = _sign(AGENT_KEY, escrow.openDigest(terms));
        vm.expectRevert(
            abi.encodeWithSelector(
                IComputeEscrow.EscrowReceiptSignerMismatch.selector,
                providerId,
                vm.addr(NEW_SIGNER_KEY),
                terms.receiptSigner
            )
        );
        escrow.openSession(terms, signature);
    }

    function testFuzz_slashDoubleSign_TinyStakeStillDeactivates(uint256 left) public {
        left = bound(left, 0, 9); // 10% of 0..9 units rounds to a zero reward
        IComputeEscrow.SessionTerms memory terms = _open(8);
        vm.startPrank(providerOwner);
        registry.requestUnstake(providerId, 2 * MIN_STAKE - left);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        registry.withdrawUnstaked(providerId);
        vm.stopPrank();
        _slash(terms, SIGNER_KEY);
        IProviderRegistry.Provider memory p = registry.getProvider(providerId);
        assertTrue(p.slashed && !p.active, "slashed and inactive");
        assertEq(p.stake, 0, "stake taken");
        assertEq(ledger.balanceOf(reporter), 0, "no reward to round");
        assertEq(ledger.balanceOf(treasury), left, "the treasury gets the tiny stake");
        vm.prank(providerOwner);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.RegistryProviderSlashed.selector, providerId));
        registry.reactivate(providerId);
    }

    /*//////////////////////////////////////////////////////////////
                                 FEES
    //////////////////////////////////////////////////////////////*/

    function testFuzz_setFee_OpenSessionsKeepTheirFee(uint256 newFee, uint256 cost) public {
        newFee = bound(newFee, 0, escrow.MAX_FEE_BPS());
        cost = bound(cost, MIN_CHARGE, LOCK);
        IComputeEscrow.SessionTerms memory terms = _open(9);
        escrow.setFee(newFee);

        escrow.settle(_one(_signVoucher(_voucher(terms, 1, cost, 1, false), AGENT_KEY, SIGNER_KEY)));
        assertEq(ledger.balanceOf(treasury), cost * FEE_BPS / 10_000, "the fee the session opened with");
        assertEq(ledger.balanceOf(payout), cost - cost * FEE_BPS / 10_000, "the provider's share at that fee");

        // A session opened now carries (and must carry) the new fee.
        IComputeEscrow.SessionTerms memory stale = _termsFor(providerId, 10);
        stale.feeBps = uint16(FEE_BPS);
        if (newFee != FEE_BPS) {
            IComputeEscrow.CompactSignature memory signature = _sign(AGENT_KEY, escrow.openDigest(stale));
            vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowFeeMismatch.selector, newFee, FEE_BPS));
            escrow.openSession(stale, signature);
        }
        assertEq(_open(11).feeBps, newFee, "new sessions pay the new fee");
    }

    function test_setFee_RevertWhen_NotAdmin() public {
        vm.prank(reporter);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, reporter, bytes32(0))
        );
        escrow.setFee(0);
        assertEq(escrow.feeBps(), FEE_BPS, "fee unchanged");
    }

    /*//////////////////////////////////////////////////////////////
                          USDC PAUSE AND BLACKLIST
    //////////////////////////////////////////////////////////////*/

    /// @dev Pauses USDC and blacklists the escrow, the ledger, the creator and the provider's payout.
    function _hostileToken() internal {
        usdc.pause();
        usdc.blacklist(address(escrow));
        usdc.blacklist(address(ledger));
        usdc.blacklist(creator);
        usdc.blacklist(payout);
    }

    function test_settle_WhileTokenPausedAndEverybodyBlacklisted() public {
        IComputeEscrow.SessionTerms memory terms = _open(12);
        _hostileToken();
        escrow.settle(_one(_signVoucher(_voucher(terms, 1, 4_000_000, 2, false), AGENT_KEY, SIGNER_KEY)));
        assertEq(ledger.balanceOf(payout), 4_000_000 - 4_000_000 * FEE_BPS / 10_000, "a blacklisted payout accrues");
        // ...but cannot move it while blacklisted.
        vm.prank(payout);
        vm.expectRevert(abi.encodeWithSelector(ISplitsLedger.LedgerAccountBlacklisted.selector, payout));
        ledger.transfer(address(0xBEEF), 1);
    }

    function test_finalizeAndReturnExpired_WhileTokenPausedAndEverybodyBlacklisted() public {
        IComputeEscrow.SessionTerms memory terms = _open(13);
        escrow.settle(_one(_signVoucher(_voucher(terms, 1, 1_000_000, 1, false), AGENT_KEY, SIGNER_KEY)));
        _hostileToken();
        vm.warp(expiry + CHALLENGE_WINDOW);
        escrow.finalize(terms);
        escrow.returnExpired(budgetId);
        assertEq(ledger.balanceOf(creator), BUDGET - 1_000_000, "the creator's ledger balance holds the rest");
        assertEq(ledger.balanceOf(address(escrow)), 0, "the escrow is empty");
        // Once the token lets it, the creator withdraws.
        usdc.unpause();
        usdc.unBlacklist(address(ledger));
        usdc.unBlacklist(creator);
        vm.prank(creator);
        ledger.withdraw(creator, BUDGET - 1_000_000);
        assertEq(usdc.balanceOf(creator), BUDGET - 1_000_000, "withdrawn");
    }

    function test_openSessionAndRefund_RevertWhen_CreatorBlacklisted() public {
        usdc.blacklist(creator);
        IComputeEscrow.SessionTerms memory terms = _termsFor(providerId, 14);
        IComputeEscrow.CompactSignature memory signature = _sign(AGENT_KEY, escrow.openDigest(terms));
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowCreatorRestricted.selector, budgetId, creator));
        escrow.openSession(terms, signature);
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(IComputeEscrow.EscrowCreatorRestricted.selector, budgetId, creator));
        escrow.refund(budgetId, 1);
        assertEq(ledger.balanceOf(address(escrow)), BUDGET, "nothing moved");
    }

    function test_withdrawUnstaked_RevertWhen_TokenPaused_StakeStaysSlashable() public {
        IComputeEscrow.SessionTerms memory terms = _open(15);
        vm.prank(providerOwner);
        registry.requestUnstake(providerId, MIN_STAKE);
        vm.warp(block.timestamp + UNSTAKE_DELAY);
        usdc.pause();
        vm.prank(providerOwner);
        vm.expectRevert(IMockUSDC.TokenPaused.selector);
        registry.withdrawUnstaked(providerId);
        // The pending unstake the paused token held back is still slashable.
        _slash(terms, SIGNER_KEY);
        assertEq(ledger.balanceOf(treasury) + ledger.balanceOf(reporter), 2 * MIN_STAKE, "all of it slashed");
    }
}
