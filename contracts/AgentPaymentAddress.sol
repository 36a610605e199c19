// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IAgentPaymentAddress} from "./interfaces/IAgentPaymentAddress.sol";
import {ISplitsLedger} from "./interfaces/ISplitsLedger.sol";

/// @title AgentPaymentAddress
/// @notice The implementation behind every agent's payment address. The marketplace deploys it once
/// and each listing gets an EIP-1167 clone of it (45 bytes of code) at a CREATE2 address; the clone
/// delegates here, so `_MARKETPLACE`, `_TOKEN` and `_LEDGER` (immutables, in this code) hold for every clone.
/// @dev No receive or fallback: ETH sent to a payment address is refused.
contract AgentPaymentAddress is IAgentPaymentAddress {
    using SafeERC20 for IERC20;

    address private immutable _MARKETPLACE;
    IERC20 private immutable _TOKEN;
    ISplitsLedger private immutable _LEDGER;

    /// @param token_ The token payment addresses hold (USDC). The deployer is the marketplace.
    /// @param ledger_ The ledger their USDC is paid into.
    constructor(IERC20 token_, ISplitsLedger ledger_) {
        _MARKETPLACE = msg.sender;
        _TOKEN = token_;
        _LEDGER = ledger_;
    }

    /// @inheritdoc IAgentPaymentAddress
    function marketplace() external view returns (address) {
        return _MARKETPLACE;
    }

    /// @inheritdoc IAgentPaymentAddress
    function token() external view returns (IERC20) {
        return _TOKEN;
    }

    /// @inheritdoc IAgentPaymentAddress
    function ledger() external view returns (ISplitsLedger) {
        return _LEDGER;
    }

    /// @inheritdoc IAgentPaymentAddress
    function deposit(uint256 amount) external {
        if (msg.sender != _MARKETPLACE) revert PaymentAddressUnauthorized(msg.sender);
        _TOKEN.forceApprove(address(_LEDGER), amount);
        _LEDGER.pay(_MARKETPLACE, amount);
    }
}
