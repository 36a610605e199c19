// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice Test-only ERC20 (6 decimals) that, when armed, calls back into `hookTarget` with `callData` on
/// its next transfer or transferFrom, and records whether that reentrant call reverted.
contract ReentrantToken is ERC20 {
    /// @notice The contract the hook calls back into.
    address public hookTarget;
    /// @notice The calldata of the reentrant call.
    bytes public callData;
    /// @notice Whether the next transfer triggers the hook.
    bool public armed;
    /// @notice Whether the hook ran.
    bool public attempted;
    /// @notice Whether the reentrant call reverted.
    bool public reentryReverted;
    /// @notice The reentrant call's revert data (empty if it succeeded).
    bytes public reentryRevertData;

    constructor() ERC20("Reentrant USD", "RUSD") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Six decimals, like USDC.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Arms the hook: the next transfer calls `target_` with `callData_`.
    function arm(address target_, bytes calldata callData_) external {
        hookTarget = target_;
        callData = callData_;
        armed = true;
        attempted = false;
        reentryReverted = false;
        delete reentryRevertData;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && from != address(0) && to != address(0)) {
            armed = false;
            attempted = true;
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory data) = hookTarget.call(callData);
            reentryReverted = !ok;
            if (!ok) reentryRevertData = data;
        }
    }
}
