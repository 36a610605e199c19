// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ISplitsLedger} from "../interfaces/ISplitsLedger.sol";

/// @title SplitLib
/// @notice Validation, packing and code-storage of split definitions.
/// @dev A split's entries are stored as the runtime code of a data contract created with CREATE2
/// (zero salt: the address follows from the packed definition itself), so reading one entry costs
/// 3 gas per word instead of a cold SLOAD. The code is `0x00` (STOP, so it can never run) followed
/// by one 32-byte word per entry: `account (160 bits) | share (32 bits) | unused (63 bits) |
/// isSplit (1 bit)`. The last entry is the remainder recipient with the share the others leave over.
library SplitLib {
    /// @notice Shares are parts of this scale (parts per million).
    uint256 internal constant SHARE_SCALE = 1_000_000;

    uint256 private constant _SHARE_SHIFT = 64;
    uint256 private constant _ACCOUNT_SHIFT = 96;

    /// @notice Checks the recipients are sorted, non-zero and have shares within the scale.
    /// @return remainderShare The share left for the remainder recipient.
    function validateShape(ISplitsLedger.Split calldata split, uint256 maxRecipients)
        internal
        pure
        returns (uint32 remainderShare)
    {
        ISplitsLedger.SplitRecipient[] calldata recipients = split.recipients;
        uint256 count = recipients.length;
        if (count == 0 || count > maxRecipients) revert ISplitsLedger.LedgerSplitRecipientCount(count, maxRecipients);
        if (split.remainderRecipient == address(0)) revert ISplitsLedger.LedgerInvalidReceiver(address(0));
        uint256 total;
        address previous;
        for (uint256 i; i < count; ++i) {
            address account = recipients[i].account;
            if (account <= previous) {
                if (account == address(0)) revert ISplitsLedger.LedgerInvalidReceiver(address(0));
                revert ISplitsLedger.LedgerSplitRecipientsUnsorted(i);
            }
            previous = account;
            uint256 share = recipients[i].share;
            if (share == 0) revert ISplitsLedger.LedgerSplitInvalidShares(0, SHARE_SCALE);
            total += share;
        }
        if (total > SHARE_SCALE) revert ISplitsLedger.LedgerSplitInvalidShares(total, SHARE_SCALE);
        // Safe: total <= SHARE_SCALE < 2^32.
        remainderShare = uint32(SHARE_SCALE - total);
    }


    /// @notice Packs one entry into a word.
    function pack(address account, uint256 share, bool isSplit) internal pure returns (uint256) {
        return (uint256(uint160(account)) << _ACCOUNT_SHIFT) | (share << _SHARE_SHIFT) | (isSplit ? 1 : 0);
    }

    /// @notice Unpacks one entry word.
    function unpack(uint256 word) internal pure returns (address account, uint256 share, bool isSplit) {
        account = address(uint160(word >> _ACCOUNT_SHIFT));
        share = uint32(word >> _SHARE_SHIFT);
        isSplit = word & 1 == 1;
    }

    /// @notice The creation code of a data contract whose runtime code is `0x00 ++ entries`.
    function creationCode(uint256[] memory entries) internal pure returns (bytes memory) {
        bytes memory runtime = abi.encodePacked(hex"00", entries);
        // PUSH2 len, DUP1, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURNDATASIZE, RETURN: returns the
        // `len` bytes that follow this 10-byte prefix as the contract's code.
        return abi.encodePacked(hex"61", uint16(runtime.length), hex"80600a3d393df3", runtime);
    }

    /// @notice Deploys the data contract for `entries` at its CREATE2 address.
    function write(uint256[] memory entries) internal returns (address pointer) {
        bytes memory code = creationCode(entries);
        assembly ("memory-safe") {
            pointer := create2(0, add(code, 0x20), mload(code), 0)
        }
        // A failed CREATE2 returns zero; the definition was validated, so only gas exhaustion gets here.
        if (pointer == address(0)) revert ISplitsLedger.LedgerNotASplit(pointer);
    }

    /// @notice Reads every entry word of the split stored at `pointer`.
    function read(address pointer) internal view returns (uint256[] memory entries) {
        assembly ("memory-safe") {
            let count := shr(5, sub(extcodesize(pointer), 1))
            entries := mload(0x40)
            mstore(entries, count)
            let data := add(entries, 0x20)
            extcodecopy(pointer, data, 1, shl(5, count))
            mstore(0x40, add(data, shl(5, count)))
        }
    }
}
