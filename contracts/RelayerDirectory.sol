// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IRelayerDirectory} from "./interfaces/IRelayerDirectory.sol";

/// @title RelayerDirectory
/// @notice Receipt signer -> relayer URL, set only by the signer. It holds no funds and has no admin:
/// an entry says where a signer's relayer listens, and whoever reads it still checks that relayer's
/// `GET /v1/relayer` and every receipt's signature, so a wrong or stale URL costs availability only.
contract RelayerDirectory is IRelayerDirectory, EIP712, Nonces {
    /// @notice EIP-712 typehash of a signed announcement.
    bytes32 public constant ANNOUNCEMENT_TYPEHASH =
        keccak256("Announcement(address signer,string url,uint256 nonce,uint256 deadline)");

    /// @inheritdoc IRelayerDirectory
    uint256 public constant MAX_URL_LENGTH = 256;

    mapping(address signer => string url) private _urls;

    constructor() EIP712("AgentMesh RelayerDirectory", "1") {}

    /// @inheritdoc IRelayerDirectory
    function relayerUrl(address signer) external view returns (string memory) {
        return _urls[signer];
    }

    /// @inheritdoc IRelayerDirectory
    function nonces(address signer) public view override(IRelayerDirectory, Nonces) returns (uint256) {
        return super.nonces(signer);
    }

    /// @inheritdoc IRelayerDirectory
    function announcementDigest(address signer, string calldata url, uint256 nonce, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(ANNOUNCEMENT_TYPEHASH, signer, keccak256(bytes(url)), nonce, deadline))
        );
    }

    /// @inheritdoc IRelayerDirectory
    function announce(string calldata url) external {
        _announce(msg.sender, url, _useNonce(msg.sender));
    }

    /// @inheritdoc IRelayerDirectory
    function announceWithSignature(address signer, string calldata url, uint256 deadline, bytes calldata signature)
        external
    {
        if (block.timestamp > deadline) revert DirectoryAnnouncementExpired(deadline);
        uint256 nonce = _useNonce(signer);
        bytes32 digest = announcementDigest(signer, url, nonce, deadline);
        if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) revert DirectoryInvalidSignature(signer);
        _announce(signer, url, nonce);
    }

    function _announce(address signer, string calldata url, uint256 nonce) private {
        if (bytes(url).length > MAX_URL_LENGTH) revert DirectoryUrlTooLong(bytes(url).length, MAX_URL_LENGTH);
        _urls[signer] = url;
        emit RelayerAnnounced(signer, url, nonce);
    }
}
