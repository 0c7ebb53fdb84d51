/**
 * Readiness: whether this process can serve calls now, i.e. its database answers. It feeds `/readyz`
 * (and `/healthz`) and the gRPC Health statuses of "" and every service name. Liveness (`/livez`) needs
 * none of this: the process answers, so it lives.
 *
 * A probe result is cached for `cacheMs` and concurrent askers share one probe, so a probe storm costs
 * one trivial query per `cacheMs`. While someone watches (gRPC Health/Watch) it also probes every
 * `cacheMs` in the background, so that watchers see transitions without asking.
 */
import { ServingStatus, type HealthStatus, type ReadinessCheck } from "./health.js";

/** A probe: resolves with undefined when ready, else with why not (a short, public sentence). Must not throw, and must bound its own time. */
export type Probe = () => Promise<string | undefined>;

/** A readiness answer. */
export interface ReadinessResult {
  ready: boolean;
  /** Why not ready (absent when ready). */
  reason?: string;
}

/** Options of {@link Readiness}. */
export interface ReadinessOptions {
  /** The statuses to keep in step: every known service name, "" included. */
  health: HealthStatus;
  probe: Probe;
  /** How long a result is reused (default 1000 ms). */
  cacheMs?: number;
  /** Told of every transition (for the log). */
  onChange?: (result: ReadinessResult) => void;
}

/** Readiness of one process (see the file comment). Create it once per app; `stop()` on shutdown. */
export class Readiness implements ReadinessCheck {
  readonly #opts: ReadinessOptions;
  readonly #cacheMs: number;
  #last: { at: number; result: ReadinessResult } | undefined;
  #running: Promise<ReadinessResult> | undefined;
  #stopped = false;
  readonly #timer: NodeJS.Timeout;

  constructor(opts: ReadinessOptions) {
    this.#opts = opts;
    this.#cacheMs = opts.cacheMs ?? 1000;
    this.#timer = setInterval(() => {
      if (opts.health.watchers > 0) void this.check();
    }, this.#cacheMs);
    this.#timer.unref();
  }

  /** The current readiness: the cached result when fresh, else a new probe (shared by concurrent callers). Never throws. */
  check(): Promise<ReadinessResult> {
    if (this.#stopped) return Promise.resolve({ ready: false, reason: "shutting down" });
    const last = this.#last;
    if (last && performance.now() - last.at < this.#cacheMs) return Promise.resolve(last.result);
    this.#running ??= this.#probe().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Stops probing for good (shutdown): every later check answers "shutting down" and statuses are left to the caller. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #probe(): Promise<ReadinessResult> {
    // Stamped when the probe starts: a result is as old as the question it answers, so the background
    // tick (every cacheMs) finds it stale and probes again instead of every other tick.
    const started = performance.now();
    let reason: string | undefined;
    try {
      reason = await this.#opts.probe();
    } catch {
      reason = "readiness probe failed";
    }
    const result: ReadinessResult = reason === undefined ? { ready: true } : { ready: false, reason };
    if (this.#stopped) return { ready: false, reason: "shutting down" };
    const changed = this.#last === undefined || this.#last.result.ready !== result.ready || this.#last.result.reason !== result.reason;
    this.#last = { at: started, result };
    this.#opts.health.setAll(result.ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    if (changed) this.#opts.onChange?.(result);
    return result;
  }
}
