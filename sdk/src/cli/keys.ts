import { readFile } from "node:fs/promises";
import type { Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { UsageError } from "./options.ts";

/** The environment variable holding a raw private key (never a file: a plain key in a file is refused). */
export const PRIVATE_KEY_ENV = "AGENTMESH_PRIVATE_KEY";
/** The environment variable holding a keystore's password; without it the password is prompted for. */
export const KEYSTORE_PASSWORD_ENV = "AGENTMESH_KEYSTORE_PASSWORD";

const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;

/** Checks a raw private key's shape; the message never echoes it. */
export function parsePrivateKey(source: string, value: string): Hex {
  const trimmed = value.trim();
  if (!PRIVATE_KEY.test(trimmed)) throw new UsageError(`${source} must be a 0x-prefixed 32-byte hex private key`);
  return trimmed as Hex;
}

/**
 * Reads a line from the terminal without echoing it (passwords, keys). Refuses when stdin is not a
 * terminal, so that automation sets the environment variable instead of hanging on a prompt.
 */
export async function promptHidden(question: string, envName: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new UsageError(`${envName} is not set and there is no terminal to ask on`);
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
            reject(new UsageError("cancelled"));
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

/**
 * The keystore password from AGENTMESH_KEYSTORE_PASSWORD, else a hidden prompt; a new password
 * (`confirm`) is typed twice, so a typo cannot lock the key away.
 */
export async function keystorePassword(env: NodeJS.ProcessEnv, { confirm = false } = {}): Promise<string> {
  const fromEnv = env[KEYSTORE_PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const password = await promptHidden(confirm ? "new keystore password: " : "keystore password: ", KEYSTORE_PASSWORD_ENV);
  if (confirm && (await promptHidden("the same password again: ", KEYSTORE_PASSWORD_ENV)) !== password) throw new UsageError("the two passwords differ");
  return password;
}

/** Reads a Web3 Secret Storage file, refusing anything else (a plain key in a file above all). */
export async function readKeystore(file: string, label = "--keystore"): Promise<{ json: string; address: Hex }> {
  let json: string;
  try {
    json = await readFile(file, "utf8");
  } catch {
    throw new UsageError(`${label} ${file} cannot be read`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new UsageError(`${label} ${file} is not an encrypted JSON keystore`);
  }
  const record = parsed as { address?: unknown; crypto?: unknown; Crypto?: unknown };
  if (typeof record !== "object" || record === null || (record.crypto === undefined && record.Crypto === undefined)) {
    throw new UsageError(`${label} ${file} is not an encrypted JSON keystore`);
  }
  if (typeof record.address !== "string" || !/^(0x)?[0-9a-fA-F]{40}$/.test(record.address)) {
    throw new UsageError(`${label} ${file} names no address`);
  }
  const address = (record.address.startsWith("0x") ? record.address : `0x${record.address}`) as Hex;
  return { json, address };
}

/** Decrypts a keystore; a wrong password is a {@link UsageError} (nothing is sent). */
export async function decryptKeystore(file: string, password: string): Promise<Hex> {
  const { json } = await readKeystore(file);
  const { Wallet } = await loadEthers();
  try {
    const wallet = await Wallet.fromEncryptedJson(json, password);
    return wallet.privateKey as Hex;
  } catch {
    throw new UsageError(`--keystore ${file} could not be decrypted: wrong password or damaged file`);
  }
}

/** Encrypts `privateKey` as Web3 Secret Storage JSON (scrypt, as ethers writes it). */
export async function encryptKey(privateKey: Hex, password: string): Promise<string> {
  const { Wallet } = await loadEthers();
  return new Wallet(privateKey).encrypt(password);
}

/** ethers is loaded only by the commands that touch a keystore: it is large, and most runs need none. */
function loadEthers() {
  return import("ethers");
}

/**
 * The account that signs: from `--keystore` (its password from the environment or a prompt) or
 * from AGENTMESH_PRIVATE_KEY.
 */
export async function loadAccount(keystore: string | undefined, env: NodeJS.ProcessEnv): Promise<PrivateKeyAccount> {
  if (keystore !== undefined) return privateKeyToAccount(await decryptKeystore(keystore, await keystorePassword(env)));
  const raw = env[PRIVATE_KEY_ENV];
  if (raw === undefined || raw === "") throw new UsageError(`a key is needed: set ${PRIVATE_KEY_ENV} or give --keystore <file>`);
  return privateKeyToAccount(parsePrivateKey(PRIVATE_KEY_ENV, raw));
}
