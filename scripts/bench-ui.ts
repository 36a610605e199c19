/**
 * `npm run bench:ui`: builds the dApp, sums the gzipped JavaScript its entry HTML loads before the
 * first render (the entry chunk and its static imports, not lazily loaded chunks), then serves the
 * build against the real local stack and reads the largest contentful paint of the marketplace page
 * in headless Chromium (median of three cold loads). The last line is one JSON object:
 * `{"firstLoadJsGzKb": …, "lcpMs": …}`.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { buildFrontend } from "../frontend/serve.ts";
import { startLocalStack } from "./lib/local-stack.ts";

const DIST = path.resolve(import.meta.dirname, "../frontend/dist");
const LOADS = 3;

interface ManifestChunk {
  file: string;
  imports?: string[];
}

/** Gzipped kilobytes of every JS file reachable from the entry HTML through static imports. */
async function firstLoadJsGzKb(): Promise<{ kb: number; files: string[] }> {
  const manifest = JSON.parse(await readFile(path.join(DIST, ".vite/manifest.json"), "utf8")) as Record<string, ManifestChunk>;
  const reached = new Set<string>();
  const visit = (key: string) => {
    if (reached.has(key)) return;
    reached.add(key);
    for (const imported of manifest[key].imports ?? []) visit(imported);
  };
  visit("index.html");
  const files = [...reached].map((key) => manifest[key].file).filter((file) => file.endsWith(".js"));
  const bytes = await Promise.all(files.map(async (file) => gzipSync(await readFile(path.join(DIST, file))).length));
  return { kb: Math.round((bytes.reduce((sum, size) => sum + size, 0) / 1024) * 10) / 10, files };
}

console.log("Building the dApp…");
await buildFrontend();
const firstLoad = await firstLoadJsGzKb();
console.log(`first load: ${firstLoad.files.length} JS files, ${firstLoad.kb} KB gzipped`);

console.log("Starting the local stack…");
const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-bench-ui-"));
const running = await startLocalStack({
  localFile: path.join(dir, "local.json"),
  ui: { port: 0, mode: "preview" },
  healthProbeIntervalMs: 3_600_000,
});
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const samples: number[] = [];
try {
  for (let load = 0; load < LOADS; load++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } }); // a cold cache each time
    const page = await context.newPage();
    await page.addInitScript(() => {
      const record = window as unknown as { lcpMs: number };
      record.lcpMs = 0;
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) record.lcpMs = entry.startTime;
      }).observe({ type: "largest-contentful-paint", buffered: true });
    });
    await page.goto(`${running.uiUrl}/`);
    await page.getByTestId("offers").waitFor({ timeout: 30_000 });
    await page.waitForTimeout(500); // let the last candidate be reported
    samples.push(await page.evaluate(() => (window as unknown as { lcpMs: number }).lcpMs));
    await context.close();
  }
} finally {
  await browser.close();
  await running.stop();
  await rm(dir, { recursive: true, force: true });
}
const lcpMs = Math.round([...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]);
console.log(`marketplace LCP per load: ${samples.map((sample) => `${Math.round(sample)} ms`).join(", ")}`);
console.log(JSON.stringify({ firstLoadJsGzKb: firstLoad.kb, lcpMs }));
