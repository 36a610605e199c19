// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {IMockUSDC, ITestEscrow, ITestLedger, ITestMarketplace, ITestRegistry} from "./Interfaces.sol";
import {TestBase} from "./Vm.sol";

/// @notice Deploys the suite as scripts/lib/deploy-suite.ts does (same defaults) and signs its data.
abstract contract Suite is TestBase {
    uint256 internal constant MIN_STAKE = 100_000_000; // 100 USDC
    uint256 internal constant UNSTAKE_DELAY = 7 days;
    uint32 internal constant CHALLENGE_WINDOW = 1 days;
    uint256 internal constant FEE_BPS = 250;
    uint32 internal constant MIN_CHARGE = 1_000;
    uint32 internal constant INPUT_PRICE = 50;
    uint32 internal constant OUTPUT_PRICE = 150;
    uint256 internal constant START_TIME = 1_700_000_000;
    uint48 internal constant ADMIN_DELAY = 2 days;

    IMockUSDC internal usdc;
    ITestLedger internal ledger;
    ITestRegistry internal registry;
    ITestEscrow internal escrow;
    ITestMarketplace internal marketplace;

    address internal admin;
    address internal treasury = address(0x7EA5);

    /// @dev Deploys the suite from the built artifacts (see `TestBase._deploy`): a test contract embedding
    /// every contract's creation code would need more gas to deploy than the 2^24 that the Solidity tests
    /// allow per call. Gas metering is paused meanwhile (setUp is one call too, under the same cap).
    function _deploySuite() internal {
        vm.pauseGasMetering();
        vm.warp(START_TIME);
        admin = address(this);
        usdc = IMockUSDC(_deploy("contracts/mocks/MockUSDC.sol:MockUSDC", abi.encode("USD Coin")));
        ledger = ITestLedger(
            _deploy("contracts/SplitsLedger.sol:SplitsLedger", abi.encode(usdc, ADMIN_DELAY, admin))
        );
        registry = ITestRegistry(
            _deploy(
                "contracts/ProviderRegistry.sol:ProviderRegistry",
                abi.encode(usdc, ledger, MIN_STAKE, UNSTAKE_DELAY, ADMIN_DELAY, admin)
            )
        );
        escrow = ITestEscrow(
            _deploy(
                "contracts/ComputeEscrow.sol:ComputeEscrow",
                abi.encode(usdc, registry, ledger, CHALLENGE_WINDOW, ADMIN_DELAY, admin, treasury, FEE_BPS)
            )
        );
        marketplace = ITestMarketplace(
            _deploy(
                "contracts/AgentMarketplace.sol:AgentMarketplace",
                abi.encode(usdc, ledger, escrow, ADMIN_DELAY, admin, treasury)
            )
        );
        registry.bindEscrow(address(escrow));
        address[] memory custodians = new address[](3);
        (custodians[0], custodians[1], custodians[2]) = (address(escrow), address(registry), address(marketplace));
        ledger.setCustodians(custodians);
        vm.label(address(usdc), "USDC");
        vm.label(address(ledger), "SplitsLedger");
        vm.label(address(registry), "ProviderRegistry");
        vm.label(address(escrow), "ComputeEscrow");
        vm.label(address(marketplace), "AgentMarketplace");
        vm.label(treasury, "treasury");
        vm.resumeGasMetering();
    }

    /// @dev Registers a provider owned by `owner` with receipt signer `signer`, one model, and `stake`.
    function _registerProvider(address owner, address signer, address payout, uint256 stake)
        internal
        returns (uint256 providerId)
    {
        IProviderRegistry.ProviderConfig memory config = IProviderRegistry.ProviderConfig({
            endpoint: "https://provider.example",
            providerType: IProviderRegistry.ProviderType.SelfHosted,
            rateLimitPerMinute: 600,
            minChargePerCall: MIN_CHARGE,
            features: 0,
            receiptSigner: signer,
            payout: payout
        });
        IProviderRegistry.ModelConfig[] memory models = new IProviderRegistry.ModelConfig[](1);
        models[0] = IProviderRegistry.ModelConfig({
            name: "llama-3.1-8b",
            inputPricePer1K: INPUT_PRICE,
            outputPricePer1K: OUTPUT_PRICE,
            maxContextTokens: 128_000
        });
        usdc.mint(owner, stake);
        vm.startPrank(owner);
        usdc.approve(address(registry), stake);
        providerId = registry.register(config, models, stake);
        vm.stopPrank();
    }

    function _createBudget(address creator, uint256 amount, uint256 perSessionLimit, uint256 expiry, address agent)
        internal
        returns (uint256 budgetId)
    {
        address[] memory agents = new address[](1);
        agents[0] = agent;
        usdc.mint(creator, amount);
        vm.startPrank(creator);
        usdc.approve(address(escrow), amount);
        budgetId = escrow.createBudget(amount, perSessionLimit, expiry, agents);
        vm.stopPrank();
    }

    function _terms(
        address agent,
        uint256 budgetId,
        uint256 providerId,
        uint256 maxSpend,
        uint256 deadline,
        uint256 salt
    )
        internal
        view
        returns (IComputeEscrow.SessionTerms memory terms)
    {
        IProviderRegistry.SessionQuote memory q = registry.quote(providerId, 0);
        terms = IComputeEscrow.SessionTerms({
            agent: agent,
            budgetId: uint64(budgetId),
            providerId: uint32(providerId),
            modelId: 0,
            receiptSigner: q.receiptSigner,
            inputPricePer1K: q.inputPricePer1K,
            outputPricePer1K: q.outputPricePer1K,
            minChargePerCall: q.minChargePerCall,
            // Safe cast: the fee is at most MAX_FEE_BPS.
            feeBps: uint16(escrow.feeBps()),
            maxSpend: uint64(maxSpend),
            deadline: uint32(deadline),
            salt: uint64(salt)
        });
    }

    /// @dev Signs `digest` and packs the result into ERC-2098 compact form.
    function _sign(uint256 key, bytes32 digest) internal returns (IComputeEscrow.CompactSignature memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return IComputeEscrow.CompactSignature(r, bytes32(uint256(v - 27) << 255 | uint256(s)));
    }

    function _openSigned(IComputeEscrow.SessionTerms memory terms, uint256 agentKey) internal returns (bytes32) {
        IComputeEscrow.CompactSignature memory signature = _sign(agentKey, escrow.openDigest(terms));
        return escrow.openSession(terms, signature);
    }

    function _voucher(
        IComputeEscrow.SessionTerms memory terms,
        uint256 sequence,
        uint256 cumulativeCost,
        uint256 requests,
        bool isFinal
    ) internal pure returns (IComputeEscrow.Voucher memory) {
        // A voucher must charge at least requestCount x MIN_CHARGE: count only the requests the cost
        // pays for (still non-decreasing when cost and requests both are).
        if (requests > cumulativeCost / MIN_CHARGE) requests = cumulativeCost / MIN_CHARGE;
        return IComputeEscrow.Voucher({
            terms: terms,
            sequence: uint32(sequence),
            cumulativeCost: uint64(cumulativeCost),
            requestCount: uint32(requests),
            inputTokens: uint32(requests * 100),
            outputTokens: uint32(requests * 50),
            latencyMs: uint32(requests * 10),
            receiptHead: keccak256(abi.encode(terms.salt, sequence)),
            isFinal: isFinal
        });
    }

    function _signVoucher(
        IComputeEscrow.Voucher memory voucher,
        uint256 agentKey,
        uint256 signerKey
    ) internal returns (IComputeEscrow.SignedVoucher memory signed) {
        bytes32 digest = escrow.voucherDigest(voucher);
        signed = IComputeEscrow.SignedVoucher({
            voucher: voucher,
            agentSignature: _sign(agentKey, digest),
            providerSignature: _sign(signerKey, digest)
        });
    }

    /// @dev `signed` as a one-voucher batch, the form settle and closeCooperative take.
    function _one(IComputeEscrow.SignedVoucher memory signed)
        internal
        pure
        returns (IComputeEscrow.SignedVoucher[] memory batch)
    {
        batch = new IComputeEscrow.SignedVoucher[](1);
        batch[0] = signed;
    }
}
