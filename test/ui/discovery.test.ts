/**
 * The dApp as on a public network, where the deployment names no relayer: served (production build)
 * with a copy of the local stack file without `relayerUrl`, it finds the relayer in the
 * RelayerDirectory, lets the user pick among several, serves a session from its provider's relayer,
 * and says why when no relayer can be used.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { Page } from "playwright-core";
import { AgentSession, relayerDirectoryAbi } from "../../sdk/src/index.ts";
import { serveFrontend, type FrontendServer } from "../../frontend/serve.ts";
import { freePort } from "../../scripts/lib/local-stack.ts";
import { startBrowserStack, usdcText, USDC, WAIT, type BrowserStack } from "./helpers.ts";

describe("dApp finding its relayer on-chain", { timeout: 300_000 }, () => {
  let ui: BrowserStack;
  let page: Page;
  let app: FrontendServer;
  /** The stack file copy the dApp under test is served with. */
  let publicFile: string;
  /** What the dApp under test is served with: the stack file with `edit` applied, and no `relayerUrl`. */
  const serveWith = async (edit: (stack: Record<string, unknown>) => Record<string, unknown> = (stack) => stack) => {
    const { relayerUrl: _override, ...stack } = ui.running.stack;
    await writeFile(publicFile, JSON.stringify(edit(stack)));
  };
  /** Every URL the page asked for (emptied by the tests where they start counting). */
  const requests: string[] = [];
  const relayer = () => ui.running.relayer.url;
  const alias = () => relayer().replace("127.0.0.1", "localhost");
  /** Points receipt signer `role`'s directory entry at `url`, as the signer does. */
  const announce = (role: string, url: string) =>
    ui.writeAs(role, { address: ui.running.stack.contracts.RelayerDirectory!, abi: relayerDirectoryAbi, functionName: "announce", args: [url] });

  before(async () => {
    ui = await startBrowserStack({ settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 }, healthProbeIntervalMs: 3_600_000 });
    page = ui.page;
    publicFile = path.join(path.dirname(ui.running.localFile), "public.json");
    await serveWith();
    app = await serveFrontend({ mode: "preview", port: await freePort(), localFile: publicFile });
    page.on("request", (request) => void requests.push(request.url()));
  });

  after(async () => {
    await app?.close();
    await ui?.stop();
  });

  it("lists the providers from the relayer announced in the RelayerDirectory, when the deployment names none", async () => {
    await page.goto(app.url);
    await page.getByTestId("offer-1-agentmesh-small").waitFor(WAIT);
    assert.equal(await page.getByTestId("offers").locator("tbody tr").count(), 4);
    assert.match((await page.getByTestId("offer-2-agentmesh-small").textContent())!, /0\.000100 USDC \/ 1K tokens/);
    // Found on-chain and checked with the relayer itself, then read from it.
    assert.ok(requests.includes(`${relayer()}/v1/relayer`), "the relayer was checked");
    assert.ok(requests.includes(`${relayer()}/v1/providers`), "the providers came from the relayer found");
    // One relayer found: nothing to pick.
    assert.equal(await page.getByLabel("Relayer").count(), 0);
  });

  it("says why without a RelayerDirectory, and that a network without a deployment has none", async () => {
    await serveWith((stack) => {
      const { RelayerDirectory: _directory, ...contracts } = stack.contracts as Record<string, string>;
      return { ...stack, contracts };
    });
    await page.reload();
    const reason = page.getByTestId("relayer-missing-reason");
    await reason.waitFor(WAIT);
    assert.equal(await reason.textContent(), "The deployment on chain 31337 has no RelayerDirectory: give the relayer's URL.");
    assert.equal(await page.getByText("No relayer is configured").count(), 0);
    await page.getByLabel("Network").selectOption("8453");
    await ui.waitForText(page.locator(".state"), "AgentMesh is not deployed on this network (chain 8453)");
    await page.getByLabel("Network").selectOption("31337"); // wagmi remembers the network
    await serveWith();
  });

  it("lets the user pick among several relayers, remembers the pick, and serves a session from its provider's relayer", async () => {
    // Provider 2's receipt signer announces the same relayer under another name: two relayers check.
    await announce("receiptSignerB", alias());
    await page.goto(app.url);
    const select = page.getByLabel("Relayer");
    await ui.waitFor(select.waitFor(WAIT));
    const port = new URL(relayer()).port;
    assert.deepEqual(await select.locator("option").allTextContents(), [`127.0.0.1:${port} (1 provider)`, `localhost:${port} (1 provider)`]);
    assert.equal(await select.inputValue(), relayer());

    requests.length = 0;
    await select.selectOption(alias());
    await ui.waitFor(page.waitForRequest(`${alias()}/v1/providers`, WAIT));
    assert.equal(await page.getByTestId("offers").locator("tbody tr").count(), 4);
    assert.equal(await page.evaluate(() => localStorage.getItem("agentmesh:relayer:31337")), alias());
    await page.reload();
    await select.waitFor(WAIT);
    assert.equal(await select.inputValue(), alias());
    await select.selectOption(relayer());

    // A session with provider 2 is read from provider 2's relayer, whichever serves the marketplace.
    const { stack } = ui.running;
    const session = await AgentSession.open({
      relayerUrl: relayer(),
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: 2,
      model: "agentmesh-small",
      maxSpend: USDC,
    });
    const completion = (await new OpenAI(session.openAIOptions()).chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Hello!" }],
      max_tokens: 8,
    })) as OpenAI.Chat.Completions.ChatCompletion & { cost: { amountAtomic: string } };
    await ui.connect();
    await ui.actAs("agent");
    requests.length = 0;
    await ui.go(`/sessions/${session.sessionId}`);
    await page.getByRole("button", { name: "Sign to view" }).click();
    const receipt = page.getByTestId("receipt-1");
    await ui.waitFor(receipt.waitFor(WAIT));
    assert.ok((await receipt.textContent())!.includes(usdcText(BigInt(completion.cost.amountAtomic))), "the call's exact cost");
    assert.ok(requests.some((url) => url.startsWith(`${alias()}/v1/sessions/${session.sessionId}`)), "read from provider 2's relayer");
    assert.ok(!requests.some((url) => url.startsWith(`${relayer()}/v1/sessions/`)), "not from the marketplace's");
    await session.close();
  });

  it("shows the discovery error's sentence when every directory entry points at a dead URL, and looks again on request", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    await announce("receiptSignerA", dead);
    await announce("receiptSignerB", dead);
    await page.goto(app.url);
    const reason = page.getByTestId("relayer-missing-reason");
    await ui.waitFor(reason.waitFor(WAIT));
    assert.match(
      (await reason.textContent())!,
      new RegExp(
        `^No relayer announced for any active provider serves this deployment: ${dead} does not answer GET /v1/relayer as a relayer: .+\\. ` +
          `A relayer that does not allow calls from ${app.url} \\(its --cors-origin\\) cannot answer this page either\\.$`,
      ),
    );
    assert.equal(await page.getByTestId("offers").count(), 0);
    await ui.shot("relayer-not-found");
    // Once provider 1's signer points at the relayer again, looking again finds it.
    await announce("receiptSignerA", relayer());
    await page.getByRole("button", { name: "Look again" }).click();
    await ui.waitFor(page.getByTestId("offer-1-agentmesh-small").waitFor(WAIT));
    assert.equal(await page.getByTestId("offers").locator("tbody tr").count(), 4); // the relayer lists every provider
  });

  it("runs from a static host without rewrites: a deep link gets the app, which holds no local stack", async () => {
    // A plain file server, as a static host is: unknown paths answer 404.html with status 404.
    const dist = path.resolve(import.meta.dirname, "../../frontend/dist");
    const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml" };
    const host = createServer((req, res) => {
      const file = path.join(dist, path.normalize(decodeURIComponent((req.url ?? "/").split("?")[0])).replace(/^(\.\.[/\\])+/, ""));
      readFile(file.endsWith("/") ? path.join(file, "index.html") : file).then(
        (body) => res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" }).end(body),
        () => readFile(path.join(dist, "404.html")).then((body) => res.writeHead(404, { "content-type": "text/html" }).end(body)),
      );
    });
    host.listen(0, "127.0.0.1");
    await once(host, "listening");
    try {
      const origin = `http://127.0.0.1:${(host.address() as { port: number }).port}`;
      const published = JSON.parse(await (await fetch(`${origin}/agentmesh.json`)).text()) as { local: unknown; deployments: Record<string, unknown> };
      assert.equal(published.local, null);
      assert.doesNotMatch(JSON.stringify(published), /privateKey|relayerUrl|rpcUrl/);
      const answer = await page.goto(`${origin}/agents`);
      assert.equal(answer?.status(), 404);
      await ui.waitFor(page.getByRole("heading", { name: "Agents", level: 1 }).waitFor(WAIT));
      // A build offers Base and Base Sepolia only; with no deployment file for Base it says so.
      if (published.deployments["8453"] === undefined) await ui.waitForText(page.locator(".state"), "AgentMesh is not deployed on this network (chain 8453)");
    } finally {
      host.close();
      await once(host, "close");
    }
  });
});
