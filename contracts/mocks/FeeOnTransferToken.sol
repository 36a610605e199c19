// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice Test-only ERC20 that burns 1% of every transfer, so the receiver gets less than was sent.
/// Used to show that deposits are checked against the balance actually received. Never deploy it.
contract FeeOnTransferToken is ERC20 {
    /// @notice Fee in basis points burnt from every transfer between two accounts.
    uint256 public constant FEE_BPS = 100;

    constructor() ERC20("Fee On Transfer", "FOT") {}

    /// @notice Mints `amount` to `to`; anyone may.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @dev Burns FEE_BPS of transfers (not of mints or burns).
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value * FEE_BPS / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
