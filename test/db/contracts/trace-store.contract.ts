/**
 * The TraceStore contract (src/domain/trace-store.ts): traces, spans and annotations.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Annotation, Trace } from "../../../src/domain/trace-model.js";
import { allPages, annotateTrace, annotationValues, insertSession, newNamespace, record, sessionTarget, span, spanId, traceId, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeTraceStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`TraceStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const traces = () => ctx.stores.traces;
    const t0 = new Date("2030-05-01T10:00:00.000Z");
    const at = (ms: number) => new Date(t0.getTime() + ms);
    const stats = async (uuid: string) => (await ctx.stores.sessions.find({ uuid }))!.stats;
    const sessionIn = async () => {
      const ns = await newNamespace(ctx.stores);
      return insertSession(ctx.stores, ns.id);
    };

    describe("record", () => {
      it("creates missing traces under the session, stores the spans, sums them up and counts them on the session", async () => {
        const s = await sessionIn();
        const [ta, tb] = [traceId(), traceId()];
        const root = span(ta, { name: "GET /", startTime: at(0), endTime: at(500) });
        const spans = [
          root,
          span(ta, { parentSpanId: root.spanId, name: "db", startTime: at(100), endTime: at(900), statusCode: 2, statusMessage: "boom" }),
          span(tb, { name: "job", startTime: at(50), endTime: at(60), statusCode: 1 }),
        ];
        expect(await record(ctx.stores, s.namespaceId, s.uuid, spans)).toEqual({ recorded: 3, duplicate: 0, tracesCreated: 2 });
        const a = await traces().get(s.namespaceId, ta);
        expect(a?.trace).toMatchObject({ traceId: ta, sessionUuid: s.uuid, rootSpanName: "GET /", spanCount: 2, startTime: at(0), endTime: at(900), statusCode: 2 });
        expect((await traces().get(s.namespaceId, tb))?.trace).toMatchObject({ spanCount: 1, rootSpanName: "job", statusCode: 1 });
        expect(await stats(s.uuid)).toMatchObject({ traceCount: 2, spanCount: 3 });
      });

      it("counts a span already stored as a duplicate and changes nothing for it", async () => {
        const s = await sessionIn();
        const t = traceId();
        const first = span(t, { startTime: at(0), endTime: at(10) });
        await record(ctx.stores, s.namespaceId, s.uuid, [first]);
        const second = span(t, { name: "child", parentSpanId: first.spanId, startTime: at(5), endTime: at(20) });
        expect(await record(ctx.stores, s.namespaceId, s.uuid, [first, second])).toEqual({ recorded: 1, duplicate: 1, tracesCreated: 0 });
        expect(await record(ctx.stores, s.namespaceId, s.uuid, [first, second])).toEqual({ recorded: 0, duplicate: 2, tracesCreated: 0 });
        expect((await traces().get(s.namespaceId, t))?.trace).toMatchObject({ spanCount: 2, startTime: at(0), endTime: at(20) });
        expect(await stats(s.uuid)).toMatchObject({ traceCount: 1, spanCount: 2 });
      });

      it("adds spans of an existing trace to that trace and its session, whatever session they are recorded under", async () => {
        const ns = await newNamespace(ctx.stores);
        const [s1, s2] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        const t = traceId();
        await record(ctx.stores, ns.id, s1.uuid, [span(t)]);
        expect(await record(ctx.stores, ns.id, s2.uuid, [span(t, { name: "late" })])).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 0 });
        expect((await traces().get(ns.id, t))?.trace).toMatchObject({ sessionUuid: s1.uuid, spanCount: 2 });
        expect(await stats(s1.uuid)).toMatchObject({ traceCount: 1, spanCount: 2 });
        expect(await stats(s2.uuid)).toMatchObject({ traceCount: 0, spanCount: 0 });
      });

      it("counts spans on the session of the trace they join, whether the call names a session or none", async () => {
        const ns = await newNamespace(ctx.stores);
        const [owner, caller] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        const [owned, loose, fresh] = [traceId(), traceId(), traceId()];
        await record(ctx.stores, ns.id, owner.uuid, [span(owned, { startTime: at(10), endTime: at(20) })]);
        await record(ctx.stores, ns.id, null, [span(loose, { startTime: at(10), endTime: at(20) })]);
        // A call under no session adds to a session's trace: that session counts the span.
        expect(await record(ctx.stores, ns.id, null, [span(owned, { name: "late", parentSpanId: spanId(), startTime: at(0), endTime: at(30) })])).toEqual({ recorded: 1, duplicate: 0, tracesCreated: 0 });
        expect(await stats(owner.uuid)).toMatchObject({ traceCount: 1, spanCount: 2 });
        expect((await traces().get(ns.id, owned))?.trace).toMatchObject({ sessionUuid: owner.uuid, spanCount: 2, startTime: at(0), endTime: at(30) });
        // A session's call adds to a trace under no session (nobody counts it) and creates one of its own.
        expect(await record(ctx.stores, ns.id, caller.uuid, [span(loose, { statusCode: 2 }), span(fresh)])).toEqual({ recorded: 2, duplicate: 0, tracesCreated: 1 });
        expect((await traces().get(ns.id, loose))?.trace).toMatchObject({ sessionUuid: null, spanCount: 2, statusCode: 2 });
        expect(await stats(caller.uuid)).toMatchObject({ traceCount: 1, spanCount: 1 });
        expect(await stats(owner.uuid)).toMatchObject({ traceCount: 1, spanCount: 2 });
      });

      it("sums one call over the traces of several sessions and its own new ones, each session counted once", async () => {
        const ns = await newNamespace(ctx.stores);
        const [s1, s2, s3] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        const [ta, tb, tc, td] = [traceId(), traceId(), traceId(), traceId()];
        await record(ctx.stores, ns.id, s1.uuid, [span(ta)]);
        await record(ctx.stores, ns.id, s2.uuid, [span(tb)]);
        const twice = span(tc, { name: "new-root" });
        const result = await record(ctx.stores, ns.id, s3.uuid, [span(tb), twice, span(ta), span(td), { ...twice }, span(ta, { name: "a2" })]);
        expect(result).toEqual({ recorded: 5, duplicate: 1, tracesCreated: 2 });
        expect(await stats(s1.uuid)).toMatchObject({ traceCount: 1, spanCount: 3 });
        expect(await stats(s2.uuid)).toMatchObject({ traceCount: 1, spanCount: 2 });
        expect(await stats(s3.uuid)).toMatchObject({ traceCount: 2, spanCount: 2 });
        expect((await traces().get(ns.id, tc))?.trace).toMatchObject({ sessionUuid: s3.uuid, spanCount: 1, rootSpanName: "new-root" });
      });

      it("writes nothing for a session that is cancelled, soft-deleted or missing, and says which", async () => {
        const ns = await newNamespace(ctx.stores);
        const [cancelled, deleted] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        await ctx.stores.sessions.update(cancelled, { state: "cancelled" });
        await ctx.stores.sessions.update(deleted, { deleteTime: "now" });
        const t = traceId();
        expect(await record(ctx.stores, ns.id, cancelled.uuid, [span(t)])).toEqual({ refused: "cancelled" });
        expect(await record(ctx.stores, ns.id, deleted.uuid, [span(t)])).toEqual({ refused: "soft_deleted" });
        expect(await record(ctx.stores, ns.id, randomUUID(), [span(t)])).toEqual({ refused: "missing" });
        expect(await traces().get(ns.id, t)).toBeUndefined();
        expect(await stats(cancelled.uuid)).toMatchObject({ traceCount: 0, spanCount: 0 });
      });

      it("keeps the same trace id apart in two namespaces", async () => {
        const a = await sessionIn();
        const b = await sessionIn();
        const t = traceId();
        await record(ctx.stores, a.namespaceId, a.uuid, [span(t)]);
        expect(await record(ctx.stores, b.namespaceId, b.uuid, [span(t), span(t)])).toMatchObject({ recorded: 2, tracesCreated: 1 });
        expect((await traces().get(a.namespaceId, t))?.trace).toMatchObject({ sessionUuid: a.uuid, spanCount: 1 });
        expect((await traces().get(b.namespaceId, t))?.trace).toMatchObject({ sessionUuid: b.uuid, spanCount: 2 });
      });
    });

    describe("get and list", () => {
      it("returns a trace with its spans as recorded", async () => {
        const s = await sessionIn();
        const t = traceId();
        const root = span(t, { name: "root", kind: 2, startTime: at(0), endTime: at(100), attributes: { "http.method": "GET", n: 1 }, events: [{ name: "ev", time: at(50), attributes: { a: true } }] });
        const child = span(t, { name: "child", parentSpanId: root.spanId, startTime: at(10), endTime: at(20), statusCode: 2, statusMessage: "bad" });
        await record(ctx.stores, s.namespaceId, s.uuid, [child, root]);
        const got = await traces().get(s.namespaceId, t);
        expect(got?.trace).toMatchObject({ traceId: t, sessionUuid: s.uuid, spanCount: 2 });
        expect([...got!.spans].sort((x, y) => x.startTime.getTime() - y.startTime.getTime())).toEqual([root, child]);
      });

      it("returns undefined for a trace never recorded or recorded in another namespace", async () => {
        const s = await sessionIn();
        const other = await newNamespace(ctx.stores);
        const t = traceId();
        await record(ctx.stores, s.namespaceId, s.uuid, [span(t)]);
        expect(await traces().get(s.namespaceId, traceId())).toBeUndefined();
        expect(await traces().get(other.id, t)).toBeUndefined();
      });

      it("lists a session's traces newest first, in pages with no gap or repeat, apart from other sessions' and session-less ones", async () => {
        const ns = await newNamespace(ctx.stores);
        const [s, other] = [await insertSession(ctx.stores, ns.id), await insertSession(ctx.stores, ns.id)];
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          ids.push(traceId());
          await record(ctx.stores, ns.id, s.uuid, [span(ids[i])]);
        }
        await record(ctx.stores, ns.id, other.uuid, [span(traceId())]);
        const loose = traceId();
        await record(ctx.stores, ns.id, null, [span(loose)]);
        type Listed = Trace & { createTime: Date };
        const pages = await allPages<Listed>(2, (after) => traces().list(ns.id, s.uuid, after && { createTime: after.createTime, uuid: after.uuid }, 2));
        expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
        expect(pages.flat().map((t) => t.traceId)).toEqual([...ids].reverse());
        expect((await traces().list(ns.id, null, undefined, 10)).map((t) => t.traceId)).toEqual([loose]);
        expect((await traces().list(ns.id, null, undefined, 10))[0].sessionUuid).toBeNull();
        expect(await traces().list((await newNamespace(ctx.stores)).id, null, undefined, 10)).toEqual([]);
      });
    });

    describe("delete", () => {
      it("deletes traces with their spans and annotations, counts them, and takes them off the session's counters", async () => {
        const s = await sessionIn();
        const [t1, t2, keep] = [traceId(), traceId(), traceId()];
        await record(ctx.stores, s.namespaceId, s.uuid, [span(t1), span(t1), span(t2), span(keep)]);
        await annotateTrace(ctx.stores, s.namespaceId, t1);
        await annotateTrace(ctx.stores, s.namespaceId, t1, { name: "other" });
        await annotateTrace(ctx.stores, s.namespaceId, t2);
        const gone = await ctx.stores.transaction((tx) => tx.traces.delete(s.namespaceId, [t1, t2, traceId()]));
        expect(gone).toEqual({ traces: 2, spans: 3, annotations: 3 });
        expect(await traces().get(s.namespaceId, t1)).toBeUndefined();
        expect(await traces().get(s.namespaceId, t2)).toBeUndefined();
        expect((await traces().get(s.namespaceId, keep))?.trace.spanCount).toBe(1);
        expect(await stats(s.uuid)).toMatchObject({ traceCount: 1, spanCount: 1 });
        expect(await ctx.stores.transaction((tx) => tx.traces.delete(s.namespaceId, [t1]))).toEqual({ traces: 0, spans: 0, annotations: 0 });
      });

      it("never deletes another namespace's traces", async () => {
        const a = await sessionIn();
        const b = await newNamespace(ctx.stores);
        const t = traceId();
        await record(ctx.stores, a.namespaceId, a.uuid, [span(t)]);
        expect(await ctx.stores.transaction((tx) => tx.traces.delete(b.id, [t]))).toEqual({ traces: 0, spans: 0, annotations: 0 });
        expect(await traces().get(a.namespaceId, t)).toBeDefined();
      });
    });

    describe("annotations", () => {
      it("resolves a trace and a span to targets with distinct keys; undefined for what does not exist or is in another namespace", async () => {
        const s = await sessionIn();
        const other = await newNamespace(ctx.stores);
        const t = traceId();
        const sp = span(t);
        await record(ctx.stores, s.namespaceId, s.uuid, [sp]);
        const trace = await traces().resolve(s.namespaceId, t);
        const spanTarget = await traces().resolve(s.namespaceId, t, sp.spanId);
        expect(trace).toMatchObject({ kind: "trace", sessionUuid: s.uuid, spanRowId: null });
        expect(trace?.traceUuid).toBe((await traces().get(s.namespaceId, t))?.trace.uuid);
        expect(spanTarget).toMatchObject({ kind: "span", sessionUuid: s.uuid, traceUuid: trace!.traceUuid });
        expect(spanTarget?.spanRowId).toBeTypeOf("string");
        expect(spanTarget?.key).not.toBe(trace?.key);
        expect(await traces().resolve(s.namespaceId, t)).toEqual(trace);
        expect(await traces().resolve(s.namespaceId, t, spanId())).toBeUndefined();
        expect(await traces().resolve(s.namespaceId, traceId())).toBeUndefined();
        expect(await traces().resolve(other.id, t)).toBeUndefined();
        expect(await traces().resolve(other.id, t, sp.spanId)).toBeUndefined();
      });

      it("inserts annotations on traces, spans and sessions, each listed under its own target", async () => {
        const s = await sessionIn();
        const t = traceId();
        const sp = span(t);
        await record(ctx.stores, s.namespaceId, s.uuid, [sp]);
        const onTrace = await annotateTrace(ctx.stores, s.namespaceId, t, { label: "t", score: 0.5, explanation: "why", metadata: { m: 1 }, annotatorKind: "llm" });
        const onSpan = await annotateTrace(ctx.stores, s.namespaceId, t, { label: "s", score: null }, sp.spanId);
        const onSession = await ctx.stores.transaction((tx) => tx.traces.annotate(s.namespaceId, sessionTarget(s), annotationValues({ label: "whole", annotatorKind: "code" })));
        expect(onTrace.created).toBe(true);
        expect(onTrace.annotation).toMatchObject({ target: { kind: "trace", traceId: t }, name: "quality", annotatorKind: "llm", label: "t", score: 0.5, explanation: "why", metadata: { m: 1 }, identifier: "" });
        expect(onSpan.annotation).toMatchObject({ target: { kind: "span", traceId: t, spanId: sp.spanId }, label: "s", score: null });
        expect(onSession.annotation).toMatchObject({ target: { kind: "session", sessionUuid: s.uuid }, label: "whole", annotatorKind: "code" });
        const listed = async (key: string) => uuids(await traces().annotations(s.namespaceId, key, undefined, 10));
        expect(await listed((await traces().resolve(s.namespaceId, t))!.key)).toEqual([onTrace.annotation.uuid]);
        expect(await listed((await traces().resolve(s.namespaceId, t, sp.spanId))!.key)).toEqual([onSpan.annotation.uuid]);
        expect(await listed(sessionTarget(s).key)).toEqual([onSession.annotation.uuid]);
      });

      it("upserts by identifier: the same target, name and identifier updates the one annotation; no identifier always inserts", async () => {
        const s = await sessionIn();
        const t = traceId();
        await record(ctx.stores, s.namespaceId, s.uuid, [span(t)]);
        const first = await annotateTrace(ctx.stores, s.namespaceId, t, { identifier: "run-1", label: "a", score: 1 });
        const second = await annotateTrace(ctx.stores, s.namespaceId, t, { identifier: "run-1", label: "b", score: 2, annotatorKind: "code" });
        expect(second.created).toBe(false);
        expect(second.annotation).toMatchObject({ uuid: first.annotation.uuid, label: "b", score: 2, annotatorKind: "code", identifier: "run-1" });
        expect(second.annotation.createTime).toEqual(first.annotation.createTime);
        expect(second.annotation.updateTime.getTime()).toBeGreaterThanOrEqual(first.annotation.updateTime.getTime());
        expect((await annotateTrace(ctx.stores, s.namespaceId, t, { identifier: "run-2" })).created).toBe(true);
        expect((await annotateTrace(ctx.stores, s.namespaceId, t, { identifier: "run-1", name: "other-name" })).created).toBe(true);
        expect((await annotateTrace(ctx.stores, s.namespaceId, t)).created).toBe(true);
        expect((await annotateTrace(ctx.stores, s.namespaceId, t)).created).toBe(true);
        const key = (await traces().resolve(s.namespaceId, t))!.key;
        expect(await traces().annotations(s.namespaceId, key, undefined, 100)).toHaveLength(5);
      });

      it("lists a target's annotations newest first in pages, never another namespace's", async () => {
        const s = await sessionIn();
        const other = await newNamespace(ctx.stores);
        const t = traceId();
        await record(ctx.stores, s.namespaceId, s.uuid, [span(t)]);
        const made: string[] = [];
        for (let i = 0; i < 5; i++) made.push((await annotateTrace(ctx.stores, s.namespaceId, t, { label: `l${i}` })).annotation.uuid);
        const key = (await traces().resolve(s.namespaceId, t))!.key;
        const pages = await allPages<Annotation>(2, (after) => traces().annotations(s.namespaceId, key, after && { createTime: after.createTime, uuid: after.uuid }, 2));
        expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
        expect(uuids(pages.flat())).toEqual([...made].reverse());
        expect(await traces().annotations(other.id, key, undefined, 10)).toEqual([]);
      });

      it("counts new annotations on the session (what a hard delete reports)", async () => {
        const ns = await newNamespace(ctx.stores);
        const s = await insertSession(ctx.stores, ns.id);
        const t = traceId();
        await record(ctx.stores, ns.id, s.uuid, [span(t)]);
        await annotateTrace(ctx.stores, ns.id, t, { identifier: "x" });
        await annotateTrace(ctx.stores, ns.id, t, { identifier: "x" });
        await ctx.stores.transaction((tx) => tx.traces.annotate(ns.id, sessionTarget(s), annotationValues()));
        const counts = await ctx.stores.transaction(async (tx) => {
          await tx.sessions.find({ uuid: s.uuid }, true);
          return tx.sessions.delete(s.uuid, ns.id);
        });
        expect(counts).toEqual({ participants: 0, turns: 0, traces: 1, spans: 1, annotations: 2, archivedTurns: 0, compactions: 0 });
      });
    });
  });
}
