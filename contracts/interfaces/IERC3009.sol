// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IERC3009
/// @notice EIP-3009 transfer with authorization, as implemented by USDC (FiatTokenV2_2).
interface IERC3009 {
    /// @notice Thrown when an authorization is used before `validAfter` or at/after `validBefore`.
    error AuthorizationNotValidNow(uint256 validAfter, uint256 validBefore);
    /// @notice Thrown when `nonce` of `authorizer` was already used or canceled.
    error AuthorizationAlreadyUsed(address authorizer, bytes32 nonce);
    /// @notice Thrown when the signature is not `authorizer`'s.
    error AuthorizationInvalidSignature(address authorizer);
    /// @notice Thrown when receiveWithAuthorization is called by someone other than the payee.
    error AuthorizationCallerMustBePayee(address caller, address payee);

    /// @notice Emitted when an authorization is used.
    /// @param authorizer Its signer.
    /// @param nonce Its nonce.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice Emitted when an authorization is canceled.
    /// @param authorizer Its signer.
    /// @param nonce Its nonce.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice Whether `nonce` of `authorizer` has been used or canceled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);

    /// @notice Transfers with the payer's signed authorization (v, r, s).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Transfers with the payer's signed authorization (EOA or ERC-1271 signature bytes).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice Like transferWithAuthorization, but only the payee may submit it (front-running safe).
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice receiveWithAuthorization with signature bytes.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;

    /// @notice Cancels an unused authorization.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;

    /// @notice cancelAuthorization with signature bytes.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external;
}
