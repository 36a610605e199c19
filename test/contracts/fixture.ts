import { network } from "hardhat";
import { DEFAULT_SUITE_OPTIONS, deploySuite } from "../../scripts/lib/deploy-suite.ts";

/** A fresh in-process chain with the suite deployed; signers named for their part in the tests. */
export async function deployFixture() {
  const connection = await network.create();
  const { ethers } = connection;
  const [admin, treasury, providerOwner, receiptSigner, creator, agent, stranger, ...others] =
    await ethers.getSigners();
  const suite = await deploySuite(ethers, admin, {
    ...DEFAULT_SUITE_OPTIONS,
    admin: admin.address,
    treasury: treasury.address,
  });
  return { connection, ethers, ...suite, admin, treasury, providerOwner, receiptSigner, creator, agent, stranger, others };
}
