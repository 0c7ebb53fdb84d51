/**
 * The AuditStore contract (src/domain/audit-log.ts): events appended in batches, read newest first.
 */
import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../../../src/domain/audit-log.js";
import { InvalidInputError } from "../../../src/domain/errors.js";
import { newUuid } from "../../../src/domain/ids.js";
import { allPages, auditEvent, insertSession, newNamespace, unique, useStores, uuids, type StoresFactory } from "../../setup/store-fixtures.js";

export function describeAuditStoreContract(name: string, makeStores: StoresFactory): void {
  describe(`AuditStore contract (${name})`, () => {
    const ctx = useStores(makeStores);
    const audit = () => ctx.stores.audit;
    /** Times far from "now" and apart per test, so that each test's events are the newest it reads. */
    let clock = Date.UTC(2040, 0, 1);
    const tick = () => new Date((clock += 1000));

    it("appends events and lists them newest first, every field as written", async () => {
      const ns = await newNamespace(ctx.stores);
      const actor = unique("actor");
      const events = [
        auditEvent({ time: tick(), actor, namespaceId: ns.id, namespace: ns.name, method: "a/B", itemCount: 3, code: "ok", requestId: "r1", detail: { subject_sha256: "ab12", sessions_deleted: 2 } }),
        auditEvent({ time: tick(), actor, namespaceId: null, namespace: "not a name!", method: "c/D", itemCount: 0, code: "invalid_argument", requestId: "" }),
      ];
      await audit().append(events);
      expect(await audit().list({ actor, limit: 10 })).toEqual([...events].reverse());
    });

    it("orders events of the same time by id, and pages with no gap or repeat", async () => {
      const actor = unique("actor");
      const time = tick();
      const events = Array.from({ length: 5 }, () => auditEvent({ time, actor }));
      await audit().append(events);
      const newest = [...events].sort((a, b) => (a.uuid < b.uuid ? 1 : -1));
      const pages = await allPages<AuditEvent>(2, (after) => audit().list({ actor, limit: 2, after: after && { createTime: after.time, uuid: after.uuid } }));
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      expect(uuids(pages.flat())).toEqual(uuids(newest));
    });

    it("filters by namespace and by actor, both together when both are given", async () => {
      const [a, b] = [await newNamespace(ctx.stores), await newNamespace(ctx.stores)];
      const [x, y] = [unique("x"), unique("y")];
      const ax = auditEvent({ time: tick(), namespaceId: a.id, namespace: a.name, actor: x });
      const ay = auditEvent({ time: tick(), namespaceId: a.id, namespace: a.name, actor: y });
      const bx = auditEvent({ time: tick(), namespaceId: b.id, namespace: b.name, actor: x });
      await audit().append([ax, ay, bx]);
      expect(uuids(await audit().list({ namespaceId: a.id, limit: 10 }))).toEqual([ay.uuid, ax.uuid]);
      expect(uuids(await audit().list({ actor: x, limit: 10 }))).toEqual([bx.uuid, ax.uuid]);
      expect(uuids(await audit().list({ namespaceId: a.id, actor: x, limit: 10 }))).toEqual([ax.uuid]);
      expect(uuids(await audit().list({ limit: 3 }))).toEqual([bx.uuid, ay.uuid, ax.uuid]);
    });

    it("takes an empty batch as nothing to do", async () => {
      await audit().append([]);
    });

    it("refuses a batch whose rows it cannot store (InvalidInputError), writing none of it", async () => {
      const actor = unique("actor");
      const dup = newUuid();
      await expect(audit().append([auditEvent({ time: tick(), actor }), auditEvent({ uuid: dup, time: tick(), actor }), auditEvent({ uuid: dup, time: tick(), actor })])).rejects.toBeInstanceOf(InvalidInputError);
      expect(await audit().list({ actor, limit: 10 })).toEqual([]);
    });

    it("names namespaces that exist, by namespace id", async () => {
      const [a, b] = [await newNamespace(ctx.stores), await newNamespace(ctx.stores)];
      const missing = newUuid();
      expect(await audit().namespaceNames([a.id, b.id, missing])).toEqual(new Map([[a.id, a.name], [b.id, b.name]]));
      expect(await audit().namespaceNames([])).toEqual(new Map());
    });

    it("names the namespaces of sessions that exist, by session uuid", async () => {
      const [a, b] = [await newNamespace(ctx.stores), await newNamespace(ctx.stores)];
      const [sa, sb] = [await insertSession(ctx.stores, a.id), await insertSession(ctx.stores, b.id)];
      const missing = newUuid();
      const found = await audit().namespacesOfSessions([sa.uuid, sb.uuid, missing]);
      expect(found).toEqual(new Map([[sa.uuid, a.name], [sb.uuid, b.name]]));
      expect(await audit().namespacesOfSessions([])).toEqual(new Map());
    });
  });
}
