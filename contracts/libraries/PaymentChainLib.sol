// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title PaymentChainLib
/// @notice The per-agent hash chain of payments made through the marketplace and not yet distributed.
/// @dev A chain state is one word: the top 224 bits are a hash, the low 32 bits count the payments
/// appended since the last distribution. Appending a payment:
/// `next = (keccak256(abi.encode(state, payer, referrer, amount)) & ~COUNT_MASK) | (count(state) + 1)`.
/// A distribution re-hashes the pending payments from the chain's base (its state at the previous
/// distribution, count zero) and must reach the current head: by second-preimage resistance that is
/// only possible with exactly the payments appended, in order. It then zeroes the count, which makes
/// the state the next base; the hash part is never reset, so no list of payments re-hashes to a later
/// head from an earlier base and nothing can be distributed twice.
library PaymentChainLib {
    /// @notice The low bits of a state that hold its pending count.
    uint256 internal constant COUNT_MASK = 0xffffffff;

    /// @notice The first state of agent `agentId`'s chain: non-zero, so the first payment rewrites a
    /// non-zero slot, and distinct per marketplace and agent.
    function genesis(uint256 agentId) internal view returns (bytes32) {
        return bytes32(uint256(keccak256(abi.encode(address(this), agentId))) & ~COUNT_MASK);
    }

    /// @notice The number of payments appended to `state` since the last distribution.
    function pending(bytes32 state) internal pure returns (uint256) {
        return uint256(state) & COUNT_MASK;
    }

    /// @notice `state` with its count zeroed: the base of the next segment after a distribution.
    function settled(bytes32 state) internal pure returns (bytes32) {
        return bytes32(uint256(state) & ~COUNT_MASK);
    }

    /// @notice The state after appending a payment of `amount` by `payer` whose referrer is `referrer`.
    /// @dev Hashes in the free memory without claiming it. The count wraps within its 32 bits, which
    /// only a list longer than any pending chain (MAX_PENDING) could reach and which then matches nothing.
    function link(bytes32 state, address payer, address referrer, uint256 amount)
        internal
        pure
        returns (bytes32 next)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, state)
            mstore(add(ptr, 0x20), shr(96, shl(96, payer)))
            mstore(add(ptr, 0x40), shr(96, shl(96, referrer)))
            mstore(add(ptr, 0x60), amount)
            let mask := 0xffffffff
            next := or(and(keccak256(ptr, 0x80), not(mask)), and(add(state, 1), mask))
        }
    }
}
