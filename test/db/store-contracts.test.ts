/**
 * The store contract suites (test/db/contracts) against every implementation of the domain's stores.
 * Each suite gets stores over a fresh database of its own (cloned from the migrated template). Another
 * implementation (the same stores through PgBouncer, or on Citus) is one more entry in IMPLEMENTATIONS.
 */
import { inject } from "vitest";
import { createStores } from "../../src/db/repositories/stores.js";
import { createTestDatabase } from "../setup/databases.js";
import type { StoreContract, StoresFactory } from "../setup/store-fixtures.js";
import { describeAuditStoreContract } from "./contracts/audit-store.contract.js";
import { describeBulkDeleteStoreContract } from "./contracts/bulk-delete-store.contract.js";
import { describeClientSecretStoreContract } from "./contracts/client-secret-store.contract.js";
import { describeConversationStoreContract } from "./contracts/conversation-store.contract.js";
import { describeKeyStoreContract } from "./contracts/key-store.contract.js";
import { describeMemoryStoreContract } from "./contracts/memory-store.contract.js";
import { describeNamespaceStoreContract } from "./contracts/namespace-store.contract.js";
import { describeSessionStoreContract } from "./contracts/session-store.contract.js";
import { describeStoresContract } from "./contracts/stores.contract.js";
import { describeTraceStoreContract } from "./contracts/trace-store.contract.js";

/** Postgres through the pool, as src/app.ts wires it. */
const postgres: StoresFactory = async () => {
  const db = await createTestDatabase(inject("database"));
  return { stores: createStores(db.dataSource), close: () => db.close() };
};

const IMPLEMENTATIONS: [name: string, make: StoresFactory][] = [["postgres", postgres]];

const CONTRACTS: StoreContract[] = [
  describeSessionStoreContract,
  describeConversationStoreContract,
  describeMemoryStoreContract,
  describeTraceStoreContract,
  describeKeyStoreContract,
  describeClientSecretStoreContract,
  describeNamespaceStoreContract,
  describeAuditStoreContract,
  describeBulkDeleteStoreContract,
  describeStoresContract,
];

for (const [name, make] of IMPLEMENTATIONS) for (const contract of CONTRACTS) contract(name, make);
