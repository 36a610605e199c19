// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {TestBase} from "./Vm.sol";

/// @notice Measures calls against Base's per-transaction gas cap (2^24, EIP-7825; SECURITY.md 18).
/// @dev A measured call is made with prepared calldata, so the figure is the callee's execution (plus
/// the CALL itself). The transaction it stands for also pays the intrinsic 21,000 and its calldata
/// (EIP-2028 4/16 gas per zero/non-zero byte, or the EIP-7623 floor of 10/40 when that is higher),
/// which `_transactionGas` adds: the cap applies to the whole transaction.
abstract contract GasCap is TestBase {
    /// @notice Base's per-transaction gas cap (EIP-7825), also the Solidity tests' block gas limit.
    uint256 internal constant TRANSACTION_GAS_CAP = 16_777_216;

    /// @notice Emitted for every measured call (visible with `-vvvv`; the figures are also asserted).
    /// @param what What was measured.
    /// @param executionGas Gas the call used.
    /// @param transactionGas executionGas plus the intrinsic and calldata gas of a transaction making it.
    event GasMeasured(string what, uint256 executionGas, uint256 transactionGas);

    /// @dev Calls `target` with `data`; returns whether it succeeded, its return data and the gas it used.
    /// Gas metering must be on (the caller resumes it around the measurement if it paused it).
    function _measuredCall(address target, bytes memory data)
        internal
        returns (bool ok, bytes memory result, uint256 executionGas)
    {
        uint256 before = gasleft();
        // solhint-disable-next-line avoid-low-level-calls
        (ok, result) = target.call(data);
        executionGas = before - gasleft();
    }

    /// @dev The gas of a transaction whose calldata is `data` and whose execution uses `executionGas`.
    function _transactionGas(bytes memory data, uint256 executionGas) internal pure returns (uint256) {
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 nonZeros = data.length - zeros;
        uint256 standard = 21_000 + 4 * zeros + 16 * nonZeros + executionGas;
        uint256 floor = 21_000 + 10 * (zeros + 4 * nonZeros);
        return standard > floor ? standard : floor;
    }

    /// @dev Makes the call (it must succeed), emits and returns its transaction gas, and asserts it is
    /// below the cap. Gas metering is paused on return.
    function _assertUnderCap(string memory what, address target, bytes memory data)
        internal
        returns (uint256 executionGas, uint256 transactionGas)
    {
        vm.resumeGasMetering();
        (bool ok, bytes memory result, uint256 used) = _measuredCall(target, data);
        vm.pauseGasMetering();
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        executionGas = used;
        transactionGas = _transactionGas(data, used);
        emit GasMeasured(what, executionGas, transactionGas);
        assertLt(transactionGas, TRANSACTION_GAS_CAP, string.concat(what, ": transaction gas under 2^24"));
    }
}
