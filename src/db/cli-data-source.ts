/**
 * The DataSource the TypeORM CLI loads (`npm run migration:generate -- <path>`, `npm run migration:run`).
 * It connects to DATABASE_URL.
 */
import { createDataSource } from "./data-source.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL must be set for the migration CLI");

export default createDataSource({ url, applicationName: "sessiond-cli" });
