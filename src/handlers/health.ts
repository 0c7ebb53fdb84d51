/**
 * gRPC health checking (`grpc.health.v1.Health`): what load balancers, Kubernetes gRPC probes and
 * `grpc-health-probe` ask. See https://github.com/grpc/grpc/blob/master/doc/health-checking.md.
 */
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** A status as the enum value or its name, e.g. `ServingStatus.SERVING` or `"SERVING"`. */
export type StatusInput = ServingStatus | keyof typeof ServingStatus;

function toStatus(status: StatusInput): ServingStatus {
  return typeof status === "number" ? status : ServingStatus[status];
}

/**
 * The serving status of each service name; "" is the server as a whole. Set it from the application
 * (SERVING once listening, NOT_SERVING when shutting down or when a dependency is down).
 */
export class HealthStatus {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #listeners = new Set<(service: string, status: ServingStatus) => void>();

  /** Starts with the given statuses; by default the overall status "" is SERVING (as grpc-go's server does). */
  constructor(initial: Record<string, StatusInput> = { "": "SERVING" }) {
    for (const [service, status] of Object.entries(initial)) this.#statuses.set(service, toStatus(status));
  }

  /** Sets one service's status; watchers see it if it changed. */
  set(service: string, status: StatusInput): void {
    const value = toStatus(status);
    if (this.#statuses.get(service) === value) return;
    this.#statuses.set(service, value);
    for (const listener of this.#listeners) listener(service, value);
  }

  /** Sets every known service, "" included, e.g. `setAll("NOT_SERVING")` first thing on shutdown. */
  setAll(status: StatusInput): void {
    for (const service of [...this.#statuses.keys()]) this.set(service, status);
  }

  /** The status of `service`, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** How many Watch streams are open: readiness (readiness.ts) probes in the background only while someone watches. */
  get watchers(): number {
    return this.#listeners.size;
  }

  /** A snapshot of every known service's status. */
  list(): Map<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  /**
   * Yields the current status of `service` (SERVICE_UNKNOWN if unknown), then every change, until
   * `signal` aborts; then throws the signal's reason (a stream that ended cleanly would tell a client
   * the watch is over for good). Changes that happen while the consumer is busy are queued.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus, never> {
    const queue: ServingStatus[] = [this.#statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN];
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const listener = (s: string, status: ServingStatus) => {
      if (s !== service) return;
      queue.push(status);
      notify();
    };
    this.#listeners.add(listener);
    signal.addEventListener("abort", notify);
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        // Pending changes go out before an abort ends the stream: watchers see NOT_SERVING on shutdown.
        const next = queue.shift();
        if (next !== undefined) {
          if (next !== last) yield (last = next);
          continue;
        }
        signal.throwIfAborted();
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      this.#listeners.delete(listener);
      signal.removeEventListener("abort", notify);
    }
  }
}

/** What the Health handlers ask before answering: a fresh (briefly cached) readiness probe, which updates the statuses. */
export interface ReadinessCheck {
  check(): Promise<unknown>;
}

/**
 * The Health service over a {@link HealthStatus}. Check on an unknown service fails with `not_found`.
 * With `readiness`, Check, List and the start of Watch first refresh the statuses from its probe
 * (cached briefly, so a probe storm costs nothing); Watch then reports every transition.
 */
export function createHealthHandlers(status: HealthStatus, readiness?: ReadinessCheck): ServiceImpl<typeof Health> {
  return {
    async check(req) {
      await readiness?.check();
      const value = status.get(req.service);
      if (value === undefined) throw new ConnectError(`unknown service ${JSON.stringify(req.service.slice(0, 200))}`, Code.NotFound);
      return { status: value };
    },
    async *watch(req, context) {
      await readiness?.check();
      for await (const value of status.watch(req.service, context.signal)) yield { status: value };
    },
    async list() {
      await readiness?.check();
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [service, value] of status.list()) statuses[service] = { status: value };
      return { statuses };
    },
  };
}

/** Routes registering the Health service, for a router or `createRouterTransport`. */
export function createHealthRoutes(status: HealthStatus): (router: ConnectRouter) => void {
  return (router) => router.service(Health, createHealthHandlers(status));
}
