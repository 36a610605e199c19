// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../interfaces/IComputeEscrow.sol";

/// @title SessionLib
/// @notice EIP-712 struct hashes of session terms and vouchers (the typehash strings are written
/// here once; the SDK's typed-data definitions are tested against them).
library SessionLib {
    /// @notice EIP-712 typehash of SessionTerms; a session's id is the struct hash of its terms.
    bytes32 internal constant SESSION_TERMS_TYPEHASH = keccak256(
        "SessionTerms(address agent,uint64 budgetId,uint32 providerId,uint32 modelId,address receiptSigner,"
        "uint32 inputPricePer1K,uint32 outputPricePer1K,uint32 minChargePerCall,uint16 feeBps,uint64 maxSpend,"
        "uint32 deadline,uint64 salt)"
    );

    /// @notice EIP-712 typehash of Voucher (its `terms` member is a nested SessionTerms).
    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(SessionTerms terms,uint32 sequence,uint64 cumulativeCost,uint32 requestCount,uint32 inputTokens,"
        "uint32 outputTokens,uint32 latencyMs,bytes32 receiptHead,bool isFinal)"
        "SessionTerms(address agent,uint64 budgetId,uint32 providerId,uint32 modelId,address receiptSigner,"
        "uint32 inputPricePer1K,uint32 outputPricePer1K,uint32 minChargePerCall,uint16 feeBps,uint64 maxSpend,"
        "uint32 deadline,uint64 salt)"
    );

    /// @notice The session id: EIP-712 struct hash of `terms`.
    /// @dev Both hashes read the struct as sent rather than decoding each field. A field that is not
    /// canonically encoded (dirty high bits) only yields a hash that matches no signature and no
    /// session, since signers hash the canonical encoding.
    function id(IComputeEscrow.SessionTerms calldata terms) internal pure returns (bytes32 result) {
        bytes32 typehash = SESSION_TERMS_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), terms, 0x180) // the 12 static fields
            result := keccak256(ptr, 0x1a0)
        }
    }

    /// @notice EIP-712 struct hash of `voucher`, given `sessionId` = id(voucher.terms): the nested
    /// struct's hash, which every caller has already computed.
    function hash(IComputeEscrow.Voucher calldata voucher, bytes32 sessionId) internal pure returns (bytes32 result) {
        bytes32 typehash = VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            mstore(add(ptr, 0x20), sessionId)
            calldatacopy(add(ptr, 0x40), add(voucher, 0x180), 0x100) // the 8 static fields after `terms`
            result := keccak256(ptr, 0x140)
        }
    }

    /// @notice Writes `next` over `state` with one SSTORE and no read: the struct fills its slot
    /// exactly, fields packed from the low-order bits in declaration order (Solidity's layout).
    function store(IComputeEscrow.SessionState storage state, IComputeEscrow.SessionState memory next) internal {
        uint256 word = uint256(next.settled) | uint256(next.sequence) << 64 | uint256(next.requestCount) << 96
            | uint256(next.inputTokens) << 128 | uint256(next.outputTokens) << 160 | uint256(next.latencyMs) << 192
            | uint256(next.claimEnd) << 224;
        assembly ("memory-safe") {
            sstore(state.slot, word)
        }
    }
}
