/** Every migration, oldest first. A new one is generated with `npm run migration:generate -- src/db/migrations/<Name>` and added here. */
import { Initial1795425045783 } from "./1795425045783-Initial.js";
import { SessionAnnotationCount1795426881141 } from "./1795426881141-SessionAnnotationCount.js";
import { Conversations1795433411621 } from "./1795433411621-Conversations.js";
import { Traces1795435151799 } from "./1795435151799-Traces.js";
import { Tenancy1795439974289 } from "./1795439974289-Tenancy.js";
import { TimeOrderedIds1795979340577 } from "./1795979340577-TimeOrderedIds.js";
import { NamespaceKeys1796040000000 } from "./1796040000000-NamespaceKeys.js";
import { AppendTurnsFunction1796090000000 } from "./1796090000000-AppendTurnsFunction.js";
import { Distribute1796100000000 } from "./1796100000000-Distribute.js";
import { AppendTurnsState1796110000000 } from "./1796110000000-AppendTurnsState.js";
import { UniqueKeyPlans1796120000000 } from "./1796120000000-UniqueKeyPlans.js";
import { SessionActivity1796125000000 } from "./1796125000000-SessionActivity.js";
import { AppendTurnsOneRow1796130000000 } from "./1796130000000-AppendTurnsOneRow.js";
import { RecordSpansFunction1796140000000 } from "./1796140000000-RecordSpansFunction.js";
import { OperationsRetention1796150000000 } from "./1796150000000-OperationsRetention.js";
import { WatchChanges1796160000000 } from "./1796160000000-WatchChanges.js";
import { Compactions1796170000000 } from "./1796170000000-Compactions.js";
import { TurnSearch1796180000000 } from "./1796180000000-TurnSearch.js";
import { Erasure1796190000000 } from "./1796190000000-Erasure.js";

export const migrations = [Initial1795425045783, SessionAnnotationCount1795426881141, Conversations1795433411621, Traces1795435151799, Tenancy1795439974289, TimeOrderedIds1795979340577, NamespaceKeys1796040000000, AppendTurnsFunction1796090000000, Distribute1796100000000, AppendTurnsState1796110000000, UniqueKeyPlans1796120000000, SessionActivity1796125000000, AppendTurnsOneRow1796130000000, RecordSpansFunction1796140000000, OperationsRetention1796150000000, WatchChanges1796160000000, Compactions1796170000000, TurnSearch1796180000000, Erasure1796190000000];
