// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAgentMarketplace} from "../interfaces/IAgentMarketplace.sol";

/// @title FlowOfFundsLib
/// @notice Validation, hashing and split arithmetic of an agent's flow of funds.
/// @dev Outputs are indexed in the flow's order: fixed amounts, then shares, then the remainder.
/// Every split hands out exactly the amount it is given (each part is capped by what is left and the
/// remainder takes the rest), which `test/solidity/AgentMarketplace.t.sol` fuzzes.
library FlowOfFundsLib {
    /// @notice A flow's amounts and shares in memory: everything splitting needs (no recipients).
    struct Amounts {
        uint256[] fixedAmounts;
        uint256[] shares;
        uint256 payerReferrerShare;
        uint256 payeeReferrerShare;
    }

    /// @notice Shares and referral shares are parts of this scale (parts per million, as in the ledger).
    uint256 internal constant SHARE_SCALE = 1_000_000;

    /// @notice The hash a flow is stored as: keccak256 of its ABI encoding.
    function hash(IAgentMarketplace.FlowOfFunds calldata flow) internal pure returns (bytes32) {
        return keccak256(abi.encode(flow));
    }

    /// @notice Number of outputs: fixed amounts + shares + the remainder.
    function outputCount(IAgentMarketplace.FlowOfFunds calldata flow) internal pure returns (uint256) {
        return flow.fixedAmounts.length + flow.shares.length + 1;
    }

    /// @notice The recipient of output `index`.
    function recipientAt(IAgentMarketplace.FlowOfFunds calldata flow, uint256 index)
        internal
        pure
        returns (IAgentMarketplace.Recipient calldata)
    {
        uint256 fixedCount = flow.fixedAmounts.length;
        if (index < fixedCount) return flow.fixedAmounts[index].recipient;
        index -= fixedCount;
        if (index < flow.shares.length) return flow.shares[index].recipient;
        return flow.remainder;
    }

    /// @notice Checks a flow's shape against `pricePerCall`: at most `maxComponents` fixed amounts and
    /// `maxComponents` shares, well-formed recipients, no zero amount or share, shares and referral
    /// shares each within the scale, and one call's fixed amounts plus referral rewards within its price
    /// (so a full call never caps a part). Whether splits and budgets exist is the caller's to check.
    function validate(IAgentMarketplace.FlowOfFunds calldata flow, uint256 pricePerCall, uint256 maxComponents)
        internal
        pure
    {
        uint256 fixedCount = flow.fixedAmounts.length;
        uint256 shareCount = flow.shares.length;
        if (fixedCount > maxComponents || shareCount > maxComponents) {
            uint256 count = fixedCount > shareCount ? fixedCount : shareCount;
            revert IAgentMarketplace.MarketplaceFlowTooManyComponents(count, maxComponents);
        }
        uint256 committed;
        for (uint256 i; i < fixedCount; ++i) {
            _checkRecipient(flow.fixedAmounts[i].recipient, i, false);
            uint256 amount = flow.fixedAmounts[i].amount;
            if (amount == 0) revert IAgentMarketplace.MarketplaceFlowZeroComponent(i);
            committed += amount;
        }
        uint256 shareTotal;
        for (uint256 j; j < shareCount; ++j) {
            _checkRecipient(flow.shares[j].recipient, fixedCount + j, false);
            uint256 share = flow.shares[j].share;
            if (share == 0) revert IAgentMarketplace.MarketplaceFlowZeroComponent(fixedCount + j);
            shareTotal += share;
        }
        if (shareTotal > SHARE_SCALE) revert IAgentMarketplace.MarketplaceFlowInvalidShares(shareTotal, SHARE_SCALE);
        uint256 referralTotal = uint256(flow.payerReferrerShare) + flow.payeeReferrerShare;
        if (referralTotal > SHARE_SCALE) {
            revert IAgentMarketplace.MarketplaceFlowInvalidShares(referralTotal, SHARE_SCALE);
        }
        _checkRecipient(flow.remainder, fixedCount + shareCount, true);
        committed += pricePerCall * flow.payerReferrerShare / SHARE_SCALE
            + pricePerCall * flow.payeeReferrerShare / SHARE_SCALE;
        if (committed > pricePerCall) revert IAgentMarketplace.MarketplaceFlowExceedsPrice(committed, pricePerCall);
    }

    /// @notice Reads what splitting needs (amounts and shares) out of calldata once, so that the many
    /// splits of a batch run on memory.
    function amounts(IAgentMarketplace.FlowOfFunds calldata flow) internal pure returns (Amounts memory terms) {
        uint256 fixedCount = flow.fixedAmounts.length;
        uint256 shareCount = flow.shares.length;
        terms.fixedAmounts = new uint256[](fixedCount);
        terms.shares = new uint256[](shareCount);
        for (uint256 i; i < fixedCount; ++i) {
            terms.fixedAmounts[i] = flow.fixedAmounts[i].amount;
        }
        for (uint256 j; j < shareCount; ++j) {
            terms.shares[j] = flow.shares[j].share;
        }
        terms.payerReferrerShare = flow.payerReferrerShare;
        terms.payeeReferrerShare = flow.payeeReferrerShare;
    }

    /// @notice Splits one call's payment of `amount` (see `IAgentMarketplace.FlowOfFunds` for the order).
    /// The referral rewards are reported on their own; the caller pays an unset referrer's to the remainder.
    function split(Amounts memory terms, uint256 amount)
        internal
        pure
        returns (IAgentMarketplace.PaymentSplit memory parts)
    {
        parts.outputs = new uint256[](terms.fixedAmounts.length + terms.shares.length + 1);
        (parts.payerReferrerReward, parts.payeeReferrerReward) = addSplit(terms, amount, parts.outputs);
    }

    /// @notice Splits one call's payment of `amount` and adds its outputs to `outputs` (one entry per
    /// output, in the flow's order); returns its referral rewards.
    function addSplit(Amounts memory terms, uint256 amount, uint256[] memory outputs)
        internal
        pure
        returns (uint256 payerReward, uint256 payeeReward)
    {
        uint256[] memory fixedAmounts = terms.fixedAmounts;
        uint256[] memory shares = terms.shares;
        uint256 fixedCount = fixedAmounts.length;
        uint256 left = amount;
        // Unchecked subtractions: every part is at most `left` (capped by _min, or a share of at most
        // `left` since the shares add up to at most SHARE_SCALE, which `validate` ensures).
        unchecked {
            for (uint256 i; i < fixedCount && left != 0; ++i) {
                uint256 part = _min(fixedAmounts[i], left);
                outputs[i] += part;
                left -= part;
            }
            payerReward = _min(amount * terms.payerReferrerShare / SHARE_SCALE, left);
            left -= payerReward;
            payeeReward = _min(amount * terms.payeeReferrerShare / SHARE_SCALE, left);
            left -= payeeReward;
            uint256 base = left;
            for (uint256 j; j < shares.length; ++j) {
                uint256 part = base * shares[j] / SHARE_SCALE;
                outputs[fixedCount + j] += part;
                left -= part;
            }
        }
        outputs[outputs.length - 1] += left;
    }

    /// @notice Splits a payment of `amount` to an agent priced `pricePerCall`: ⌊amount / price⌋ full
    /// calls plus one partial call of the rest.
    function splitPayment(Amounts memory terms, uint256 pricePerCall, uint256 amount)
        internal
        pure
        returns (IAgentMarketplace.PaymentSplit memory parts)
    {
        parts = split(terms, pricePerCall);
        uint256 calls = amount / pricePerCall;
        uint256[] memory outputs = parts.outputs;
        for (uint256 k; k < outputs.length; ++k) {
            outputs[k] *= calls;
        }
        (uint256 payerReward, uint256 payeeReward) = addSplit(terms, amount % pricePerCall, outputs);
        parts.payerReferrerReward = parts.payerReferrerReward * calls + payerReward;
        parts.payeeReferrerReward = parts.payeeReferrerReward * calls + payeeReward;
    }

    /// @dev A Budget names only a non-zero budget id; an Account or Split only a non-zero account,
    /// except that the remainder may be the zero Account (the treasury). One encoding per meaning
    /// keeps the flow hash canonical.
    function _checkRecipient(IAgentMarketplace.Recipient calldata recipient, uint256 index, bool isRemainder)
        private
        pure
    {
        IAgentMarketplace.RecipientKind kind = recipient.kind;
        bool treasury = isRemainder && kind == IAgentMarketplace.RecipientKind.Account;
        bool valid = kind == IAgentMarketplace.RecipientKind.Budget
            ? recipient.account == address(0) && recipient.budgetId != 0
            : recipient.budgetId == 0 && (recipient.account != address(0) || treasury);
        if (!valid) revert IAgentMarketplace.MarketplaceFlowInvalidRecipient(index);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
