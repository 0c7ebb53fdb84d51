/**
 * ExportSessions and ImportSessions: sessions with everything they hold, out as a stream of
 * self-contained records and back in one record at a time.
 *
 * Export names sessions as a bulk delete does (ids, caller ids, or a filter's snapshot, see
 * bulk-delete.ts) and reads them a page at a time, each page in one REPEATABLE READ transaction taken in a
 * bounded slot (at most EXPORT_READERS pages read at once per process; a page waiting longer than
 * SLOT_WAIT_MS fails the call with UNAVAILABLE). The records of a page are yielded after the
 * transaction ended: a client that reads slowly holds no connection and no slot.
 *
 * Import writes each record in a transaction of its own, in a bounded slot too (IMPORT_WRITERS), as
 * the records arrive, up to IMPORT_WINDOW of a call at once (two records of one session one after the
 * other, in order): memory holds those records and the per-record results.
 */
import type { BulkDeleteStore, SnapshotKey } from "./bulk-delete-store.js";
import { MAX_BULK_IDS, NO_NAMESPACE, type BulkSelector } from "./bulk-delete.js";
import { DomainError, InvalidInputError, NamespaceGoneError, StoreBusyError, UnavailableError } from "./errors.js";
import { decodeSessionId, encodeSessionId, sessionIdIn } from "./ids.js";
import type { ConflictMode, SessionExportStore } from "./session-export-store.js";
import { checkFilter, checkNamespace } from "./session-model.js";
import { checkRecord, type RecordInput, type SessionRecord } from "./session-record.js";
import { createSlots } from "./slots.js";
import type { Changed } from "./watch-model.js";

/** Sessions per page (one read transaction each). */
export const EXPORT_PAGE = 25;
/** Pages read at once per process. */
export const EXPORT_READERS = 2;
/** Records written at once per process. */
export const IMPORT_WRITERS = 3;
/** Records of one call written at once. */
export const IMPORT_WINDOW = 3;
/** Longest wait for a read or write slot. */
export const SLOT_WAIT_MS = 30_000;

/** What ExportSessions is asked. */
export interface ExportInput {
  namespace: string;
  selector: BulkSelector;
}

/** One event of an export stream. */
export type ExportEvent =
  | { type: "started"; total: number }
  | { type: "record"; record: SessionRecord; namespaceId: string }
  | { type: "summary"; exported: number; notFound: string[]; missing: number };

/** The first message of an import. */
export interface ImportHeader {
  namespace: string;
  sourceNamespace: string;
  /** undefined: an unknown value. */
  onConflict: ConflictMode | undefined;
}

export type ImportOutcome = "imported" | "replaced" | "skipped" | "invalid" | "failed";

/** One record's result. */
export interface ImportResult {
  index: number;
  sessionId: string;
  /** Global id in the target namespace ("" when the record was not written or found). */
  id: string;
  outcome: ImportOutcome;
  error: string;
}

/** An import's results and counts. */
export interface ImportSummary {
  results: ImportResult[];
  imported: number;
  replaced: number;
  skipped: number;
  failed: number;
}

/**
 * One record as it arrives: a function that maps it to domain input, so that a mapping error (a time
 * out of range, an unknown enum) becomes that record's INVALID outcome; `sessionId` names it in results.
 */
export interface IncomingRecord {
  sessionId: string;
  read(): RecordInput;
}

/** ExportSessions and ImportSessions. */
export interface SessionExport {
  exportSessions(input: ExportInput, signal: AbortSignal): AsyncGenerator<ExportEvent>;
  importSessions(header: ImportHeader, records: AsyncIterable<IncomingRecord>, signal: AbortSignal): Promise<ImportSummary>;
}

/** Where an unexpected failure of a record's write is logged (the client is told a generic reason). */
export type ImportFailureLog = (err: unknown, sessionId: string) => void;

export const WRITE_FAILED = "the record could not be written; nothing of it was kept (see server logs)";

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason ?? new Error("aborted");
}

/** Builds the export and import over their stores. */
export function createSessionExport(deps: { store: SessionExportStore; bulk: BulkDeleteStore; log?: ImportFailureLog; changed?: Changed }): SessionExport {
  const { store, bulk } = deps;
  const read = createSlots(EXPORT_READERS, SLOT_WAIT_MS, () => new StoreBusyError(`no export reader free within ${SLOT_WAIT_MS} ms; try again in a moment`));
  const write = createSlots(IMPORT_WRITERS, SLOT_WAIT_MS, () => new StoreBusyError(`no import writer free within ${SLOT_WAIT_MS} ms; try again in a moment`));

  async function* exportSessions(input: ExportInput, signal: AbortSignal): AsyncGenerator<ExportEvent> {
    const namespace = checkNamespace(input.namespace);
    const sel = input.selector;
    if (sel.kind === "none") throw new InvalidInputError("selector", "set one of ids, session_ids or filter");
    if (sel.kind === "filter") checkFilter(sel.filter, "filter.filter");
    else {
      const field = sel.kind === "ids" ? "ids.values" : "session_ids.values";
      if (sel.values.length === 0) throw new InvalidInputError(field, "must name at least one session");
      if (sel.values.length > MAX_BULK_IDS) throw new InvalidInputError(field, `at most ${MAX_BULK_IDS} per call, got ${sel.values.length}`);
    }
    const namespaceId = (await bulk.namespaceId(namespace, false)) ?? NO_NAMESPACE;
    let exported = 0;
    let missing = 0;
    const notFound: string[] = [];

    if (sel.kind === "filter") {
      const snap = namespaceId === NO_NAMESPACE ? { total: 0 } : await read(() => bulk.markSnapshot(namespaceId, sel.filter, sel.includeDeleted));
      yield { type: "started", total: snap.total };
      let after: SnapshotKey | undefined;
      while (snap.mark) {
        throwIfAborted(signal);
        const page = await read(() => bulk.snapshotPage(namespaceId, sel.filter, sel.includeDeleted, snap.mark!, after, EXPORT_PAGE));
        if (!page.uuids.length) break;
        after = page.last;
        const records = await read(() => store.readRecords(namespaceId, namespace, { kind: "uuid", values: page.uuids }));
        missing += page.uuids.length - records.length;
        for (const record of records) {
          exported++;
          yield { type: "record", record, namespaceId };
        }
      }
      missing = Math.max(missing, snap.total - exported);
      yield { type: "summary", exported, notFound, missing };
      return;
    }

    const values = [...new Set(sel.values)];
    yield { type: "started", total: values.length };
    for (let i = 0; i < values.length; i += EXPORT_PAGE) {
      throwIfAborted(signal);
      const slice = values.slice(i, i + EXPORT_PAGE);
      // Each identifier's key (uuid or caller id); undefined when malformed or of another namespace.
      const keys = slice.map((v): string | undefined => {
        if (sel.kind === "sessionIds") return v !== "" && v.length <= 256 && !/[\u0000-\u001f\u007f]/.test(v) ? v : undefined;
        try {
          const id = decodeSessionId(v, "id");
          return namespaceId !== NO_NAMESPACE && sessionIdIn(id, namespaceId) ? id.uuid : undefined;
        } catch {
          return undefined;
        }
      });
      const wanted = keys.filter((k): k is string => k !== undefined);
      const records =
        wanted.length && namespaceId !== NO_NAMESPACE
          ? await read(() => store.readRecords(namespaceId, namespace, sel.kind === "ids" ? { kind: "uuid", values: wanted } : { kind: "external", values: wanted }))
          : [];
      const byKey = new Map(records.map((r) => [sel.kind === "ids" ? r.session.uuid : r.session.sessionId, r]));
      for (let j = 0; j < slice.length; j++) {
        const record = keys[j] === undefined ? undefined : byKey.get(keys[j]!);
        if (!record) {
          missing++;
          notFound.push(slice[j]);
          continue;
        }
        exported++;
        yield { type: "record", record, namespaceId };
      }
    }
    yield { type: "summary", exported, notFound, missing };
  }

  async function importSessions(header: ImportHeader, records: AsyncIterable<IncomingRecord>, signal: AbortSignal): Promise<ImportSummary> {
    const namespace = checkNamespace(header.namespace);
    const source = header.sourceNamespace === "" ? namespace : checkNamespace(header.sourceNamespace, "source_namespace");
    if (!header.onConflict) throw new InvalidInputError("on_conflict", "unknown mode");
    const mode = header.onConflict;
    let namespaceId: string | undefined;
    const summary: ImportSummary = { results: [], imported: 0, replaced: 0, skipped: 0, failed: 0 };
    let index = 0;
    /** Writes in flight, by the session ids and uuids they write: a later record of the same session waits for them. */
    const inFlight = new Map<string, Promise<void>>();
    const window = new Set<Promise<void>>();
    let failure: unknown;
    const forgetNamespace = () => (namespaceId = undefined);
    for await (const incoming of records) {
      throwIfAborted(signal);
      if (failure) break;
      const result: ImportResult = { index: index++, sessionId: incoming.sessionId, id: "", outcome: "invalid", error: "" };
      summary.results.push(result);
      let record: SessionRecord;
      try {
        record = checkRecord(incoming.read(), source);
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        result.error = err.message;
        summary.failed++;
        continue;
      }
      namespaceId ??= (await bulk.namespaceId(namespace, true))!;
      const keys = [`s:${record.session.sessionId}`, `u:${record.session.uuid}`];
      const before = keys.map((k) => inFlight.get(k)).filter((p) => p !== undefined);
      const target = namespaceId;
      const done = (async () => {
        await Promise.all(before);
        await writeOne(target, record, result);
      })().catch((err) => void (failure ??= err));
      for (const k of keys) inFlight.set(k, done);
      window.add(done);
      void done.then(() => {
        window.delete(done);
        for (const k of keys) if (inFlight.get(k) === done) inFlight.delete(k);
      });
      // Up to IMPORT_WINDOW records of a call are written at once (in order of arrival, each in its own
      // transaction); the next message is read once one of them is done, so memory stays bounded.
      if (window.size >= IMPORT_WINDOW) await Promise.race(window);
    }
    await Promise.all(window);
    if (failure) throw failure;
    return summary;

    /** Writes one checked record and fills in its result. @throws UnavailableError (the call ends) */
    async function writeOne(namespaceId: string, record: SessionRecord, result: ImportResult): Promise<void> {
      try {
        const written = await write(() => store.writeRecord(namespaceId, record, mode));
        if (written.outcome !== "exists") deps.changed?.(namespaceId, { uuid: record.session.uuid }, true);
        result.id = encodeSessionId(namespaceId, record.session.uuid);
        if (written.outcome === "exists") {
          result.outcome = mode === "skip" ? "skipped" : "failed";
          if (mode === "skip") summary.skipped++;
          else {
            result.id = "";
            result.error = `a session with session_id "${record.session.sessionId}" or this id exists in namespace "${namespace}" (on_conflict FAIL)`;
            summary.failed++;
          }
        } else {
          result.outcome = written.outcome;
          summary[written.outcome]++;
        }
      } catch (err) {
        // The database gone or the writers busy: the rest would fail too; the call ends (the client
        // knows from the results it did not get which records to send again).
        if (err instanceof UnavailableError) throw err;
        if (err instanceof NamespaceGoneError) forgetNamespace();
        result.outcome = "failed";
        result.error = err instanceof DomainError ? err.message : WRITE_FAILED;
        if (result.error === WRITE_FAILED) deps.log?.(err, record.session.sessionId);
        summary.failed++;
      }
    }
  }

  return { exportSessions, importSessions };
}
