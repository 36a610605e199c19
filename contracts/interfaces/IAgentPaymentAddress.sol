// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ISplitsLedger} from "./ISplitsLedger.sol";

/// @title IAgentPaymentAddress
/// @notice The payment address of one listed agent: an EIP-1167 clone (CREATE2) that receives USDC
/// from anyone (plain transfers, x402 settlements) and lets only the marketplace move it, into the
/// ledger, credited to the marketplace.
interface IAgentPaymentAddress {
    /// @notice Thrown when anyone but the marketplace tries to move the address's USDC.
    error PaymentAddressUnauthorized(address caller);

    /// @notice The marketplace, the only caller of `deposit`.
    function marketplace() external view returns (address);

    /// @notice The token this address holds (USDC).
    function token() external view returns (IERC20);

    /// @notice The ledger its USDC goes to.
    function ledger() external view returns (ISplitsLedger);

    /// @notice Pays `amount` of the token into the ledger for the marketplace's balance. Marketplace only.
    function deposit(uint256 amount) external;
}
