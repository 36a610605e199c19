import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { Wallet } from "ethers";
import type { Hex } from "viem";

/**
 * Keys kept in encrypted JSON keystores (Web3 Secret Storage, as geth and ethers write them), with
 * ethers doing the cryptography (`@agentmesh/sdk/keystore`). A key never sits in a file in the clear;
 * a keystore's password comes from the environment or a prompt.
 */

/** The variable a keystore's password is read from before a prompt is tried. */
export const KEYSTORE_PASSWORD_VARIABLE = "AGENTMESH_KEYSTORE_PASSWORD";

/** A keystore that cannot be read, or a wrong password: the message says which. */
export class KeystoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeystoreError";
  }
}

/** Encrypts `privateKey` with `password` into keystore JSON (scrypt, as ethers' defaults). */
export async function encryptKeystore(privateKey: Hex, password: string): Promise<string> {
  return new Wallet(privateKey).encrypt(password);
}

/**
 * The private key in keystore file `filePath`, decrypted with `password`.
 *
 * @throws {KeystoreError} naming the file when it cannot be read, is not a keystore, or the password is wrong.
 */
export async function decryptKeystoreFile(filePath: string, password: string): Promise<Hex> {
  let json: string;
  try {
    json = await readFile(filePath, "utf8");
  } catch (error) {
    throw new KeystoreError(`cannot read the keystore ${filePath}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return (await Wallet.fromEncryptedJson(json, password)).privateKey as Hex;
  } catch (error) {
    const message = (error as Error).message;
    if (/incorrect password/i.test(message)) throw new KeystoreError(`wrong password for the keystore ${filePath}`, { cause: error });
    throw new KeystoreError(`${filePath} is not a JSON keystore: ${message}`, { cause: error });
  }
}

/**
 * The password of keystore `filePath`: from {@link KEYSTORE_PASSWORD_VARIABLE}, else typed at a
 * prompt (not echoed) when the process has a terminal.
 *
 * @throws {KeystoreError} when there is neither.
 */
export async function keystorePassword(filePath: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env[KEYSTORE_PASSWORD_VARIABLE];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  if (!process.stdin.isTTY) throw new KeystoreError(`the password of ${filePath} is needed: set ${KEYSTORE_PASSWORD_VARIABLE} or run in a terminal`);
  return promptHidden(`password for ${filePath}: `);
}

/** Reads a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  process.stderr.write(question);
  const muted = new Writable({ write: (_chunk, _encoding, done) => done() });
  const reader = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => reader.question("", resolve));
  } finally {
    reader.close();
    process.stderr.write("\n");
  }
}
