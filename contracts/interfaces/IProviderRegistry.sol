// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ISplitsLedger} from "./ISplitsLedger.sol";

/// @title IProviderRegistry
/// @notice Providers stake USDC and register their endpoint, terms and models with per-token prices.
/// @dev Amounts are atomic USDC (6 decimals). Prices are per 1,000 tokens. Stakes are the registry's
/// balance in the SplitsLedger (a custodian there), so slashing is an internal credit that no token pause
/// or blacklist can stop. A stake stays slashable while an unstake is pending. Only the escrow bound at
/// deployment can slash, and only after it has checked an on-chain double-sign proof: no role, admin
/// included, can take a stake any other way.
interface IProviderRegistry {
    /// @notice How the provider runs its models.
    enum ProviderType {
        SelfHosted,
        Cloud,
        Decentralized
    }

    /// @notice The terms a provider sets at registration and may edit later.
    /// @param endpoint Base URL of its OpenAI-compatible API.
    /// @param providerType Self-hosted, cloud or decentralized.
    /// @param rateLimitPerMinute Requests per minute it accepts.
    /// @param minChargePerCall Minimum charge per inference (atomic USDC).
    /// @param features Bitmask of supported features (FEATURE_* constants of the SDK).
    /// @param receiptSigner Key that co-signs session states. Sessions snapshot it at open; changing it
    /// binds only sessions opened afterwards. Several providers may name one signer (a shared relayer).
    /// @param payout Account or ledger split that receives its earnings.
    struct ProviderConfig {
        string endpoint;
        ProviderType providerType;
        uint32 rateLimitPerMinute;
        uint32 minChargePerCall;
        uint64 features;
        address receiptSigner;
        address payout;
    }

    /// @notice A model as registered.
    /// @param name Model name as requested by clients (e.g. "llama-3.1-8b").
    /// @param inputPricePer1K Atomic USDC per 1,000 input tokens.
    /// @param outputPricePer1K Atomic USDC per 1,000 output tokens.
    /// @param maxContextTokens Longest context it accepts.
    struct ModelConfig {
        string name;
        uint32 inputPricePer1K;
        uint32 outputPricePer1K;
        uint32 maxContextTokens;
    }

    /// @notice Everything the registry holds about a provider.
    struct Provider {
        address owner;
        bool active;
        bool slashed;
        ProviderType providerType;
        uint32 rateLimitPerMinute;
        uint32 minChargePerCall;
        address receiptSigner;
        uint64 features;
        uint32 modelCount;
        address payout;
        uint96 stake;
        uint96 pendingUnstake;
        uint40 unstakeAvailableAt;
        string endpoint;
    }

    /// @notice A model with its state.
    struct Model {
        uint32 inputPricePer1K;
        uint32 outputPricePer1K;
        uint32 maxContextTokens;
        bool active;
        string name;
    }

    /// @notice Totals from settled sessions (average latency = latencyMs / requests).
    struct Metrics {
        uint64 requests;
        uint64 inputTokens;
        uint64 outputTokens;
        uint64 latencyMs;
        uint256 earnings;
    }

    /// @notice What the escrow snapshots into a session at open.
    struct SessionQuote {
        uint32 inputPricePer1K;
        uint32 outputPricePer1K;
        uint32 minChargePerCall;
        address receiptSigner;
    }

    /*//////////////////////////////////////////////////////////////
                                ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when no provider has id `providerId`.
    error RegistryUnknownProvider(uint256 providerId);
    /// @notice Thrown when provider `providerId` has no model `modelId`.
    error RegistryUnknownModel(uint256 providerId, uint256 modelId);
    /// @notice Thrown when `caller` is not the owner of provider `providerId`.
    error RegistryNotProviderOwner(uint256 providerId, address caller);
    /// @notice Thrown when a stake is below the minimum.
    error RegistryStakeTooLow(uint256 stake, uint256 minStake);
    /// @notice Thrown when an amount is zero or does not fit the registry's 96-bit stakes.
    error RegistryInvalidAmount(uint256 amount);
    /// @notice Thrown when unstaking more than is staked.
    error RegistryInsufficientStake(uint256 providerId, uint256 stake, uint256 needed);
    /// @notice Thrown when withdrawing an unstake before its delay passed (or with nothing pending).
    error RegistryUnstakeNotReady(uint256 providerId, uint256 availableAt);
    /// @notice Thrown when an endpoint or model name is empty or too long.
    error RegistryInvalidString(uint256 length, uint256 maxLength);
    /// @notice Thrown when the rate limit or a model's context length is zero.
    error RegistryInvalidLimit();
    /// @notice Thrown when an address field is zero.
    error RegistryZeroAddress();
    /// @notice Thrown when anyone but the deployer binds the escrow, or it is bound a second time.
    error RegistryEscrowLocked();
    /// @notice Thrown when anyone but the bound escrow slashes or records a settlement.
    error RegistryNotEscrow(address caller);
    /// @notice Thrown when a provider's owner may not move funds (frozen in the ledger, or blacklisted
    /// by the token) and so may not withdraw its unstake either.
    error RegistryOwnerRestricted(uint256 providerId, address owner);
    /// @notice Thrown when provider `providerId` is not active (deactivated or slashed).
    error RegistryProviderInactive(uint256 providerId);
    /// @notice Thrown when reactivating a slashed provider.
    error RegistryProviderSlashed(uint256 providerId);
    /// @notice Thrown when model `modelId` of provider `providerId` is retired.
    error RegistryModelRetired(uint256 providerId, uint256 modelId);

    /*//////////////////////////////////////////////////////////////
                                EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a provider registers.
    /// @param providerId Its id.
    /// @param owner Who controls it.
    /// @param config Its terms.
    event ProviderRegistered(uint256 indexed providerId, address indexed owner, ProviderConfig config);
    /// @notice Emitted when a provider's terms change.
    /// @param providerId The provider.
    /// @param config Its new terms.
    event ProviderUpdated(uint256 indexed providerId, ProviderConfig config);
    /// @notice Emitted when a provider is deactivated (`active` false) or reactivated.
    /// @param providerId The provider.
    /// @param active Its new state.
    event ProviderActiveSet(uint256 indexed providerId, bool active);
    /// @notice Emitted when a model is added.
    /// @param providerId The provider.
    /// @param modelId The model's id within it.
    /// @param model Its terms.
    event ModelAdded(uint256 indexed providerId, uint256 indexed modelId, ModelConfig model);
    /// @notice Emitted when a model's prices change (open sessions keep their snapshot).
    /// @param providerId The provider.
    /// @param modelId The model.
    /// @param inputPricePer1K New input price.
    /// @param outputPricePer1K New output price.
    event ModelRepriced(
        uint256 indexed providerId, uint256 indexed modelId, uint32 inputPricePer1K, uint32 outputPricePer1K
    );
    /// @notice Emitted when a model is retired.
    /// @param providerId The provider.
    /// @param modelId The model.
    event ModelRetired(uint256 indexed providerId, uint256 indexed modelId);
    /// @notice Emitted when stake is added.
    /// @param providerId The provider.
    /// @param from Who paid.
    /// @param amount Added.
    /// @param stake New stake.
    event StakeAdded(uint256 indexed providerId, address indexed from, uint256 amount, uint256 stake);
    /// @notice Emitted when an unstake is requested.
    /// @param providerId The provider.
    /// @param amount Moved to pending.
    /// @param availableAt When withdrawable.
    event UnstakeRequested(uint256 indexed providerId, uint256 amount, uint256 availableAt);
    /// @notice Emitted when a pending unstake is withdrawn.
    /// @param providerId The provider.
    /// @param to Receiver.
    /// @param amount Withdrawn.
    event UnstakeWithdrawn(uint256 indexed providerId, address indexed to, uint256 amount);
    /// @notice Emitted when a provider is slashed.
    /// @param providerId The provider.
    /// @param amount Stake and pending unstake taken (credited to the escrow's ledger balance).
    event ProviderSlashed(uint256 indexed providerId, uint256 amount);
    /// @notice Emitted once, when the deployer binds the escrow.
    /// @param escrow The only contract that may slash and record settlements.
    event EscrowBound(address escrow);
    /// @notice Emitted when the escrow records a settlement's totals.
    /// @param providerId The provider.
    /// @param requests Requests added.
    /// @param inputTokens Input tokens added.
    /// @param outputTokens Output tokens added.
    /// @param latencyMs Latency added.
    /// @param earnings Earnings added.
    event SettlementRecorded(
        uint256 indexed providerId,
        uint256 requests,
        uint256 inputTokens,
        uint256 outputTokens,
        uint256 latencyMs,
        uint256 earnings
    );
    /// @notice Emitted when the minimum stake changes.
    /// @param minStake The new minimum.
    event MinStakeSet(uint256 minStake);

    /*//////////////////////////////////////////////////////////////
                                VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The USDC token staked (immutable).
    function token() external view returns (IERC20);
    /// @notice The ledger that holds the stakes (immutable).
    function ledger() external view returns (ISplitsLedger);
    /// @notice The escrow that slashes and records settlements (zero until bound).
    function escrow() external view returns (address);
    /// @notice Minimum stake to register or reactivate.
    function minStake() external view returns (uint256);
    /// @notice Seconds between an unstake request and its withdrawal.
    function unstakeDelay() external view returns (uint256);
    /// @notice Number of providers ever registered (ids run from 1).
    function providerCount() external view returns (uint256);
    /// @notice Provider `providerId`.
    function getProvider(uint256 providerId) external view returns (Provider memory);
    /// @notice Model `modelId` of provider `providerId`.
    function getModel(uint256 providerId, uint256 modelId) external view returns (Model memory);
    /// @notice Settlement totals of provider `providerId`.
    function getMetrics(uint256 providerId) external view returns (Metrics memory);
    /// @notice Current prices of an active model of an active provider; reverts otherwise.
    function quote(uint256 providerId, uint256 modelId) external view returns (SessionQuote memory);
    /// @notice Current owner, receipt signer and payout of provider `providerId` (whatever its state).
    function settlementParties(uint256 providerId)
        external
        view
        returns (address owner, address receiptSigner, address payout);

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Registers a provider staking `stake` (approved beforehand) with its first models.
    function register(ProviderConfig calldata config, ModelConfig[] calldata models, uint256 stake)
        external
        returns (uint256 providerId);
    /// @notice Same as `register`, approving the stake with an EIP-2612 permit in the same transaction.
    function registerWithPermit(
        ProviderConfig calldata config,
        ModelConfig[] calldata models,
        uint256 stake,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 providerId);
    /// @notice Replaces provider `providerId`'s terms. Owner only.
    function updateProvider(uint256 providerId, ProviderConfig calldata config) external;
    /// @notice Adds a model. Owner only.
    function addModel(uint256 providerId, ModelConfig calldata model) external returns (uint256 modelId);
    /// @notice Changes a model's prices; sessions already open keep theirs. Owner only.
    function repriceModel(uint256 providerId, uint256 modelId, uint32 inputPricePer1K, uint32 outputPricePer1K)
        external;
    /// @notice Retires a model: no new sessions. Owner only.
    function retireModel(uint256 providerId, uint256 modelId) external;
    /// @notice Stops new sessions with the provider. Owner only.
    function deactivate(uint256 providerId) external;
    /// @notice Reopens a deactivated provider whose stake meets the minimum. Owner only.
    function reactivate(uint256 providerId) external;
    /// @notice Adds `amount` (approved beforehand) to provider `providerId`'s stake. Anyone may.
    function addStake(uint256 providerId, uint256 amount) external;
    /// @notice Moves `amount` of stake to pending; withdrawable after the delay, slashable until then.
    /// A provider left below the minimum stake is deactivated. Owner only.
    function requestUnstake(uint256 providerId, uint256 amount) external;
    /// @notice Sends the pending unstake to the owner's wallet once its delay has passed. Owner only;
    /// refused while the owner may not move funds (frozen or blacklisted), which stays slashable meanwhile.
    function withdrawUnstaked(uint256 providerId) external;
    /// @notice Binds the escrow. Deployer only, once (the deployment script does it).
    function bindEscrow(address escrow) external;
    /// @notice Takes the whole stake and pending unstake into the escrow's ledger balance, marks the
    /// provider slashed and deactivates it for good (also when nothing is left to take). Escrow only,
    /// after it has verified a double-sign proof.
    function slash(uint256 providerId) external returns (uint256 amount);
    /// @notice Adds a settlement's totals to the provider's metrics. Escrow only.
    function recordSettlement(uint256 providerId, Metrics calldata delta) external;
    /// @notice Sets the minimum stake. Admin only.
    function setMinStake(uint256 minStake) external;
}
