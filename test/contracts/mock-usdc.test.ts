import { expect } from "chai";
import {
  type Address,
  type Hex,
  hashDomain,
  hashTypedData,
  keccak256,
  parseSignature,
  toHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import {
  cancelAuthorizationTypes as cancelTypes,
  permitTypes,
  receiveWithAuthorizationTypes as receiveTypes,
  transferWithAuthorizationTypes as transferTypes,
  usdcDomain,
} from "../../sdk/src/usdc.ts";
import { deployFixture } from "./fixture.ts";
import { approveDigest, installWallet } from "./helpers/ledger.ts";

/** USDC's exact EIP-712 type strings (FiatTokenV2_2). */
const PERMIT_TYPE = "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)";
const TRANSFER_TYPE =
  "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)";
const RECEIVE_TYPE =
  "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)";
const CANCEL_TYPE = "CancelAuthorization(address authorizer,bytes32 nonce)";

const TRANSFER_VRS =
  "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)" as const;
const TRANSFER_BYTES = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)" as const;
const RECEIVE_VRS =
  "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)" as const;
const RECEIVE_BYTES = "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)" as const;
const CANCEL_VRS = "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)" as const;
const CANCEL_BYTES = "cancelAuthorization(address,bytes32,bytes)" as const;
const PERMIT_VRS = "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)" as const;
const PERMIT_BYTES = "permit(address,address,uint256,uint256,bytes)" as const;

const ONE_USDC = 1_000_000n;

function splitSig(signature: Hex): { v: number; r: Hex; s: Hex } {
  const { r, s, v, yParity } = parseSignature(signature);
  return { v: v === undefined ? yParity + 27 : Number(v), r, s };
}

function randomNonce(): Hex {
  return keccak256(toHex(`${Math.random()}-${Date.now()}-${process.hrtime.bigint()}`));
}

async function setup() {
  const fx = await deployFixture();
  const { ethers, usdc, connection } = fx;
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const usdcAddress = (await usdc.getAddress()) as Address;
  const domain = usdcDomain(chainId, usdcAddress);
  // A key we hold, so we sign the digest viem computes (not whatever a wallet would hash for us).
  const payer: PrivateKeyAccount = privateKeyToAccount(generatePrivateKey());
  await (await usdc.mint(payer.address, 1_000n * ONE_USDC)).wait();
  const now = async () => BigInt(await connection.networkHelpers.time.latest());
  return { ...fx, chainId, usdcAddress, domain, payer, now };
}

type Setup = Awaited<ReturnType<typeof setup>>;

interface Authorization {
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
}

async function signTransfer(fx: Setup, signer: PrivateKeyAccount, message: Authorization): Promise<Hex> {
  const digest = hashTypedData({
    domain: fx.domain,
    types: transferTypes,
    primaryType: "TransferWithAuthorization",
    message,
  });
  return signer.sign({ hash: digest });
}

async function signReceive(fx: Setup, signer: PrivateKeyAccount, message: Authorization): Promise<Hex> {
  const digest = hashTypedData({ domain: fx.domain, types: receiveTypes, primaryType: "ReceiveWithAuthorization", message });
  return signer.sign({ hash: digest });
}

async function signCancel(fx: Setup, signer: PrivateKeyAccount, authorizer: Address, nonce: Hex): Promise<Hex> {
  const digest = hashTypedData({
    domain: fx.domain,
    types: cancelTypes,
    primaryType: "CancelAuthorization",
    message: { authorizer, nonce },
  });
  return signer.sign({ hash: digest });
}

async function signPermit(
  fx: Setup,
  signer: PrivateKeyAccount,
  message: { owner: Address; spender: Address; value: bigint; nonce: bigint; deadline: bigint },
): Promise<Hex> {
  const digest = hashTypedData({ domain: fx.domain, types: permitTypes, primaryType: "Permit", message });
  return signer.sign({ hash: digest });
}

describe("MockUSDC", () => {
  describe("metadata and EIP-712 domain", () => {
    it("has 6 decimals, name USD Coin, symbol USDC, version 2", async () => {
      const { usdc } = await setup();
      expect(await usdc.decimals()).to.equal(6n);
      expect(await usdc.name()).to.equal("USD Coin");
      expect(await usdc.symbol()).to.equal("USDC");
      expect(await usdc.version()).to.equal("2");
    });

    it("exposes the exact EIP-712 domain (name, version, chainId, verifyingContract)", async () => {
      const fx = await setup();
      const d = await fx.usdc.eip712Domain();
      expect(d.name).to.equal("USD Coin");
      expect(d.version).to.equal("2");
      expect(d.chainId).to.equal(BigInt(fx.chainId));
      expect(d.verifyingContract).to.equal(fx.usdcAddress);
      const separator = hashDomain({
        domain: { name: "USD Coin", version: "2", chainId: BigInt(fx.chainId), verifyingContract: fx.usdcAddress },
        types: {
          EIP712Domain: [
            { name: "name", type: "string" },
            { name: "version", type: "string" },
            { name: "chainId", type: "uint256" },
            { name: "verifyingContract", type: "address" },
          ],
        },
      });
      expect(await fx.usdc.DOMAIN_SEPARATOR()).to.equal(separator);
    });

    it("typehash constants equal keccak256 of USDC's type strings", async () => {
      const { usdc } = await setup();
      expect(await usdc.PERMIT_TYPEHASH()).to.equal(keccak256(toHex(PERMIT_TYPE)));
      expect(await usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH()).to.equal(keccak256(toHex(TRANSFER_TYPE)));
      expect(await usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH()).to.equal(keccak256(toHex(RECEIVE_TYPE)));
      expect(await usdc.CANCEL_AUTHORIZATION_TYPEHASH()).to.equal(keccak256(toHex(CANCEL_TYPE)));
    });

    it("mint works on the local chain", async () => {
      const fx = await setup();
      const { usdc, stranger } = fx;
      expect(await usdc.LOCAL_CHAIN_ID()).to.equal(31337n);
      await expect(usdc.mint(stranger.address, 5n)).to.changeTokenBalance(fx.ethers, usdc, stranger, 5n);
    });
  });

  describe("EIP-2612 permit", () => {
    it("accepts a permit whose digest viem computed (v,r,s overload) and sets the allowance", async () => {
      const fx = await setup();
      const { usdc, payer, stranger } = fx;
      const deadline = (await fx.now()) + 3600n;
      const value = 42n * ONE_USDC;
      const sig = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value, nonce: 0n, deadline });
      const { v, r, s } = splitSig(sig);
      await expect(usdc[PERMIT_VRS](payer.address, stranger.address, value, deadline, v, r, s))
        .to.emit(usdc, "Approval")
        .withArgs(payer.address, stranger.address, value);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(value);
      expect(await usdc.nonces(payer.address)).to.equal(1n);
      // The spender can now actually move the funds.
      await expect(usdc.connect(stranger).transferFrom(payer.address, stranger.address, value)).to.changeTokenBalances(
        fx.ethers,
        usdc,
        [payer.address, stranger.address],
        [-value, value],
      );
    });

    it("accepts the bytes-signature overload", async () => {
      const fx = await setup();
      const deadline = (await fx.now()) + 3600n;
      const sig = await signPermit(fx, fx.payer, { owner: fx.payer.address, spender: fx.agent.address as Address, value: 7n, nonce: 0n, deadline });
      await fx.usdc[PERMIT_BYTES](fx.payer.address, fx.agent.address, 7n, deadline, sig);
      expect(await fx.usdc.allowance(fx.payer.address, fx.agent.address)).to.equal(7n);
    });

    it("works with ethers signTypedData from a Hardhat signer (wallet path)", async () => {
      const fx = await setup();
      const { usdc, creator, stranger } = fx;
      const deadline = (await fx.now()) + 3600n;
      const sig = await creator.signTypedData(
        { name: "USD Coin", version: "2", chainId: fx.chainId, verifyingContract: fx.usdcAddress },
        { Permit: [...permitTypes.Permit] },
        { owner: creator.address, spender: stranger.address, value: 9n, nonce: 0n, deadline },
      );
      const { v, r, s } = splitSig(sig as Hex);
      await usdc[PERMIT_VRS](creator.address, stranger.address, 9n, deadline, v, r, s);
      expect(await usdc.allowance(creator.address, stranger.address)).to.equal(9n);
    });

    it("rejects an expired permit (deadline < now) but accepts deadline == block time", async () => {
      const fx = await setup();
      const { usdc, payer, stranger, connection } = fx;
      const now = await fx.now();
      const expired = now - 1n;
      const sig = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value: 1n, nonce: 0n, deadline: expired });
      const { v, r, s } = splitSig(sig);
      await expect(usdc[PERMIT_VRS](payer.address, stranger.address, 1n, expired, v, r, s))
        .to.be.revertedWithCustomError(usdc, "PermitExpired")
        .withArgs(expired);

      const exact = now + 100n;
      const sig2 = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value: 2n, nonce: 0n, deadline: exact });
      await connection.networkHelpers.time.setNextBlockTimestamp(exact);
      await usdc[PERMIT_BYTES](payer.address, stranger.address, 2n, exact, sig2);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(2n);
    });

    it("rejects a permit signed by someone other than the owner", async () => {
      const fx = await setup();
      const { usdc, payer, stranger } = fx;
      const impostor = privateKeyToAccount(generatePrivateKey());
      const deadline = (await fx.now()) + 3600n;
      const sig = await signPermit(fx, impostor, { owner: payer.address, spender: stranger.address as Address, value: 1n, nonce: 0n, deadline });
      const { v, r, s } = splitSig(sig);
      await expect(usdc[PERMIT_VRS](payer.address, stranger.address, 1n, deadline, v, r, s))
        .to.be.revertedWithCustomError(usdc, "PermitInvalidSignature")
        .withArgs(payer.address);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(0n);
      expect(await usdc.nonces(payer.address)).to.equal(0n);
    });

    it("rejects a permit signed for another chain id or another contract", async () => {
      const fx = await setup();
      const { usdc, payer, stranger } = fx;
      const deadline = (await fx.now()) + 3600n;
      const message = { owner: payer.address, spender: stranger.address as Address, value: 1n, nonce: 0n, deadline };
      for (const domain of [
        { ...fx.domain, chainId: 8453 },
        { ...fx.domain, verifyingContract: stranger.address as Address },
        { ...fx.domain, version: "1" },
      ]) {
        const sig = await payer.sign({ hash: hashTypedData({ domain, types: permitTypes, primaryType: "Permit", message }) });
        await expect(usdc[PERMIT_BYTES](payer.address, stranger.address, 1n, deadline, sig))
          .to.be.revertedWithCustomError(usdc, "PermitInvalidSignature")
          .withArgs(payer.address);
      }
    });

    it("rejects a replayed permit (nonce consumed)", async () => {
      const fx = await setup();
      const { usdc, payer, stranger } = fx;
      const deadline = (await fx.now()) + 3600n;
      const sig = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value: 5n, nonce: 0n, deadline });
      await usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig);
      // Spend part of the allowance so a replay would visibly reset it.
      await usdc.connect(stranger).transferFrom(payer.address, stranger.address, 3n);
      await expect(usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig))
        .to.be.revertedWithCustomError(usdc, "PermitInvalidSignature")
        .withArgs(payer.address);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(2n);
      expect(await usdc.nonces(payer.address)).to.equal(1n);
    });
  });

  describe("EIP-3009 transferWithAuthorization", () => {
    async function authorization(fx: Setup, overrides: Partial<Authorization> = {}): Promise<Authorization> {
      const now = await fx.now();
      return {
        from: fx.payer.address,
        to: fx.agent.address as Address,
        value: 10n * ONE_USDC,
        validAfter: 0n,
        validBefore: now + 3600n,
        nonce: randomNonce(),
        ...overrides,
      };
    }

    it("transfers with a v,r,s signature over viem's digest, marks the nonce used, emits", async () => {
      const fx = await setup();
      const { usdc, stranger } = fx;
      const auth = await authorization(fx);
      const { v, r, s } = splitSig(await signTransfer(fx, fx.payer, auth));
      expect(await usdc.authorizationState(auth.from, auth.nonce)).to.equal(false);
      const tx = usdc
        .connect(stranger)
        [TRANSFER_VRS](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v, r, s);
      await expect(tx).to.emit(usdc, "AuthorizationUsed").withArgs(auth.from, auth.nonce);
      await expect(tx).to.emit(usdc, "Transfer").withArgs(auth.from, auth.to, auth.value);
      expect(await usdc.balanceOf(auth.from)).to.equal(990n * ONE_USDC);
      expect(await usdc.balanceOf(auth.to)).to.equal(auth.value);
      expect(await usdc.authorizationState(auth.from, auth.nonce)).to.equal(true);
    });

    it("transfers with the bytes-signature overload", async () => {
      const fx = await setup();
      const auth = await authorization(fx, { value: 3n });
      const sig = await signTransfer(fx, fx.payer, auth);
      await expect(
        fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig),
      ).to.changeTokenBalances(fx.ethers, fx.usdc, [auth.from, auth.to], [-3n, 3n]);
      expect(await fx.usdc.authorizationState(auth.from, auth.nonce)).to.equal(true);
    });

    it("rejects reuse of a nonce (replay), on either overload", async () => {
      const fx = await setup();
      const auth = await authorization(fx);
      const sig = await signTransfer(fx, fx.payer, auth);
      const { v, r, s } = splitSig(sig);
      await fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig);
      await expect(fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig))
        .to.be.revertedWithCustomError(fx.usdc, "AuthorizationAlreadyUsed")
        .withArgs(auth.from, auth.nonce);
      await expect(
        fx.usdc[TRANSFER_VRS](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v, r, s),
      )
        .to.be.revertedWithCustomError(fx.usdc, "AuthorizationAlreadyUsed")
        .withArgs(auth.from, auth.nonce);
      // The same nonce cannot be used with a fresh signature for different terms either.
      const other = { ...auth, value: 1n };
      await expect(
        fx.usdc[TRANSFER_BYTES](other.from, other.to, other.value, other.validAfter, other.validBefore, other.nonce, await signTransfer(fx, fx.payer, other)),
      ).to.be.revertedWithCustomError(fx.usdc, "AuthorizationAlreadyUsed");
      expect(await fx.usdc.balanceOf(auth.to)).to.equal(auth.value);
    });

    it("rejects a signature by someone other than `from`, and tampered terms", async () => {
      const fx = await setup();
      const auth = await authorization(fx);
      const impostor = privateKeyToAccount(generatePrivateKey());
      const bad = await signTransfer(fx, impostor, auth);
      await expect(fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, bad))
        .to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature")
        .withArgs(auth.from);
      const good = await signTransfer(fx, fx.payer, auth);
      // A relayer cannot change the payee or the amount.
      await expect(
        fx.usdc[TRANSFER_BYTES](auth.from, fx.stranger.address, auth.value, auth.validAfter, auth.validBefore, auth.nonce, good),
      ).to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature");
      await expect(
        fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value + 1n, auth.validAfter, auth.validBefore, auth.nonce, good),
      ).to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature");
      // A ReceiveWithAuthorization signature is not a TransferWithAuthorization signature.
      const receiveSig = await signReceive(fx, fx.payer, auth);
      await expect(
        fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, receiveSig),
      ).to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature");
      expect(await fx.usdc.authorizationState(auth.from, auth.nonce)).to.equal(false);
      expect(await fx.usdc.balanceOf(auth.from)).to.equal(1_000n * ONE_USDC);
    });

    it("is valid strictly after validAfter and strictly before validBefore", async () => {
      const fx = await setup();
      const { usdc, connection } = fx;
      const time = connection.networkHelpers.time;
      const start = (await fx.now()) + 100n;
      const auth = await authorization(fx, { validAfter: start, validBefore: start + 10n, value: 1n });
      const sig = await signTransfer(fx, fx.payer, auth);
      // An explicit gas limit skips estimation, so the call really runs in a block at the set timestamp.
      const call = () =>
        usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig, {
          gasLimit: 300_000,
        });

      // block.timestamp == validAfter: not yet valid.
      await time.setNextBlockTimestamp(start);
      await expect(call()).to.be.revertedWithCustomError(usdc, "AuthorizationNotValidNow").withArgs(start, start + 10n);
      expect(await fx.now()).to.equal(start);
      expect(await usdc.authorizationState(auth.from, auth.nonce)).to.equal(false);

      // block.timestamp == validBefore: no longer valid.
      const late = await authorization(fx, { validAfter: 0n, validBefore: start + 20n, value: 1n });
      const lateSig = await signTransfer(fx, fx.payer, late);
      await time.setNextBlockTimestamp(start + 20n);
      await expect(
        usdc[TRANSFER_BYTES](late.from, late.to, late.value, late.validAfter, late.validBefore, late.nonce, lateSig, {
          gasLimit: 300_000,
        }),
      ).to.be.revertedWithCustomError(usdc, "AuthorizationNotValidNow").withArgs(0n, start + 20n);
      expect(await fx.now()).to.equal(start + 20n);
      expect(await usdc.balanceOf(auth.to)).to.equal(0n);
    });

    it("succeeds at validAfter + 1 and at validBefore − 1", async () => {
      const fx = await setup();
      const { usdc, connection } = fx;
      const time = connection.networkHelpers.time;
      const start = (await fx.now()) + 100n;
      const early = await authorization(fx, { validAfter: start, validBefore: start + 1000n, value: 1n });
      await time.setNextBlockTimestamp(start + 1n);
      await usdc[TRANSFER_BYTES](early.from, early.to, early.value, early.validAfter, early.validBefore, early.nonce, await signTransfer(fx, fx.payer, early));
      expect(await usdc.authorizationState(early.from, early.nonce)).to.equal(true);

      const late = await authorization(fx, { validAfter: 0n, validBefore: start + 50n, value: 2n });
      await time.setNextBlockTimestamp(start + 49n);
      await usdc[TRANSFER_BYTES](late.from, late.to, late.value, late.validAfter, late.validBefore, late.nonce, await signTransfer(fx, fx.payer, late));
      expect(await usdc.balanceOf(late.to)).to.equal(3n);
    });

    it("rejects an authorization signed for another chain id", async () => {
      const fx = await setup();
      const auth = await authorization(fx);
      const digest = hashTypedData({
        domain: { ...fx.domain, chainId: 84532 },
        types: transferTypes,
        primaryType: "TransferWithAuthorization",
        message: auth,
      });
      const sig = await fx.payer.sign({ hash: digest });
      await expect(fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig))
        .to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature")
        .withArgs(auth.from);
    });
  });

  describe("EIP-3009 receiveWithAuthorization", () => {
    it("lets only the payee submit it (v,r,s and bytes overloads)", async () => {
      const fx = await setup();
      const { usdc, agent, stranger, payer } = fx;
      const auth: Authorization = {
        from: payer.address,
        to: agent.address as Address,
        value: 4n * ONE_USDC,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      const sig = await signReceive(fx, payer, auth);
      const { v, r, s } = splitSig(sig);
      await expect(
        usdc.connect(stranger)[RECEIVE_VRS](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v, r, s),
      )
        .to.be.revertedWithCustomError(usdc, "AuthorizationCallerMustBePayee")
        .withArgs(stranger.address, agent.address);
      await expect(
        usdc.connect(stranger)[RECEIVE_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig),
      ).to.be.revertedWithCustomError(usdc, "AuthorizationCallerMustBePayee");

      await expect(
        usdc.connect(agent)[RECEIVE_VRS](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v, r, s),
      )
        .to.emit(usdc, "AuthorizationUsed")
        .withArgs(auth.from, auth.nonce);
      expect(await usdc.balanceOf(agent.address)).to.equal(auth.value);
      await expect(
        usdc.connect(agent)[RECEIVE_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig),
      ).to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed");

      const second = { ...auth, nonce: randomNonce(), value: 1n };
      await usdc
        .connect(agent)
        [RECEIVE_BYTES](second.from, second.to, second.value, second.validAfter, second.validBefore, second.nonce, await signReceive(fx, payer, second));
      expect(await usdc.balanceOf(agent.address)).to.equal(auth.value + 1n);
    });

    it("does not accept a TransferWithAuthorization signature", async () => {
      const fx = await setup();
      const auth: Authorization = {
        from: fx.payer.address,
        to: fx.agent.address as Address,
        value: 1n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      const sig = await signTransfer(fx, fx.payer, auth);
      await expect(
        fx.usdc.connect(fx.agent)[RECEIVE_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, sig),
      )
        .to.be.revertedWithCustomError(fx.usdc, "AuthorizationInvalidSignature")
        .withArgs(auth.from);
    });
  });

  describe("EIP-3009 cancelAuthorization", () => {
    it("cancels an unused nonce (v,r,s) so the authorization can no longer be used", async () => {
      const fx = await setup();
      const { usdc, payer } = fx;
      const auth: Authorization = {
        from: payer.address,
        to: fx.agent.address as Address,
        value: 1n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      const transferSig = await signTransfer(fx, payer, auth);
      const { v, r, s } = splitSig(await signCancel(fx, payer, payer.address, auth.nonce));
      await expect(usdc.connect(fx.stranger)[CANCEL_VRS](payer.address, auth.nonce, v, r, s))
        .to.emit(usdc, "AuthorizationCanceled")
        .withArgs(payer.address, auth.nonce);
      expect(await usdc.authorizationState(payer.address, auth.nonce)).to.equal(true);
      await expect(
        usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, transferSig),
      )
        .to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed")
        .withArgs(payer.address, auth.nonce);
      // Canceling again fails.
      await expect(usdc[CANCEL_VRS](payer.address, auth.nonce, v, r, s))
        .to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed")
        .withArgs(payer.address, auth.nonce);
      expect(await usdc.balanceOf(fx.agent.address)).to.equal(0n);
    });

    it("cancels with the bytes overload; rejects a wrong signer and a used nonce", async () => {
      const fx = await setup();
      const { usdc, payer } = fx;
      const nonce = randomNonce();
      const impostor = privateKeyToAccount(generatePrivateKey());
      await expect(usdc[CANCEL_BYTES](payer.address, nonce, await signCancel(fx, impostor, payer.address, nonce)))
        .to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature")
        .withArgs(payer.address);
      expect(await usdc.authorizationState(payer.address, nonce)).to.equal(false);
      await usdc[CANCEL_BYTES](payer.address, nonce, await signCancel(fx, payer, payer.address, nonce));
      expect(await usdc.authorizationState(payer.address, nonce)).to.equal(true);

      // A nonce already used for a transfer cannot be canceled.
      const auth: Authorization = {
        from: payer.address,
        to: fx.agent.address as Address,
        value: 1n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      await usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, await signTransfer(fx, payer, auth));
      await expect(usdc[CANCEL_BYTES](payer.address, auth.nonce, await signCancel(fx, payer, payer.address, auth.nonce)))
        .to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed")
        .withArgs(payer.address, auth.nonce);
    });

    it("nonces are per authorizer: the same nonce is free for another signer", async () => {
      const fx = await setup();
      const other = privateKeyToAccount(generatePrivateKey());
      await fx.usdc.mint(other.address, 10n);
      const nonce = randomNonce();
      await fx.usdc[CANCEL_BYTES](fx.payer.address, nonce, await signCancel(fx, fx.payer, fx.payer.address, nonce));
      const auth: Authorization = {
        from: other.address,
        to: fx.agent.address as Address,
        value: 10n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce,
      };
      await fx.usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, await signTransfer(fx, other, auth));
      expect(await fx.usdc.balanceOf(fx.agent.address)).to.equal(10n);
      expect(await fx.usdc.authorizationState(other.address, nonce)).to.equal(true);
    });
  });

  describe("issue 11: USDC's pause (FiatToken v2.2)", () => {
    it("only the deployer pauses and unpauses (NotTokenAdmin otherwise); Pause/Unpause events and paused()", async () => {
      const { usdc, admin, stranger, agent } = await setup();
      expect(await usdc.paused()).to.equal(false);
      for (const who of [stranger, agent]) {
        await expect(usdc.connect(who).pause()).to.be.revertedWithCustomError(usdc, "NotTokenAdmin").withArgs(who.address);
      }
      await expect(usdc.connect(admin).pause()).to.emit(usdc, "Pause");
      expect(await usdc.paused()).to.equal(true);
      await expect(usdc.connect(stranger).unpause()).to.be.revertedWithCustomError(usdc, "NotTokenAdmin").withArgs(stranger.address);
      expect(await usdc.paused()).to.equal(true);
      await expect(usdc.connect(admin).unpause()).to.emit(usdc, "Unpause");
      expect(await usdc.paused()).to.equal(false);
    });

    it("a pause stops transfer, transferFrom, approve and mint; balances, allowances and totalSupply stay as they were", async () => {
      const fx = await setup();
      const { usdc, admin, creator, stranger, agent } = fx;
      await usdc.mint(creator.address, 100n);
      await usdc.connect(creator).approve(stranger.address, 60n);
      const supply = await usdc.totalSupply();
      await usdc.connect(admin).pause();

      await expect(usdc.connect(creator).transfer(agent.address, 1n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      await expect(usdc.connect(stranger).transferFrom(creator.address, agent.address, 1n)).to.be.revertedWithCustomError(
        usdc,
        "TokenPaused",
      );
      await expect(usdc.connect(creator).approve(agent.address, 5n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      await expect(usdc.mint(agent.address, 5n)).to.be.revertedWithCustomError(usdc, "TokenPaused");

      // Reads still work and nothing moved.
      expect(await usdc.balanceOf(creator.address)).to.equal(100n);
      expect(await usdc.balanceOf(agent.address)).to.equal(0n);
      expect(await usdc.allowance(creator.address, stranger.address)).to.equal(60n);
      expect(await usdc.allowance(creator.address, agent.address)).to.equal(0n);
      expect(await usdc.totalSupply()).to.equal(supply);

      // After unpause every path works again.
      await usdc.connect(admin).unpause();
      await expect(usdc.connect(creator).transfer(agent.address, 1n)).to.changeTokenBalances(
        fx.ethers,
        usdc,
        [creator.address, agent.address],
        [-1n, 1n],
      );
      await usdc.connect(stranger).transferFrom(creator.address, agent.address, 9n);
      expect(await usdc.allowance(creator.address, stranger.address)).to.equal(51n);
      await usdc.connect(creator).approve(agent.address, 5n);
      expect(await usdc.allowance(creator.address, agent.address)).to.equal(5n);
      await usdc.mint(agent.address, 5n);
      expect(await usdc.balanceOf(agent.address)).to.equal(15n);
      expect(await usdc.totalSupply()).to.equal(supply + 5n);
    });

    it("a pause stops permit (v,r,s and bytes) without consuming the nonce", async () => {
      const fx = await setup();
      const { usdc, payer, stranger, admin } = fx;
      const deadline = (await fx.now()) + 3600n;
      const sig = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value: 5n, nonce: 0n, deadline });
      const { v, r, s } = splitSig(sig);
      await usdc.connect(admin).pause();
      await expect(usdc[PERMIT_VRS](payer.address, stranger.address, 5n, deadline, v, r, s)).to.be.revertedWithCustomError(
        usdc,
        "TokenPaused",
      );
      await expect(usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig)).to.be.revertedWithCustomError(
        usdc,
        "TokenPaused",
      );
      expect(await usdc.nonces(payer.address)).to.equal(0n);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(0n);
      await usdc.connect(admin).unpause();
      await usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(5n);
      expect(await usdc.nonces(payer.address)).to.equal(1n);
    });

    it("a pause stops transferWithAuthorization, receiveWithAuthorization and cancelAuthorization (both overloads), leaving the nonce unused", async () => {
      const fx = await setup();
      const { usdc, payer, agent, admin } = fx;
      const validBefore = (await fx.now()) + 3600n;
      const auth: Authorization = { from: payer.address, to: agent.address as Address, value: 3n, validAfter: 0n, validBefore, nonce: randomNonce() };
      const transferSig = await signTransfer(fx, payer, auth);
      const receiveSig = await signReceive(fx, payer, auth);
      const cancelSig = await signCancel(fx, payer, payer.address, auth.nonce);
      const t = splitSig(transferSig);
      const rc = splitSig(receiveSig);
      const c = splitSig(cancelSig);
      const args = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
      await usdc.connect(admin).pause();
      const attempts = [
        () => usdc[TRANSFER_VRS](...args, t.v, t.r, t.s),
        () => usdc[TRANSFER_BYTES](...args, transferSig),
        () => usdc.connect(agent)[RECEIVE_VRS](...args, rc.v, rc.r, rc.s),
        () => usdc.connect(agent)[RECEIVE_BYTES](...args, receiveSig),
        () => usdc[CANCEL_VRS](payer.address, auth.nonce, c.v, c.r, c.s),
        () => usdc[CANCEL_BYTES](payer.address, auth.nonce, cancelSig),
      ];
      for (const attempt of attempts) {
        await expect(attempt()).to.be.revertedWithCustomError(usdc, "TokenPaused");
      }
      expect(await usdc.authorizationState(payer.address, auth.nonce)).to.equal(false);
      expect(await usdc.balanceOf(agent.address)).to.equal(0n);

      await usdc.connect(admin).unpause();
      await expect(usdc.connect(agent)[RECEIVE_BYTES](...args, receiveSig))
        .to.emit(usdc, "AuthorizationUsed")
        .withArgs(payer.address, auth.nonce);
      expect(await usdc.balanceOf(agent.address)).to.equal(3n);
    });
  });

  describe("issue 11: USDC's blacklist (FiatToken v2.2)", () => {
    it("only the deployer blacklists and unblacklists (NotTokenAdmin otherwise); events and isBlacklisted", async () => {
      const { usdc, admin, stranger, creator } = await setup();
      expect(await usdc.isBlacklisted(creator.address)).to.equal(false);
      await expect(usdc.connect(stranger).blacklist(creator.address))
        .to.be.revertedWithCustomError(usdc, "NotTokenAdmin")
        .withArgs(stranger.address);
      await expect(usdc.connect(admin).blacklist(creator.address)).to.emit(usdc, "Blacklisted").withArgs(creator.address);
      expect(await usdc.isBlacklisted(creator.address)).to.equal(true);
      expect(await usdc.isBlacklisted(stranger.address)).to.equal(false);
      await expect(usdc.connect(creator).unBlacklist(creator.address))
        .to.be.revertedWithCustomError(usdc, "NotTokenAdmin")
        .withArgs(creator.address);
      await expect(usdc.connect(admin).unBlacklist(creator.address)).to.emit(usdc, "UnBlacklisted").withArgs(creator.address);
      expect(await usdc.isBlacklisted(creator.address)).to.equal(false);
    });

    it("a blacklisted sender cannot transfer; a blacklisted receiver cannot be paid or minted to", async () => {
      const { usdc, admin, creator, stranger, agent } = await setup();
      await usdc.mint(creator.address, 10n);
      await usdc.mint(stranger.address, 10n);
      await usdc.connect(admin).blacklist(creator.address);
      await expect(usdc.connect(creator).transfer(agent.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(creator.address);
      await expect(usdc.connect(stranger).transfer(creator.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(creator.address);
      await expect(usdc.mint(creator.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(creator.address);
      expect(await usdc.balanceOf(creator.address)).to.equal(10n);
      expect(await usdc.balanceOf(stranger.address)).to.equal(10n);
      expect(await usdc.balanceOf(agent.address)).to.equal(0n);
    });

    it("approve refuses a blacklisted owner and a blacklisted spender", async () => {
      const { usdc, admin, creator, stranger, agent } = await setup();
      await usdc.connect(admin).blacklist(stranger.address);
      await expect(usdc.connect(stranger).approve(agent.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(stranger.address);
      await expect(usdc.connect(creator).approve(stranger.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(stranger.address);
      expect(await usdc.allowance(stranger.address, agent.address)).to.equal(0n);
      expect(await usdc.allowance(creator.address, stranger.address)).to.equal(0n);
      // A clean pair still approves.
      await usdc.connect(creator).approve(agent.address, 7n);
      expect(await usdc.allowance(creator.address, agent.address)).to.equal(7n);
    });

    it("transferFrom refuses a blacklisted caller (spender), owner or receiver, even with an allowance granted before", async () => {
      const fx = await setup();
      const { usdc, admin, creator, stranger, agent, treasury } = fx;
      await usdc.mint(creator.address, 100n);
      await usdc.connect(creator).approve(stranger.address, 50n);
      await usdc.connect(creator).approve(treasury.address, 2n ** 256n - 1n); // unlimited: never re-approved

      // The caller, with a limited allowance and with an unlimited one (which spending never re-approves).
      for (const caller of [stranger, treasury]) {
        await usdc.connect(admin).blacklist(caller.address);
        await expect(usdc.connect(caller).transferFrom(creator.address, agent.address, 1n))
          .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
          .withArgs(caller.address);
        await usdc.connect(admin).unBlacklist(caller.address);
      }

      // The receiver.
      await usdc.connect(admin).blacklist(agent.address);
      await expect(usdc.connect(stranger).transferFrom(creator.address, agent.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(agent.address);
      await usdc.connect(admin).unBlacklist(agent.address);

      // The owner, through a limited and an unlimited allowance.
      await usdc.connect(admin).blacklist(creator.address);
      await expect(usdc.connect(stranger).transferFrom(creator.address, agent.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(creator.address);
      await expect(usdc.connect(treasury).transferFrom(creator.address, agent.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(creator.address);
      expect(await usdc.balanceOf(creator.address)).to.equal(100n);
      expect(await usdc.allowance(creator.address, stranger.address)).to.equal(50n);

      await usdc.connect(admin).unBlacklist(creator.address);
      await expect(usdc.connect(stranger).transferFrom(creator.address, agent.address, 50n)).to.changeTokenBalances(
        fx.ethers,
        usdc,
        [creator.address, agent.address],
        [-50n, 50n],
      );
    });

    it("permit refuses a blacklisted owner or spender without consuming the nonce", async () => {
      const fx = await setup();
      const { usdc, payer, stranger, admin } = fx;
      const deadline = (await fx.now()) + 3600n;
      const sig = await signPermit(fx, payer, { owner: payer.address, spender: stranger.address as Address, value: 5n, nonce: 0n, deadline });
      const { v, r, s } = splitSig(sig);
      for (const blocked of [payer.address, stranger.address]) {
        await usdc.connect(admin).blacklist(blocked);
        await expect(usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig))
          .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
          .withArgs(blocked);
        await expect(usdc[PERMIT_VRS](payer.address, stranger.address, 5n, deadline, v, r, s))
          .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
          .withArgs(blocked);
        expect(await usdc.nonces(payer.address)).to.equal(0n);
        await usdc.connect(admin).unBlacklist(blocked);
      }
      await usdc[PERMIT_BYTES](payer.address, stranger.address, 5n, deadline, sig);
      expect(await usdc.allowance(payer.address, stranger.address)).to.equal(5n);
    });

    it("EIP-3009 refuses a blacklisted `from` or `to` (transfer and receive), leaving the authorization unused", async () => {
      const fx = await setup();
      const { usdc, payer, agent, admin } = fx;
      const validBefore = (await fx.now()) + 3600n;
      const auth: Authorization = { from: payer.address, to: agent.address as Address, value: 8n, validAfter: 0n, validBefore, nonce: randomNonce() };
      const args = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
      const transferSig = await signTransfer(fx, payer, auth);
      const receiveSig = await signReceive(fx, payer, auth);
      for (const blocked of [payer.address, agent.address]) {
        await usdc.connect(admin).blacklist(blocked);
        await expect(usdc[TRANSFER_BYTES](...args, transferSig))
          .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
          .withArgs(blocked);
        await expect(usdc.connect(agent)[RECEIVE_BYTES](...args, receiveSig))
          .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
          .withArgs(blocked);
        expect(await usdc.authorizationState(payer.address, auth.nonce)).to.equal(false);
        await usdc.connect(admin).unBlacklist(blocked);
      }
      await expect(usdc[TRANSFER_BYTES](...args, transferSig)).to.changeTokenBalances(
        fx.ethers,
        usdc,
        [payer.address, agent.address],
        [-8n, 8n],
      );
    });

    it("balanceOf hides the blacklist bit: the balance reads the same, totalSupply is unchanged, and it moves again after unBlacklist", async () => {
      const fx = await setup();
      const { usdc, admin, creator, agent } = fx;
      const big = 2n ** 200n; // high bits set, far below the flag bit (2^255)
      await usdc.mint(creator.address, big);
      const supply = await usdc.totalSupply();
      await usdc.connect(admin).blacklist(creator.address);
      expect(await usdc.balanceOf(creator.address)).to.equal(big);
      expect(await usdc.totalSupply()).to.equal(supply);
      // A blacklisted account with no balance reads zero, not the flag.
      await usdc.connect(admin).blacklist(agent.address);
      expect(await usdc.balanceOf(agent.address)).to.equal(0n);
      await usdc.connect(admin).unBlacklist(creator.address);
      await usdc.connect(admin).unBlacklist(agent.address);
      expect(await usdc.balanceOf(creator.address)).to.equal(big);
      await expect(usdc.connect(creator).transfer(agent.address, big)).to.changeTokenBalances(
        fx.ethers,
        usdc,
        [creator.address, agent.address],
        [-big, big],
      );
      expect(await usdc.balanceOf(creator.address)).to.equal(0n);
      expect(await usdc.totalSupply()).to.equal(supply);
    });

    it("a blacklisted account blocks nobody else: third parties keep transferring, approving and authorizing", async () => {
      const fx = await setup();
      const { usdc, admin, creator, stranger, agent, payer } = fx;
      await usdc.mint(creator.address, 10n);
      await usdc.connect(admin).blacklist(stranger.address);
      await usdc.connect(creator).transfer(agent.address, 4n);
      await usdc.connect(creator).approve(agent.address, 3n);
      await usdc.connect(agent).transferFrom(creator.address, agent.address, 3n);
      const auth: Authorization = {
        from: payer.address,
        to: agent.address as Address,
        value: 2n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      await usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, await signTransfer(fx, payer, auth));
      expect(await usdc.balanceOf(agent.address)).to.equal(9n);
      expect(await usdc.balanceOf(creator.address)).to.equal(3n);
    });
  });

  describe("issue 11: ERC-20 edge cases USDC shares", () => {
    it("transfer, transferFrom, transferWithAuthorization and mint to the zero address revert with ERC20InvalidReceiver", async () => {
      const fx = await setup();
      const { usdc, creator, stranger, payer } = fx;
      await usdc.mint(creator.address, 10n);
      await usdc.connect(creator).approve(stranger.address, 10n);
      const zero = "0x0000000000000000000000000000000000000000";
      await expect(usdc.connect(creator).transfer(zero, 1n)).to.be.revertedWithCustomError(usdc, "ERC20InvalidReceiver").withArgs(zero);
      await expect(usdc.connect(stranger).transferFrom(creator.address, zero, 1n))
        .to.be.revertedWithCustomError(usdc, "ERC20InvalidReceiver")
        .withArgs(zero);
      await expect(usdc.mint(zero, 1n)).to.be.revertedWithCustomError(usdc, "ERC20InvalidReceiver").withArgs(zero);
      const auth: Authorization = {
        from: payer.address,
        to: zero as Address,
        value: 1n,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      await expect(
        usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, await signTransfer(fx, payer, auth)),
      )
        .to.be.revertedWithCustomError(usdc, "ERC20InvalidReceiver")
        .withArgs(zero);
      expect(await usdc.authorizationState(payer.address, auth.nonce)).to.equal(false);
      expect(await usdc.balanceOf(creator.address)).to.equal(10n);
    });

    it("totalSupply equals what was minted and Σ balances through transfers, authorizations and blacklisting", async () => {
      const fx = await setup();
      const { usdc, admin, creator, stranger, agent, payer } = fx;
      const holders = [payer.address, creator.address, stranger.address, agent.address];
      const sum = async () => (await Promise.all(holders.map((h) => usdc.balanceOf(h)))).reduce((a, b) => a + b, 0n);
      expect(await usdc.totalSupply()).to.equal(1_000n * ONE_USDC);
      await usdc.mint(creator.address, 123n);
      await usdc.mint(stranger.address, 7n);
      expect(await usdc.totalSupply()).to.equal(1_000n * ONE_USDC + 130n);
      await usdc.connect(creator).transfer(agent.address, 23n);
      const auth: Authorization = {
        from: payer.address,
        to: creator.address as Address,
        value: 5n * ONE_USDC,
        validAfter: 0n,
        validBefore: (await fx.now()) + 3600n,
        nonce: randomNonce(),
      };
      await usdc[TRANSFER_BYTES](auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, await signTransfer(fx, payer, auth));
      await usdc.connect(admin).blacklist(stranger.address);
      expect(await usdc.totalSupply()).to.equal(1_000n * ONE_USDC + 130n);
      expect(await sum()).to.equal(await usdc.totalSupply());
    });
  });

  describe("issue 11: bytes signatures from ERC-1271 wallets", () => {
    it("permit and transferWithAuthorization accept a contract wallet's signature for exactly the digest it approves", async () => {
      const fx = await setup();
      const { usdc, stranger, agent } = fx;
      const wallet = fx.ethers.getAddress("0x00000000000000000000000000000000000c0de1");
      await installWallet(fx, wallet);
      await usdc.mint(wallet, 50n);
      const deadline = (await fx.now()) + 3600n;
      const permit = { owner: wallet as Address, spender: stranger.address as Address, value: 20n, nonce: 0n, deadline };
      await expect(usdc[PERMIT_BYTES](wallet, stranger.address, 20n, deadline, "0x"))
        .to.be.revertedWithCustomError(usdc, "PermitInvalidSignature")
        .withArgs(wallet);
      await approveDigest(fx, wallet, hashTypedData({ domain: fx.domain, types: permitTypes, primaryType: "Permit", message: permit }));
      // Another amount than the approved digest is refused; the approved one goes through.
      await expect(usdc[PERMIT_BYTES](wallet, stranger.address, 21n, deadline, "0x")).to.be.revertedWithCustomError(
        usdc,
        "PermitInvalidSignature",
      );
      await usdc[PERMIT_BYTES](wallet, stranger.address, 20n, deadline, "0x");
      expect(await usdc.allowance(wallet, stranger.address)).to.equal(20n);

      const auth: Authorization = { from: wallet as Address, to: agent.address as Address, value: 30n, validAfter: 0n, validBefore: deadline, nonce: randomNonce() };
      const args = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
      await expect(usdc[TRANSFER_BYTES](...args, "0x1234"))
        .to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature")
        .withArgs(wallet);
      await approveDigest(
        fx,
        wallet,
        hashTypedData({ domain: fx.domain, types: transferTypes, primaryType: "TransferWithAuthorization", message: auth }),
      );
      await expect(usdc[TRANSFER_BYTES](...args, "0x1234")).to.changeTokenBalances(fx.ethers, usdc, [wallet, agent.address], [-30n, 30n]);
    });
  });
});
