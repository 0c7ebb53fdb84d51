/** Every migration, oldest first. A new one is generated with `npm run migration:generate -- src/db/migrations/<Name>` and added here. */
import { Initial1795425045783 } from "./1795425045783-Initial.js";

export const migrations = [Initial1795425045783];
