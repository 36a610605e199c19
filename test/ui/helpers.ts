/**
 * What the browser tests share: the real local stack serving the dApp's production build
 * (`vite preview`), Debian's Chromium through playwright-core, and helpers that act and wait on the
 * page as a user would. Screenshots go to `.agentmesh/screenshots/`.
 */
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { createPublicClient, createWalletClient, http, type Abi, type Address, type ContractFunctionArgs, type ContractFunctionName, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { buildFrontend } from "../../frontend/serve.ts";
import { formatUsdcAmount } from "../../frontend/src/lib/usdc.ts";
import { startLocalStack, type LocalStackOptions, type RunningStack } from "../../scripts/lib/local-stack.ts";

export const SCREENSHOTS = path.resolve(import.meta.dirname, "../../.agentmesh/screenshots");
export const WAIT = { timeout: 20_000 };
export const USDC = 1_000_000n;

/** Atomic USDC as the dApp shows it: "0.050000 USDC". */
export const usdcText = (atomic: bigint) => `${formatUsdcAmount(atomic)} USDC`;

const REPOSITORY = path.resolve(import.meta.dirname, "../..");
/** What the dApp's build is made from: a change to any of these makes `frontend/dist` stale. */
const BUILD_INPUTS = ["frontend/src", "frontend/index.html", "frontend/vite.config.ts", "frontend/tsconfig.json", "frontend/package.json", "sdk/src", "deployments", "package-lock.json"];

/** The latest modification time (ms) of `paths` and of everything under them. */
async function latestModification(paths: string[]): Promise<number> {
  let latest = 0;
  for (const entry of paths) {
    const info = await stat(entry).catch(() => undefined);
    if (info === undefined) continue;
    latest = Math.max(latest, info.mtimeMs);
    if (info.isDirectory()) {
      for (const child of await readdir(entry, { recursive: true })) latest = Math.max(latest, (await stat(path.join(entry, child))).mtimeMs);
    }
  }
  return latest;
}

/**
 * Builds the dApp unless `frontend/dist` is newer than everything it is made from: each browser test
 * file runs in its own process, and the later ones reuse the first one's build.
 */
async function buildFrontendIfStale(): Promise<void> {
  const builtAt = await stat(path.join(REPOSITORY, "frontend/dist/index.html")).then((info) => info.mtimeMs, () => 0);
  if ((await latestModification(BUILD_INPUTS.map((input) => path.join(REPOSITORY, input)))) >= builtAt) await buildFrontend();
}

export interface BrowserStack {
  running: RunningStack;
  browser: Browser;
  page: Page;
  client: PublicClient;
  /** The address of a seeded demo account ("admin", "creator", "agentAuthor", …). */
  account(role: string): Address;
  /** A contract read on the local chain. */
  read<T>(parameters: Parameters<PublicClient["readContract"]>[0]): Promise<T>;
  /**
   * A transaction sent as the demo account `role` outside the page (what an admin, a token issuer or
   * another user does meanwhile), waited for; throws if it reverts.
   */
  writeAs<const abi extends Abi, functionName extends ContractFunctionName<abi, "nonpayable">>(
    role: string,
    call: { address: Address; abi: abi; functionName: functionName; args: ContractFunctionArgs<abi, "nonpayable", functionName> },
  ): Promise<void>;
  /** Saves the whole page as `<name>.png`. */
  shot(name: string): Promise<void>;
  /** Waits for `condition`; on a timeout, saves what the page showed as `failed-….png`. */
  waitFor<T>(condition: Promise<T>): Promise<T>;
  /** Waits until `locator` shows `text`. */
  waitForText(locator: Locator, text: string): Promise<void>;
  /**
   * Clicks the button named `button` inside `scope` and returns the transaction status it leads to.
   * A status already showing from an earlier attempt is not taken for this one's: the result must
   * differ from it (a confirmed status carries its own transaction hash).
   */
  submit(scope: Locator, button: string): Promise<string>;
  /** Goes to `pathname` in the app, without reloading. */
  go(pathname: string): Promise<void>;
  /** Waits until the page's path (with its query) matches `pattern`, after in-app navigation. */
  waitForPath(pattern: RegExp): Promise<string>;
  /** Connects the local dev account through RainbowKit. */
  connect(): Promise<void>;
  /** Makes the local dev wallet sign as the demo account `role`. */
  actAs(role: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Builds the dApp, starts the local stack serving it (with `options`, e.g. workers that act only when
 * a test asks) and opens a 1280×900 page in headless Chromium.
 */
export async function startBrowserStack(options: Omit<LocalStackOptions, "localFile" | "ui"> = {}): Promise<BrowserStack> {
  const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-ui-"));
  await Promise.all([buildFrontendIfStale(), mkdir(SCREENSHOTS, { recursive: true })]);
  const running = await startLocalStack({ ...options, localFile: path.join(dir, "local.json"), ui: { port: 0, mode: "preview" } });
  const stopStack = async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const client = createPublicClient({ transport: http(running.stack.rpcUrl) });
  let browser: Browser;
  let page: Page;
  try {
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  } catch (error) {
    await stopStack();
    throw error;
  }
  page.on("pageerror", (error) => console.error("page error:", error.message));

  const account = (role: string) => running.stack.accounts[role].address as Address;
  async function waitFor<T>(condition: Promise<T>): Promise<T> {
    try {
      return await condition;
    } catch (error) {
      await page.screenshot({ path: path.join(SCREENSHOTS, `failed-${Date.now()}.png`), fullPage: true });
      throw error;
    }
  }
  return {
    running,
    browser,
    page,
    client,
    account,
    read: <T>(parameters: Parameters<PublicClient["readContract"]>[0]) => client.readContract(parameters) as Promise<T>,
    async writeAs(role, call) {
      const wallet = createWalletClient({ account: privateKeyToAccount(running.stack.accounts[role].privateKey as Hex), transport: http(running.stack.rpcUrl) });
      const hash = await wallet.writeContract({ ...call, chain: null } as Parameters<typeof wallet.writeContract>[0]);
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new Error(`${call.functionName} as ${role} reverted in ${hash}`);
    },
    shot: async (name) => {
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
    waitFor,
    waitForText: (locator, text) => waitFor(locator.filter({ hasText: text }).first().waitFor(WAIT)),
    async submit(scope, button) {
      const settled = scope.locator('[data-status="confirmed"], [data-status="failed"]');
      const before = (await settled.count()) > 0 ? ((await settled.first().textContent()) ?? "") : undefined;
      await scope.getByRole("button", { name: button }).click();
      const status = (before === undefined ? settled : settled.filter({ hasNotText: before })).first();
      await waitFor(status.waitFor(WAIT));
      return (await status.textContent()) ?? "";
    },
    async go(pathname) {
      await page.evaluate((to) => {
        window.history.pushState(null, "", to);
        window.dispatchEvent(new PopStateEvent("popstate"));
      }, pathname);
    },
    async waitForPath(pattern) {
      await waitFor(page.waitForFunction((source) => new RegExp(source).test(location.pathname + location.search), pattern.source, WAIT));
      return new URL(page.url()).pathname + new URL(page.url()).search;
    },
    async connect() {
      await page.getByRole("button", { name: "Connect Wallet" }).click();
      await page.getByText("Local dev account").first().click();
      await page.getByLabel("Dev account").waitFor(WAIT);
    },
    async actAs(role) {
      await page.getByLabel("Dev account").selectOption(account(role));
    },
    async stop() {
      await browser.close();
      await stopStack();
    },
  };
}
