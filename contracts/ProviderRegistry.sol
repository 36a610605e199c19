// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";
import {TokenPullLib} from "./libraries/TokenPullLib.sol";

/// @title ProviderRegistry
/// @notice Staked registry of inference providers, their models, prices and settlement metrics.
/// @dev The admin can only set the minimum stake and hand its role over (two steps, with a delay).
contract ProviderRegistry is IProviderRegistry, AccessControlDefaultAdminRules, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using TokenPullLib for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/
    /// @notice Longest endpoint URL, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 512;
    /// @notice Longest model name, in bytes.
    uint256 public constant MAX_MODEL_NAME_LENGTH = 128;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    IERC20 private immutable _TOKEN;
    ISplitsLedger private immutable _LEDGER;
    uint256 private immutable _UNSTAKE_DELAY;
    address private immutable _DEPLOYER;
    address private _escrow;
    uint256 private _minStake;
    uint256 private _providerCount;
    mapping(uint256 providerId => Provider) private _providers;
    mapping(uint256 providerId => mapping(uint256 modelId => Model)) private _models;
    mapping(uint256 providerId => Metrics) private _metrics;

    /// @param token_ The USDC token (immutable); the ledger must hold the same.
    /// @param ledger_ The ledger that holds the stakes (the registry must be one of its custodians).
    /// @param minStake_ Minimum stake (atomic USDC).
    /// @param unstakeDelay_ Seconds between an unstake request and its withdrawal.
    /// @param adminDelay Seconds a new admin must wait to accept the role (two-step transfer).
    /// @param admin Holder of the admin role.
    constructor(
        IERC20 token_,
        ISplitsLedger ledger_,
        uint256 minStake_,
        uint256 unstakeDelay_,
        uint48 adminDelay,
        address admin
    ) AccessControlDefaultAdminRules(adminDelay, admin) {
        _TOKEN = token_;
        _LEDGER = ledger_;
        _UNSTAKE_DELAY = unstakeDelay_;
        _DEPLOYER = msg.sender;
        _setMinStake(minStake_);
        token_.forceApprove(address(ledger_), type(uint256).max);
    }

    modifier onlyEscrow() {
        if (msg.sender != _escrow) revert RegistryNotEscrow(msg.sender);
        _;
    }

    modifier onlyProviderOwner(uint256 providerId) {
        address owner = _providers[providerId].owner;
        if (owner == address(0)) revert RegistryUnknownProvider(providerId);
        if (owner != msg.sender) revert RegistryNotProviderOwner(providerId, msg.sender);
        _;
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function token() external view returns (IERC20) {
        return _TOKEN;
    }

    /// @inheritdoc IProviderRegistry
    function ledger() external view returns (ISplitsLedger) {
        return _LEDGER;
    }

    /// @inheritdoc IProviderRegistry
    function escrow() external view returns (address) {
        return _escrow;
    }

    /// @inheritdoc IProviderRegistry
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IProviderRegistry
    function unstakeDelay() external view returns (uint256) {
        return _UNSTAKE_DELAY;
    }

    /// @inheritdoc IProviderRegistry
    function providerCount() external view returns (uint256) {
        return _providerCount;
    }

    /// @inheritdoc IProviderRegistry
    function getProvider(uint256 providerId) external view returns (Provider memory) {
        return _provider(providerId);
    }

    /// @inheritdoc IProviderRegistry
    function getModel(uint256 providerId, uint256 modelId) external view returns (Model memory) {
        return _model(providerId, modelId);
    }

    /// @inheritdoc IProviderRegistry
    function getMetrics(uint256 providerId) external view returns (Metrics memory) {
        _provider(providerId);
        return _metrics[providerId];
    }

    /// @inheritdoc IProviderRegistry
    function quote(uint256 providerId, uint256 modelId) external view returns (SessionQuote memory) {
        Provider storage provider = _provider(providerId);
        if (!provider.active) revert RegistryProviderInactive(providerId);
        Model storage model = _model(providerId, modelId);
        if (!model.active) revert RegistryModelRetired(providerId, modelId);
        return SessionQuote({
            inputPricePer1K: model.inputPricePer1K,
            outputPricePer1K: model.outputPricePer1K,
            minChargePerCall: provider.minChargePerCall,
            receiptSigner: provider.receiptSigner
        });
    }

    /// @inheritdoc IProviderRegistry
    function settlementParties(uint256 providerId)
        external
        view
        returns (address owner, address receiptSigner, address payout)
    {
        Provider storage provider = _provider(providerId);
        return (provider.owner, provider.receiptSigner, provider.payout);
    }

    /*//////////////////////////////////////////////////////////////
                          REGISTRATION & TERMS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function register(ProviderConfig calldata config, ModelConfig[] calldata models, uint256 stake)
        external
        nonReentrant
        returns (uint256 providerId)
    {
        return _register(config, models, stake);
    }

    /// @inheritdoc IProviderRegistry
    function registerWithPermit(
        ProviderConfig calldata config,
        ModelConfig[] calldata models,
        uint256 stake,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 providerId) {
        _TOKEN.tryPermit(msg.sender, stake, deadline, v, r, s);
        return _register(config, models, stake);
    }

    /// @inheritdoc IProviderRegistry
    function updateProvider(uint256 providerId, ProviderConfig calldata config)
        external
        onlyProviderOwner(providerId)
    {
        _writeConfig(providerId, config);
        emit ProviderUpdated(providerId, config);
    }

    /// @inheritdoc IProviderRegistry
    function addModel(uint256 providerId, ModelConfig calldata model)
        external
        onlyProviderOwner(providerId)
        returns (uint256 modelId)
    {
        return _addModel(providerId, model);
    }

    /// @inheritdoc IProviderRegistry
    function repriceModel(uint256 providerId, uint256 modelId, uint32 inputPricePer1K, uint32 outputPricePer1K)
        external
        onlyProviderOwner(providerId)
    {
        Model storage model = _model(providerId, modelId);
        if (!model.active) revert RegistryModelRetired(providerId, modelId);
        model.inputPricePer1K = inputPricePer1K;
        model.outputPricePer1K = outputPricePer1K;
        emit ModelRepriced(providerId, modelId, inputPricePer1K, outputPricePer1K);
    }

    /// @inheritdoc IProviderRegistry
    function retireModel(uint256 providerId, uint256 modelId) external onlyProviderOwner(providerId) {
        Model storage model = _model(providerId, modelId);
        if (!model.active) revert RegistryModelRetired(providerId, modelId);
        model.active = false;
        emit ModelRetired(providerId, modelId);
    }

    /// @inheritdoc IProviderRegistry
    function deactivate(uint256 providerId) external onlyProviderOwner(providerId) {
        if (!_providers[providerId].active) revert RegistryProviderInactive(providerId);
        _setActive(providerId, false);
    }

    /// @inheritdoc IProviderRegistry
    function reactivate(uint256 providerId) external onlyProviderOwner(providerId) {
        Provider storage provider = _providers[providerId];
        if (provider.slashed) revert RegistryProviderSlashed(providerId);
        if (provider.stake < _minStake) revert RegistryStakeTooLow(provider.stake, _minStake);
        _setActive(providerId, true);
    }

    /*//////////////////////////////////////////////////////////////
                                STAKING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function addStake(uint256 providerId, uint256 amount) external nonReentrant {
        Provider storage provider = _provider(providerId);
        if (provider.slashed) revert RegistryProviderSlashed(providerId);
        uint256 stake = provider.stake + amount;
        if (amount == 0 || stake > type(uint96).max) revert RegistryInvalidAmount(amount);
        // Safe cast: checked against uint96 above.
        provider.stake = uint96(stake);
        emit StakeAdded(providerId, msg.sender, amount, stake);
        _depositStake(amount);
    }

    /// @inheritdoc IProviderRegistry
    function requestUnstake(uint256 providerId, uint256 amount) external onlyProviderOwner(providerId) {
        Provider storage provider = _providers[providerId];
        uint256 stake = provider.stake;
        if (amount == 0) revert RegistryInvalidAmount(amount);
        if (amount > stake) revert RegistryInsufficientStake(providerId, stake, amount);
        uint256 availableAt = block.timestamp + _UNSTAKE_DELAY;
        // Safe casts: amount <= stake < 2^96, and stake + pending never exceed what was staked (< 2^96).
        provider.stake = uint96(stake - amount);
        provider.pendingUnstake += uint96(amount);
        provider.unstakeAvailableAt = uint40(availableAt);
        emit UnstakeRequested(providerId, amount, availableAt);
        if (provider.active && stake - amount < _minStake) _setActive(providerId, false);
    }

    /// @inheritdoc IProviderRegistry
    function withdrawUnstaked(uint256 providerId) external nonReentrant onlyProviderOwner(providerId) {
        Provider storage provider = _providers[providerId];
        uint256 amount = provider.pendingUnstake;
        uint256 availableAt = provider.unstakeAvailableAt;
        if (amount == 0 || block.timestamp < availableAt) revert RegistryUnstakeNotReady(providerId, availableAt);
        if (!_LEDGER.canMove(msg.sender)) revert RegistryOwnerRestricted(providerId, msg.sender);
        provider.pendingUnstake = 0;
        provider.unstakeAvailableAt = 0;
        emit UnstakeWithdrawn(providerId, msg.sender, amount);
        _LEDGER.withdraw(msg.sender, amount);
    }

    /// @inheritdoc IProviderRegistry
    function slash(uint256 providerId) external nonReentrant onlyEscrow returns (uint256 amount) {
        Provider storage provider = _provider(providerId);
        amount = uint256(provider.stake) + provider.pendingUnstake;
        provider.stake = 0;
        provider.pendingUnstake = 0;
        provider.unstakeAvailableAt = 0;
        provider.slashed = true;
        if (provider.active) _setActive(providerId, false);
        emit ProviderSlashed(providerId, amount);
        if (amount != 0) _LEDGER.transfer(msg.sender, amount);
    }

    /*//////////////////////////////////////////////////////////////
                          SETTLEMENT & ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function bindEscrow(address escrow_) external {
        if (msg.sender != _DEPLOYER || _escrow != address(0)) revert RegistryEscrowLocked();
        if (escrow_ == address(0)) revert RegistryZeroAddress();
        _escrow = escrow_;
        emit EscrowBound(escrow_);
    }

    /// @inheritdoc IProviderRegistry
    function recordSettlement(uint256 providerId, Metrics calldata delta) external onlyEscrow {
        _provider(providerId);
        Metrics storage metrics = _metrics[providerId];
        metrics.requests += delta.requests;
        metrics.inputTokens += delta.inputTokens;
        metrics.outputTokens += delta.outputTokens;
        metrics.latencyMs += delta.latencyMs;
        metrics.earnings += delta.earnings;
        emit SettlementRecorded(
            providerId, delta.requests, delta.inputTokens, delta.outputTokens, delta.latencyMs, delta.earnings
        );
    }

    /// @inheritdoc IProviderRegistry
    function setMinStake(uint256 minStake_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinStake(minStake_);
    }

    /*//////////////////////////////////////////////////////////////
                               INTERNALS
    //////////////////////////////////////////////////////////////*/

    function _register(ProviderConfig calldata config, ModelConfig[] calldata models, uint256 stake)
        private
        returns (uint256 providerId)
    {
        if (stake < _minStake) revert RegistryStakeTooLow(stake, _minStake);
        if (stake > type(uint96).max) revert RegistryInvalidAmount(stake);
        providerId = ++_providerCount;
        Provider storage provider = _providers[providerId];
        provider.owner = msg.sender;
        provider.active = true;
        // Safe cast: checked against uint96 above.
        provider.stake = uint96(stake);
        _writeConfig(providerId, config);
        emit ProviderRegistered(providerId, msg.sender, config);
        emit StakeAdded(providerId, msg.sender, stake, stake);
        for (uint256 i; i < models.length; ++i) {
            _addModel(providerId, models[i]);
        }
        _depositStake(stake);
    }

    /// @dev Pulls `amount` USDC from the caller and keeps it as the registry's ledger balance.
    function _depositStake(uint256 amount) private {
        _TOKEN.pullExact(msg.sender, amount);
        _LEDGER.pay(address(this), amount);
    }

    function _writeConfig(uint256 providerId, ProviderConfig calldata config) private {
        uint256 endpointLength = bytes(config.endpoint).length;
        if (endpointLength == 0 || endpointLength > MAX_ENDPOINT_LENGTH) {
            revert RegistryInvalidString(endpointLength, MAX_ENDPOINT_LENGTH);
        }
        if (config.rateLimitPerMinute == 0) revert RegistryInvalidLimit();
        if (config.payout == address(0) || config.receiptSigner == address(0)) revert RegistryZeroAddress();

        Provider storage provider = _providers[providerId];
        provider.endpoint = config.endpoint;
        provider.providerType = config.providerType;
        provider.rateLimitPerMinute = config.rateLimitPerMinute;
        provider.minChargePerCall = config.minChargePerCall;
        provider.features = config.features;
        provider.receiptSigner = config.receiptSigner;
        provider.payout = config.payout;
    }

    function _addModel(uint256 providerId, ModelConfig calldata config) private returns (uint256 modelId) {
        uint256 nameLength = bytes(config.name).length;
        if (nameLength == 0 || nameLength > MAX_MODEL_NAME_LENGTH) {
            revert RegistryInvalidString(nameLength, MAX_MODEL_NAME_LENGTH);
        }
        if (config.maxContextTokens == 0) revert RegistryInvalidLimit();
        Provider storage provider = _providers[providerId];
        modelId = provider.modelCount++;
        _models[providerId][modelId] = Model({
            inputPricePer1K: config.inputPricePer1K,
            outputPricePer1K: config.outputPricePer1K,
            maxContextTokens: config.maxContextTokens,
            active: true,
            name: config.name
        });
        emit ModelAdded(providerId, modelId, config);
    }

    function _setActive(uint256 providerId, bool active) private {
        _providers[providerId].active = active;
        emit ProviderActiveSet(providerId, active);
    }

    function _setMinStake(uint256 minStake_) private {
        if (minStake_ == 0 || minStake_ > type(uint96).max) revert RegistryInvalidAmount(minStake_);
        _minStake = minStake_;
        emit MinStakeSet(minStake_);
    }

    function _provider(uint256 providerId) private view returns (Provider storage provider) {
        provider = _providers[providerId];
        if (provider.owner == address(0)) revert RegistryUnknownProvider(providerId);
    }

    function _model(uint256 providerId, uint256 modelId) private view returns (Model storage model) {
        if (modelId >= _provider(providerId).modelCount) revert RegistryUnknownModel(providerId, modelId);
        return _models[providerId][modelId];
    }
}
