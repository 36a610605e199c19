// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title TokenPullLib
/// @notice Pulls deposits with a balance-change check, optionally after an EIP-2612 permit.
library TokenPullLib {
    using SafeERC20 for IERC20;

    /// @notice Thrown when the contract's token balance grew by less than the amount pulled.
    error TokenDepositMismatch(uint256 expected, uint256 received);

    /// @notice Pulls exactly `amount` of `token` from `from` into this contract.
    function pullExact(IERC20 token, address from, uint256 amount) internal {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TokenDepositMismatch(amount, received);
    }

    /// @notice Applies `owner`'s permit for this contract, ignoring failure (a front-run permit is
    /// already spent; the pull that follows fails on its own if the allowance is missing).
    function tryPermit(IERC20 token, address owner, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        internal
    {
        try IERC20Permit(address(token)).permit(owner, address(this), value, deadline, v, r, s) {} catch {}
    }
}
