// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IAgentMarketplace} from "../../../contracts/interfaces/IAgentMarketplace.sol";
import {IComputeEscrow} from "../../../contracts/interfaces/IComputeEscrow.sol";
import {IERC3009} from "../../../contracts/interfaces/IERC3009.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {ISplitsLedger} from "../../../contracts/interfaces/ISplitsLedger.sol";

// The tests reach the contracts through their interfaces plus the public constants below, and deploy
// them from the built artifacts (`TestBase._deploy`). So no test compiles a contract: the test build
// stays fast, and a mutated contract (npm run test:mutation) is tested without recompiling the tests.

/// @notice MockUSDC as the tests drive it: ERC-20, EIP-3009, and USDC's pause and blacklist.
interface IMockUSDC is IERC20, IERC3009 {
    /// @notice Thrown when anything but a balance read happens while the token is paused.
    error TokenPaused();
    /// @notice Thrown when a blacklisted account sends, receives, spends, approves or calls.
    error AccountBlacklisted(address account);

    function mint(address to, uint256 amount) external;
    function paused() external view returns (bool);
    function pause() external;
    function unpause() external;
    function isBlacklisted(address account) external view returns (bool);
    function blacklist(address account) external;
    function unBlacklist(address account) external;
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
    // solhint-disable-next-line func-name-mixedcase
    function TRANSFER_WITH_AUTHORIZATION_TYPEHASH() external view returns (bytes32);
}

/// @notice SplitsLedger's interface and public constants.
interface ITestLedger is ISplitsLedger {
    // solhint-disable func-name-mixedcase
    function MAX_RECIPIENTS() external view returns (uint256);
    function MAX_DEPTH() external view returns (uint256);
    function MAX_LEAVES() external view returns (uint256);
    function SHARE_SCALE() external view returns (uint256);
    // solhint-enable func-name-mixedcase
}

/// @notice ProviderRegistry's interface.
interface ITestRegistry is IProviderRegistry {}

/// @notice ComputeEscrow's interface and public constants.
interface ITestEscrow is IComputeEscrow {
    // solhint-disable func-name-mixedcase
    function MAX_FEE_BPS() external view returns (uint256);
    function SLASH_REWARD_BPS() external view returns (uint256);
    function MAX_BATCH() external view returns (uint256);
    function FINALIZED() external view returns (uint32);
    // solhint-enable func-name-mixedcase
}

/// @notice AgentMarketplace's interface and public constants.
interface ITestMarketplace is IAgentMarketplace {
    // solhint-disable func-name-mixedcase
    function MAX_COMPONENTS() external view returns (uint256);
    function MAX_PENDING() external view returns (uint256);
    // solhint-enable func-name-mixedcase
}
