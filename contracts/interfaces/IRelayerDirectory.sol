// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IRelayerDirectory
/// @notice Where a receipt signer's relayer listens. A provider names its receipt signer in the
/// registry; whoever holds that signer's key announces here the URL of the relayer that signs with it.
/// Agents, the dApp and the CLI so find the relayer serving a provider from the chain alone:
/// provider -> receipt signer -> URL. Only the signer (directly, or by an EIP-712 signature that anyone
/// may submit) sets its own URL, so nobody can redirect another relayer's traffic.
interface IRelayerDirectory {
    /// @notice Emitted when `signer` announces `url` (empty: it withdrew its announcement).
    /// @param signer The receipt signer.
    /// @param url The relayer's public base URL.
    /// @param nonce The signer's announcement nonce this used (the next one is `nonce + 1`).
    event RelayerAnnounced(address indexed signer, string url, uint256 nonce);

    /// @notice Thrown when a URL is longer than `maxLength` bytes.
    error DirectoryUrlTooLong(uint256 length, uint256 maxLength);
    /// @notice Thrown when a signed announcement is submitted after its deadline.
    error DirectoryAnnouncementExpired(uint256 deadline);
    /// @notice Thrown when a signed announcement is not signed by `signer` (or reuses a nonce).
    error DirectoryInvalidSignature(address signer);

    /// @notice The longest URL, in bytes, the directory stores.
    function MAX_URL_LENGTH() external view returns (uint256);

    /// @notice The relayer URL `signer` announced, or "" when it announced none.
    function relayerUrl(address signer) external view returns (string memory);

    /// @notice The nonce `signer`'s next signed announcement must carry.
    function nonces(address signer) external view returns (uint256);

    /// @notice The EIP-712 digest `signer` signs to announce `url` with `nonce`, valid until `deadline`.
    function announcementDigest(address signer, string calldata url, uint256 nonce, uint256 deadline)
        external
        view
        returns (bytes32);

    /// @notice Announces `url` as the caller's relayer ("" withdraws it).
    function announce(string calldata url) external;

    /// @notice Announces `url` as `signer`'s relayer with `signer`'s EIP-712 signature (EOA or ERC-1271),
    /// which anyone may submit: a relayer's gas account submits for its receipt signers, which hold no ETH.
    function announceWithSignature(address signer, string calldata url, uint256 deadline, bytes calldata signature)
        external;
}
