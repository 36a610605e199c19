// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IERC3009} from "../interfaces/IERC3009.sol";

/// @title MockUSDC
/// @notice Development and test stand-in for USDC that behaves like FiatToken v2.2 where AgentMesh can
/// tell: 6 decimals, EIP-2612 permit and EIP-3009 with USDC's exact typehashes and EIP-712 domain (the
/// name given at deployment: "USD Coin" as on Base, or "USDC" as on Base Sepolia; version "2") and
/// `bytes` signatures, a pause that stops every transfer, approval and authorization, a blacklist
/// (`isBlacklisted`) that stops blacklisted senders, receivers, spenders and callers, and transfers to
/// the zero address refused. Its deployer acts as pauser and blacklister; its mint only works on the
/// local chain. Never deployed to a public network: real USDC is used on Base and Base Sepolia (the
/// end-to-end rehearsal installs it at Base Sepolia's USDC address on a local stand-in node).
/// @dev OpenZeppelin's ERC20Permit hard-codes domain version "1", so permit is implemented here on
/// the token's own EIP712 domain. Storage follows FiatToken v2.2 so that gas figures measured against
/// this mock stay close to USDC's: an account's blacklist flag is the top bit of its balance word (a
/// transfer's blacklist checks read no extra slot) and the pause flag shares its slot with the pauser.
contract MockUSDC is ERC20, EIP712, Nonces, IERC20Permit, IERC3009 {
    /// @notice EIP-2612 typehash.
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    /// @notice EIP-3009 typehash of transferWithAuthorization.
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
        "bytes32 nonce)"
    );
    /// @notice EIP-3009 typehash of receiveWithAuthorization.
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,"
        "bytes32 nonce)"
    );
    /// @notice EIP-3009 typehash of cancelAuthorization.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");
    /// @notice The only chain id on which `mint` works.
    uint256 public constant LOCAL_CHAIN_ID = 31_337;

    /// @notice Thrown when a permit is used after its deadline.
    error PermitExpired(uint256 deadline);
    /// @notice Thrown when a permit is not signed by the owner.
    error PermitInvalidSignature(address owner);
    /// @notice Thrown when minting anywhere but the local chain.
    error MintOnlyOnLocalChain(uint256 chainId);
    /// @notice Thrown when anything but a balance read happens while the token is paused.
    error TokenPaused();
    /// @notice Thrown when a blacklisted account sends, receives, spends, approves or calls.
    error AccountBlacklisted(address account);
    /// @notice Thrown when anyone but the deployer pauses or blacklists.
    error NotTokenAdmin(address caller);

    /// @notice Emitted when the token is paused.
    event Pause();
    /// @notice Emitted when the token is unpaused.
    event Unpause();
    /// @notice Emitted when `account` is blacklisted.
    /// @param account The account.
    event Blacklisted(address indexed account);
    /// @notice Emitted when `account` leaves the blacklist.
    /// @param account The account.
    event UnBlacklisted(address indexed account);

    uint256 private constant _BLACKLISTED = 1 << 255;

    address private _pauser;
    bool private _paused;
    uint256 private _supply;
    mapping(address account => uint256) private _balanceAndBlacklistStates;
    mapping(address authorizer => mapping(bytes32 nonce => bool used)) private _authorizationStates;

    /// @param name_ The token's name, also its EIP-712 domain name (USDC's differs between deployments).
    constructor(string memory name_) ERC20(name_, "USDC") EIP712(name_, "2") {
        _pauser = msg.sender;
    }

    modifier onlyTokenAdmin() {
        if (msg.sender != _pauser) revert NotTokenAdmin(msg.sender);
        _;
    }

    /// @notice Mints `amount` to `to`; local chain only.
    function mint(address to, uint256 amount) external {
        if (block.chainid != LOCAL_CHAIN_ID) revert MintOnlyOnLocalChain(block.chainid);
        _mint(to, amount);
    }

    /// @notice Whether transfers, approvals and authorizations are stopped.
    function paused() external view returns (bool) {
        return _paused;
    }

    /// @notice Stops every transfer, approval and authorization. Deployer only.
    function pause() external onlyTokenAdmin {
        _paused = true;
        emit Pause();
    }

    /// @notice Lifts the pause. Deployer only.
    function unpause() external onlyTokenAdmin {
        _paused = false;
        emit Unpause();
    }

    /// @notice Whether `account` is blacklisted (USDC's name and signature).
    function isBlacklisted(address account) public view returns (bool) {
        return _balanceAndBlacklistStates[account] & _BLACKLISTED != 0;
    }

    /// @notice Blacklists `account`. Deployer only.
    function blacklist(address account) external onlyTokenAdmin {
        _balanceAndBlacklistStates[account] |= _BLACKLISTED;
        emit Blacklisted(account);
    }

    /// @notice Takes `account` off the blacklist. Deployer only.
    function unBlacklist(address account) external onlyTokenAdmin {
        _balanceAndBlacklistStates[account] &= ~_BLACKLISTED;
        emit UnBlacklisted(account);
    }

    /// @notice USDC's transferFrom also refuses a paused token or a blacklisted caller.
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _checkAllowed(msg.sender);
        return super.transferFrom(from, to, value);
    }

    /// @inheritdoc ERC20
    function balanceOf(address account) public view override returns (uint256) {
        return _balanceAndBlacklistStates[account] & ~_BLACKLISTED;
    }

    /// @inheritdoc ERC20
    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    /// @notice USDC has 6 decimals.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice The EIP-712 domain version, as USDC exposes it.
    function version() external pure returns (string memory) {
        return "2";
    }

    /// @inheritdoc IERC20Permit
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IERC20Permit
    function nonces(address owner) public view override(IERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    /// @inheritdoc IERC20Permit
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        permit(owner, spender, value, deadline, abi.encodePacked(r, s, v));
    }

    /// @notice EIP-2612 permit with signature bytes (EOA or ERC-1271), as USDC v2.2 offers.
    function permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature)
        public
    {
        if (block.timestamp > deadline) revert PermitExpired(deadline);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, _useNonce(owner), deadline));
        if (!SignatureChecker.isValidSignatureNow(owner, _hashTypedDataV4(structHash), signature)) {
            revert PermitInvalidSignature(owner);
        }
        _approve(owner, spender, value);
    }

    /// @inheritdoc IERC3009
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationStates[authorizer][nonce];
    }

    /// @inheritdoc IERC3009
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
    ) external {
        transferWithAuthorization(from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v));
    }

    /// @inheritdoc IERC3009
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) public {
        _useAuthorization(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
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
    ) external {
        receiveWithAuthorization(from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v));
    }

    /// @inheritdoc IERC3009
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) public {
        if (to != msg.sender) revert AuthorizationCallerMustBePayee(msg.sender, to);
        _useAuthorization(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
        _transfer(from, to, value);
    }

    /// @inheritdoc IERC3009
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        cancelAuthorization(authorizer, nonce, abi.encodePacked(r, s, v));
    }

    /// @inheritdoc IERC3009
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) public {
        _checkAllowed(address(0));
        _requireUnused(authorizer, nonce);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)));
        if (!SignatureChecker.isValidSignatureNow(authorizer, digest, signature)) {
            revert AuthorizationInvalidSignature(authorizer);
        }
        _authorizationStates[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _useAuthorization(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        if (block.timestamp <= validAfter || block.timestamp >= validBefore) {
            revert AuthorizationNotValidNow(validAfter, validBefore);
        }
        _requireUnused(from, nonce);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce)));
        if (!SignatureChecker.isValidSignatureNow(from, digest, signature)) {
            revert AuthorizationInvalidSignature(from);
        }
        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
    }

    function _requireUnused(address authorizer, bytes32 nonce) private view {
        if (_authorizationStates[authorizer][nonce]) revert AuthorizationAlreadyUsed(authorizer, nonce);
    }

    /// @dev Every balance change (transfers, authorizations, mint) checks the pause and both parties'
    /// blacklist flags, read with their balances.
    function _update(address from, address to, uint256 value) internal override {
        if (_paused) revert TokenPaused();
        if (from == address(0)) {
            _supply += value;
        } else {
            uint256 state = _balanceAndBlacklistStates[from];
            if (state & _BLACKLISTED != 0) revert AccountBlacklisted(from);
            if (state < value) revert ERC20InsufficientBalance(from, state, value);
            // Unchecked: value <= state, whose top bit is clear.
            unchecked {
                _balanceAndBlacklistStates[from] = state - value;
            }
        }
        if (to == address(0)) {
            // Unchecked: value was debited from a balance, which is part of the supply.
            unchecked {
                _supply -= value;
            }
        } else {
            uint256 state = _balanceAndBlacklistStates[to];
            if (state & _BLACKLISTED != 0) revert AccountBlacklisted(to);
            // Unchecked: every balance is part of the supply, which is checked against overflow on mint.
            unchecked {
                _balanceAndBlacklistStates[to] = state + value;
            }
        }
        emit Transfer(from, to, value);
    }

    /// @dev Every approval (approve, permit, allowance spending) checks the pause and both parties.
    function _approve(address owner, address spender, uint256 value, bool emitEvent) internal override {
        _checkAllowed(owner);
        _checkAllowed(spender);
        super._approve(owner, spender, value, emitEvent);
    }

    /// @dev Reverts while paused, or when `account` (zero: none) is blacklisted.
    function _checkAllowed(address account) private view {
        if (_paused) revert TokenPaused();
        if (isBlacklisted(account)) revert AccountBlacklisted(account);
    }
}
