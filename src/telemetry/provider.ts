/**
 * Starts sessiond's own tracing from its settings (settings.ts): a tracer provider of this app's own
 * (never registered as OpenTelemetry's global one), a batch span processor, and the OTLP exporter of
 * the configured protocol. The SDK and the exporter are loaded only here, when tracing is on.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Context } from "@opentelemetry/api";
import type { ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, Sampler, SpanExporter } from "@opentelemetry/sdk-trace";
import type { Logger } from "../logger.js";
import { VERSION } from "../version.js";
import type { TracingSettings } from "./settings.js";
import type { Tracing } from "./tracing.js";

/** The name and version of sessiond's instrumentation scope. */
const SCOPE = "sessiond";

/** Longest wait at stop for the last spans to be exported. */
const SHUTDOWN_TIMEOUT_MS = 3000;

/**
 * Creates the provider and exporter for `settings`. Export failures are logged at `warn` when exports
 * start failing and at `info` when they work again, with the endpoint and the error's message only
 * (never the headers: they usually hold a credential).
 */
export async function startTracing(settings: TracingSettings, deps: { logger: Logger }): Promise<Tracing> {
  const [sdk, resources, core] = await Promise.all([import("@opentelemetry/sdk-trace"), import("@opentelemetry/resources"), import("@opentelemetry/core")]);
  const exporter = reporting(await createExporter(settings), settings, deps.logger, core.ExportResultCode.SUCCESS);
  const resource = resources.defaultResource().merge(
    resources.resourceFromAttributes({ ...settings.resourceAttributes, "service.name": settings.serviceName, "service.version": VERSION }),
  );
  const ratio = () => new sdk.TraceIdRatioBasedSampler(settings.samplerRatio);
  const samplers: Record<TracingSettings["sampler"], () => Sampler> = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: ratio,
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: ratio() }),
  };
  const { batch } = settings;
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplers[settings.sampler](),
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter,
        scheduledDelayMillis: batch.scheduledDelayMs,
        exportTimeoutMillis: batch.exportTimeoutMs,
        maxQueueSize: batch.maxQueueSize,
        maxExportBatchSize: batch.maxExportBatchSize,
      }),
    ],
  });
  const storage = new AsyncLocalStorage<Context>();
  let stopped: Promise<void> | undefined;
  return {
    tracer: provider.getTracer(SCOPE, VERSION),
    propagator: new core.W3CTraceContextPropagator(),
    active: () => storage.getStore(),
    run: (context, fn) => storage.run(context, fn),
    shutdown() {
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS).unref()));
        await Promise.race([provider.shutdown().catch((err) => deps.logger.warn({ error: messageOf(err) }, "trace exporter did not shut down cleanly")), expired]);
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** The OTLP exporter of `settings.protocol` (the gRPC one, with its gRPC library, is loaded only when chosen). */
async function createExporter(settings: TracingSettings): Promise<SpanExporter> {
  const common = { url: settings.url, timeoutMillis: settings.timeoutMs, compression: settings.compression as never };
  if (settings.protocol === "grpc") {
    const [{ OTLPTraceExporter }, { Metadata }] = await Promise.all([import("@opentelemetry/exporter-trace-otlp-grpc"), import("@grpc/grpc-js")]);
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(settings.headers)) metadata.set(key.toLowerCase(), value);
    return new OTLPTraceExporter({ ...common, metadata });
  }
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter({ ...common, headers: settings.headers });
}

/** `exporter`, logging when exports start failing and when they work again. */
function reporting(exporter: SpanExporter, settings: TracingSettings, logger: Logger, success: number): SpanExporter {
  const url = new URL(settings.url);
  const endpoint = `${url.origin}${url.pathname}`; // never user info or a query
  let failing = false;
  const report = (result: ExportResult, spans: number) => {
    if (result.code !== success && !failing) {
      failing = true;
      logger.warn({ endpoint, protocol: settings.protocol, spans, error: messageOf(result.error) }, "exporting sessiond's traces failed; spans are dropped until the endpoint accepts them");
    } else if (result.code === success && failing) {
      failing = false;
      logger.info({ endpoint }, "exporting sessiond's traces works again");
    }
  };
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      exporter.export(spans, (result) => {
        report(result, spans.length);
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 500) : "unknown error";
}
