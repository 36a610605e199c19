// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IAgentPaymentAddress
/// @notice The payment address of one listed agent: an EIP-1167 clone (CREATE2, salt = agent id) that
/// receives USDC from anyone (plain transfers, x402 settlements) and lets only the marketplace move it.
interface IAgentPaymentAddress {
    /// @notice Thrown when anyone but the marketplace tries to move the address's USDC.
    error PaymentAddressUnauthorized(address caller);

    /// @notice The marketplace, the only caller of `sweep`.
    function marketplace() external view returns (address);

    /// @notice The token this address pays out (USDC).
    function token() external view returns (IERC20);

    /// @notice Transfers `amount` of the token to `to`. Marketplace only.
    function sweep(address to, uint256 amount) external;
}
