/**
 * The sessiond process: read config, start, and shut down gracefully on SIGTERM/SIGINT.
 */
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { startApp } from "./app.js";

/** The oldest Node that runs sessiond (connect-node 2.2 needs 22; `npm start` runs the pinned Node 24). */
const MIN_NODE = [22, 12];

async function main() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    console.error(`sessiond: needs Node ${MIN_NODE.join(".")} or later, this is ${process.versions.node} (npm start runs the pinned Node 24: node_modules/.bin/node)`);
    process.exit(1);
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`sessiond: invalid configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  // A process-wide setting, so it belongs to the process, not to startApp (which tests embed).
  if (config.heapGrowthPercent > 0) v8.setFlagsFromString(`--heap-growing-percent=${config.heapGrowthPercent}`);
  const logger = createLogger(config.logLevel);
  const started = Date.now();
  const app = await startApp(config, logger);
  logger.info({ url: app.url, port: app.port, startup_ms: Date.now() - started }, "sessiond listening (Connect, gRPC and gRPC-Web on one port)");
  // Shown once, on the terminal and never in the log: only its hash is stored.
  if (app.firstStartKey) {
    process.stderr.write(
      `\nsessiond: first start, so an ADMIN API key for all namespaces was created. It is shown only now:\n\n` +
        `    export SESSIOND_KEY=${app.firstStartKey}\n\n` +
        `Send it as "Authorization: Bearer $SESSIOND_KEY". Lost it? Make another with: npm run keys -- create --role admin\n\n`,
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    // The process exits within the grace period plus a margin, whatever happens.
    setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, config.shutdownGraceMs + 1500).unref();
    app.stop().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, "error during shutdown");
        process.exit(1);
      },
    );
  };
  // Test hook, off unless SESSIOND_TEST_MEMORY_SIGNAL=1 (the fault suite's soak test sets it): on SIGUSR2,
  // run a full garbage collection and log memoryUsage() (msg "memory"), so a test can compare memory
  // before and after a load with the garbage left out. Exposes gc() only in that case.
  if (process.env.SESSIOND_TEST_MEMORY_SIGNAL === "1") {
    v8.setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    process.on("SIGUSR2", () => {
      gc();
      gc();
      const m = process.memoryUsage();
      logger.info({ rss: m.rss, heap_used: m.heapUsed, heap_total: m.heapTotal, external: m.external, array_buffers: m.arrayBuffers }, "memory");
    });
  }
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err) => {
  console.error(`sessiond: failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
