// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IComputeEscrow} from "../interfaces/IComputeEscrow.sol";

/// @title SessionLib
/// @notice EIP-712 struct hashes of session terms and vouchers (the typehash strings are written
/// here once; the SDK's typed-data definitions are tested against them).
library SessionLib {
    /// @notice EIP-712 typehash of SessionTerms; a session's id is the struct hash of its terms.
    bytes32 internal constant SESSION_TERMS_TYPEHASH = keccak256(
        "SessionTerms(address agent,uint64 budgetId,uint32 providerId,uint32 modelId,uint32 inputPricePer1K,"
        "uint32 outputPricePer1K,uint32 minChargePerCall,uint64 maxSpend,uint32 deadline,uint64 salt)"
    );

    /// @notice EIP-712 typehash of Voucher.
    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(bytes32 sessionId,uint32 sequence,uint64 cumulativeCost,uint32 requestCount,uint32 inputTokens,"
        "uint32 outputTokens,uint32 latencyMs,bytes32 receiptHead,bool isFinal)"
    );

    /// @notice The session id: EIP-712 struct hash of `terms` (all fields are static, so the
    /// encoding is the typehash followed by the fields).
    function id(IComputeEscrow.SessionTerms calldata terms) internal pure returns (bytes32) {
        return keccak256(abi.encode(SESSION_TERMS_TYPEHASH, terms));
    }

    /// @notice EIP-712 struct hash of `voucher`.
    function hash(IComputeEscrow.Voucher calldata voucher) internal pure returns (bytes32) {
        return keccak256(abi.encode(VOUCHER_TYPEHASH, voucher));
    }
}
