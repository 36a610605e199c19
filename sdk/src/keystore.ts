import { readFile } from "node:fs/promises";
import type { Hex } from "viem";

/**
 * Keys kept in encrypted JSON keystores (Web3 Secret Storage, as geth and ethers write them), with
 * ethers doing the cryptography (`@agentmesh/sdk/keystore`), for the relayer and the `agentmesh`
 * command line alike. A key never sits in a file in the clear; a keystore's password comes from
 * the environment or a prompt that does not echo.
 */

/** The variable a keystore's password is read from before a prompt is tried. */
export const KEYSTORE_PASSWORD_VARIABLE = "AGENTMESH_KEYSTORE_PASSWORD";

/** A keystore that cannot be read or decrypted, or a password that cannot be had: the message says which. */
export class KeystoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeystoreError";
  }
}

/** ethers is loaded only when a keystore is touched: it is large, and most runs need none. */
const loadEthers = () => import("ethers");

/**
 * Reads keystore file `file` (named `label` in messages), refusing anything that is not Web3
 * Secret Storage (a plain key in a file above all); its JSON and address, readable without the
 * password.
 */
export async function readKeystoreFile(file: string, label = "keystore"): Promise<{ json: string; address: Hex }> {
  let json: string;
  try {
    json = await readFile(file, "utf8");
  } catch {
    throw new KeystoreError(`${label} ${file} cannot be read`);
  }
  let record: { address?: unknown; crypto?: unknown; Crypto?: unknown } | null;
  try {
    record = JSON.parse(json);
  } catch {
    throw new KeystoreError(`${label} ${file} is not an encrypted JSON keystore`);
  }
  if (typeof record !== "object" || record === null || (record.crypto === undefined && record.Crypto === undefined)) {
    throw new KeystoreError(`${label} ${file} is not an encrypted JSON keystore`);
  }
  if (typeof record.address !== "string" || !/^(0x)?[0-9a-fA-F]{40}$/.test(record.address)) throw new KeystoreError(`${label} ${file} names no address`);
  return { json, address: (record.address.startsWith("0x") ? record.address : `0x${record.address}`) as Hex };
}

/** The private key in keystore `file`, decrypted with `password`; a wrong password is a {@link KeystoreError}. */
export async function decryptKeystoreFile(file: string, password: string, label = "keystore"): Promise<Hex> {
  const { json } = await readKeystoreFile(file, label);
  const { Wallet } = await loadEthers();
  try {
    return (await Wallet.fromEncryptedJson(json, password)).privateKey as Hex;
  } catch {
    throw new KeystoreError(`${label} ${file} could not be decrypted: wrong password or damaged file`);
  }
}

/** Encrypts `privateKey` with `password` as Web3 Secret Storage JSON (scrypt, as ethers writes it). */
export async function encryptKeystore(privateKey: Hex, password: string): Promise<string> {
  const { Wallet } = await loadEthers();
  return new Wallet(privateKey).encrypt(password);
}

/**
 * A keystore's password: from {@link KEYSTORE_PASSWORD_VARIABLE}, else typed at a hidden prompt;
 * a new password (`confirm`) is typed twice, so that a typo cannot lock the key away.
 */
export async function keystorePassword(env: NodeJS.ProcessEnv = process.env, { confirm = false } = {}): Promise<string> {
  const fromEnv = env[KEYSTORE_PASSWORD_VARIABLE];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const password = await promptHidden(confirm ? "new keystore password: " : "keystore password: ", KEYSTORE_PASSWORD_VARIABLE);
  if (confirm && (await promptHidden("the same password again: ", KEYSTORE_PASSWORD_VARIABLE)) !== password) throw new KeystoreError("the two passwords differ");
  return password;
}

/**
 * Reads a line from the terminal without echoing it (a password, a key). Refuses when stdin is not
 * a terminal, so that automation sets `variable` instead of hanging on a prompt.
 */
export async function promptHidden(question: string, variable: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new KeystoreError(`${variable} is not set and there is no terminal to ask on`);
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = "";
      const onData = (chunk: string) => {
        for (const char of chunk) {
          if (char === "\r" || char === "\n" || char === "\u0004") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            resolve(typed);
            return;
          }
          if (char === "\u0003") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            reject(new KeystoreError("cancelled"));
            return;
          }
          typed = char === "\u007f" || char === "\b" ? typed.slice(0, -1) : typed + char;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}
