// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title BlacklistLib
/// @notice Reads USDC's blacklist (`isBlacklisted(address)`, FiatToken v1 and later).
library BlacklistLib {
    /// @notice Whether `token` reports `account` as blacklisted. False for a token without a blacklist
    /// (the call fails or returns no word), so the ledger also works with plain ERC-20 tokens.
    /// @dev Hand-written call (no ABI encoding in memory): it runs on every withdrawal and transfer.
    function isBlacklisted(IERC20 token, address account) internal view returns (bool blacklisted) {
        assembly ("memory-safe") {
            mstore(0x00, 0xfe575a87) // isBlacklisted(address)
            mstore(0x20, shr(96, shl(96, account)))
            let ok := staticcall(gas(), token, 0x1c, 0x24, 0x00, 0x20)
            blacklisted := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1)))
        }
    }
}
