// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title TallyLib
/// @notice An in-memory map from account to amount that remembers first-seen order, used to add up
/// a batch's credits per recipient before paying each recipient once.
/// @dev Open addressing with linear probing over a power-of-two table at least twice the capacity, so
/// a probe always ends on an empty slot. Keys are hashed by multiplication with an odd constant
/// (bits 128+ of the product mix every low bit of the address). Adding more distinct accounts than
/// the capacity given to `create` is a caller bug and panics (array index out of bounds).
library TallyLib {
    /// @notice The tally. `accounts` and `amounts` are parallel; only their first `count` entries are used.
    struct Tally {
        address[] accounts;
        uint256[] amounts;
        uint256[] slots;
        uint256 count;
    }

    uint256 private constant _MULTIPLIER = 0x9e3779b97f4a7c15f39cc0605cedc8341082276bf3a27251f86c6a11d0c18e95;

    /// @notice An empty tally for at most `capacity` distinct accounts.
    function create(uint256 capacity) internal pure returns (Tally memory tally) {
        uint256 size = 8;
        while (size < capacity * 2) size <<= 1;
        tally.accounts = new address[](capacity);
        tally.amounts = new uint256[](capacity);
        tally.slots = new uint256[](size);
    }

    /// @notice Adds `amount` to `account`'s entry (created on first sight); a zero amount is ignored.
    function add(Tally memory tally, address account, uint256 amount) internal pure {
        if (amount == 0) return;
        uint256[] memory slots = tally.slots;
        uint256 mask = slots.length - 1;
        uint256 index;
        // Unchecked: the multiplication is meant to wrap; the index stays masked.
        unchecked {
            index = (uint256(uint160(account)) * _MULTIPLIER >> 128) & mask;
        }
        while (true) {
            uint256 position = slots[index];
            if (position == 0) break;
            if (tally.accounts[position - 1] == account) {
                tally.amounts[position - 1] += amount;
                return;
            }
            index = (index + 1) & mask;
        }
        uint256 next = tally.count;
        tally.accounts[next] = account;
        tally.amounts[next] = amount;
        tally.count = next + 1;
        slots[index] = next + 1;
    }

    /// @notice The tally's entries, in first-seen order. The returned arrays share memory with the
    /// tally (truncated to its count): add nothing afterwards.
    function entries(Tally memory tally) internal pure returns (address[] memory accounts, uint256[] memory amounts) {
        accounts = tally.accounts;
        amounts = tally.amounts;
        uint256 count = tally.count;
        assembly ("memory-safe") {
            mstore(accounts, count)
            mstore(amounts, count)
        }
    }
}
