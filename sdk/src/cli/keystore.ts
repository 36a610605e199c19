import { chmod, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { getAddress, type Hex } from "viem";
import { encryptKeystore, keystorePassword, promptHidden, readKeystoreFile } from "../keystore.ts";
import { parsePrivateKey, PRIVATE_KEY_ENV, withKeystore } from "./keys.ts";
import { UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh keystore new <file>      a random key, encrypted (password from AGENTMESH_KEYSTORE_PASSWORD or a prompt)
  agentmesh keystore import <file>   the key in AGENTMESH_PRIVATE_KEY (or typed at a hidden prompt), encrypted
  agentmesh keystore address <file>  the address, without the password`;

/** `agentmesh keystore new|import|address <file>`: makes and reads Web3 Secret Storage keystores. */
export async function keystore(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const [action, ...rest] = args;
  const { json, positionals, force } = parseArgsOnly(rest);
  if (positionals.length !== 1 || !["new", "import", "address"].includes(action ?? "")) throw new UsageError(USAGE);
  const file = positionals[0]!;
  if (action === "address") {
    const { address } = await withKeystore(() => readKeystoreFile(file));
    print(json, getAddress(address), file);
    return;
  }
  let privateKey: Hex;
  if (action === "new") privateKey = generatePrivateKey();
  else {
    const raw = env[PRIVATE_KEY_ENV];
    privateKey = parsePrivateKey(PRIVATE_KEY_ENV, raw !== undefined && raw !== "" ? raw : await withKeystore(() => promptHidden("private key: ", PRIVATE_KEY_ENV)));
  }
  const password = await withKeystore(() => keystorePassword(env, { confirm: true }));
  if (password.length < 8) throw new UsageError(`the keystore password must have at least 8 characters`);
  const encrypted = await encryptKeystore(privateKey, password);
  try {
    // "wx": never overwrite a keystore (and the key in it) unless --force says so.
    await writeFile(file, `${encrypted}\n`, { mode: 0o600, flag: force ? "w" : "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new UsageError(`${file} exists; pass --force to replace it`);
    throw error;
  }
  await chmod(file, 0o600); // writeFile's mode applies only to a new file
  print(json, privateKeyToAccount(privateKey).address, file);
}

function print(json: boolean, address: string, file: string): void {
  console.log(json ? JSON.stringify({ address, keystore: file }) : `${address} (${file})`);
}

/** Arguments of a command that needs no chain: `--json`, `--force` and positionals. */
function parseArgsOnly(args: readonly string[]): { json: boolean; force: boolean; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { json: { type: "boolean", default: false }, force: { type: "boolean", default: false } },
      allowPositionals: true,
      strict: true,
    });
    return { json: values.json, force: values.force, positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
