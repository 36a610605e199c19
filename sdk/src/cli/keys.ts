import type { Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { KeystoreError, decryptKeystoreFile, keystorePassword } from "../keystore.ts";
import { UsageError } from "./options.ts";

/** The environment variable holding a raw private key (never a file: a plain key in a file is refused). */
export const PRIVATE_KEY_ENV = "AGENTMESH_PRIVATE_KEY";

const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;

/** Checks a raw private key's shape; the message never echoes it. */
export function parsePrivateKey(source: string, value: string): Hex {
  const trimmed = value.trim();
  if (!PRIVATE_KEY.test(trimmed)) throw new UsageError(`${source} must be a 0x-prefixed 32-byte hex private key`);
  return trimmed as Hex;
}

/** Runs a keystore operation; what it refuses (a wrong password, not a keystore, no terminal) is a usage error. */
export async function withKeystore<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof KeystoreError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * The key that signs: from `--keystore` (its password from the environment or a prompt) or from
 * AGENTMESH_PRIVATE_KEY.
 */
export async function loadPrivateKey(keystore: string | undefined, env: NodeJS.ProcessEnv): Promise<Hex> {
  if (keystore !== undefined) return withKeystore(async () => decryptKeystoreFile(keystore, await keystorePassword(env), "--keystore"));
  const raw = env[PRIVATE_KEY_ENV];
  if (raw === undefined || raw === "") throw new UsageError(`a key is needed: set ${PRIVATE_KEY_ENV} or give --keystore <file>`);
  return parsePrivateKey(PRIVATE_KEY_ENV, raw);
}

/** The account of {@link loadPrivateKey}'s key. */
export async function loadAccount(keystore: string | undefined, env: NodeJS.ProcessEnv): Promise<PrivateKeyAccount> {
  return privateKeyToAccount(await loadPrivateKey(keystore, env));
}
