import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { privateKeyToAccount } from "viem/accounts";
import { decryptKeystoreFile, encryptKeystore, readKeystoreFile } from "../keystore.ts";
import { loadAccount, parsePrivateKey } from "./keys.ts";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const ADDRESS = privateKeyToAccount(KEY).address;

describe("command-line keys", () => {
  let dir: string;
  let file: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-keys-"));
    file = path.join(dir, "key.json");
    await writeFile(file, await encryptKeystore(KEY, "a long password"));
  });

  after(() => rm(dir, { recursive: true, force: true }));

  it("round-trips a key through an encrypted keystore whose address reads without the password", async () => {
    assert.equal((await readKeystoreFile(file)).address.toLowerCase(), ADDRESS.toLowerCase());
    assert.equal(await decryptKeystoreFile(file, "a long password"), KEY);
    const account = await loadAccount(file, { AGENTMESH_KEYSTORE_PASSWORD: "a long password", AGENTMESH_PRIVATE_KEY: "0x" + "11".repeat(32) });
    assert.equal(account.address, ADDRESS, "--keystore wins over the environment's key");
  });

  it("refuses a wrong password, a plain key in a file, and a malformed key, without echoing secrets", async () => {
    await assert.rejects(loadAccount(file, { AGENTMESH_KEYSTORE_PASSWORD: "wrong" }), { name: "UsageError", message: `--keystore ${file} could not be decrypted: wrong password or damaged file` });
    const plain = path.join(dir, "plain.txt");
    await writeFile(plain, KEY);
    await assert.rejects(loadAccount(plain, { AGENTMESH_KEYSTORE_PASSWORD: "a long password" }), { name: "UsageError", message: `--keystore ${plain} is not an encrypted JSON keystore` });
    await assert.rejects(loadAccount(undefined, {}), { message: "a key is needed: set AGENTMESH_PRIVATE_KEY or give --keystore <file>" });
    assert.throws(() => parsePrivateKey("AGENTMESH_PRIVATE_KEY", KEY.slice(0, 40)), (error: Error) => !error.message.includes(KEY.slice(2, 40)));
    assert.equal((await loadAccount(undefined, { AGENTMESH_PRIVATE_KEY: ` ${KEY}\n` })).address, ADDRESS);
  });
});
